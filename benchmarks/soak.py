"""Soak and crash runs of the prediction service on localhost (docs/serving.md, Reliability runs).

    .venv/bin/python benchmarks/soak.py                      # 2-minute soak, 32 connections
    .venv/bin/python benchmarks/soak.py --seconds 30 --connections 8
    .venv/bin/python benchmarks/soak.py --crash              # SIGKILL mid-load, both modes
    .venv/bin/python benchmarks/soak.py --poison             # poison mixed into valid load

Soak: closed-loop `/predict` load from `--connections` keep-alive connections (the highest
rate the machine sustains with zero errors: each connection sends its next request as soon
as the previous one is answered), then a graceful stop. Pass: zero non-200 answers, every
acknowledged prediction in the log exactly once (logged == 200 responses), resident memory
of the server's process tree growing less than 10 % from after the warm-up to the end.

Poison: the same load while one more client alternates poison requests (huge finite numbers,
out-of-range values, implausible event times, wrong types, ids with a trailing newline, bare
NaN) with predictions for 1,000 distinct event days. Pass: every valid request 200, every
poison request 4xx, logged == acknowledged exactly once, the worker's open descriptors
bounded by `serving.max_open_segments`, nothing in the log's quarantine stream.

Crash: the same load, then SIGKILL to the whole server process group mid-load; reports the
acknowledged predictions missing from the log and how long before the kill they were
answered — the measured loss window — for the default batched logging
(`serving.log_flush_interval_ms: 5`) and for inline logging (0), and a SIGTERM under load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lifecycle_assets.config import example_config_path  # noqa: E402
from lifecycle_assets.home import LifecycleHome, set_simulated_today  # noqa: E402
from lifecycle_assets.serving.process import ServiceProcess  # noqa: E402
from lifecycle_assets_tests.loadgen import crash, in_child, soak  # noqa: E402


def make_home(root: Path, **serving: object) -> LifecycleHome:
    import datetime as dt

    home = LifecycleHome(root)
    home.repo.mkdir(parents=True)
    config = yaml.safe_load(example_config_path().read_text())
    config["serving"].update(serving)
    home.config_path.write_text(yaml.safe_dump(config))
    set_simulated_today(home, dt.date(2026, 6, 5))
    in_child(home, "register_untrained_model", str(home.root), "v1")
    return home


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--crash", action="store_true", help="measure the crash-loss window")
    ap.add_argument("--poison", action="store_true", help="poison mixed into valid traffic")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    ok = True
    try:
        if args.crash:
            runs = [
                ("SIGKILL, batched (5 ms)", {"log_flush_interval_ms": 5}, signal.SIGKILL),
                ("SIGKILL, inline (0 ms)", {"log_flush_interval_ms": 0}, signal.SIGKILL),
                ("SIGKILL, batched (200 ms)", {"log_flush_interval_ms": 200}, signal.SIGKILL),
                ("SIGTERM under load", {}, signal.SIGTERM),
            ]
            for i, (name, serving, sig) in enumerate(runs):
                home = make_home(tmp / f"home{i}", **serving)
                service = ServiceProcess(home).start()
                try:
                    report = crash(service, 10, args.connections, sig=sig)
                finally:
                    service.stop()
                print(f"{name}: {json.dumps(report)}", flush=True)
                if sig == signal.SIGTERM or serving.get("log_flush_interval_ms") == 0:
                    ok &= report["acknowledged_missing_from_log"] == 0
            return 0 if ok else 1
        if args.poison:
            return poison_run(tmp / "home", args.seconds, args.connections)
        home = make_home(tmp / "home")
        service = ServiceProcess(home).start()
        try:
            report = soak(service, args.seconds, args.connections, warmup=args.warmup)
        finally:
            service.stop()
        print(json.dumps(report, indent=2))
        checks = {
            "zero errors": report["errors"] == {},
            "logged == 200 responses": report["logged"] == report["acknowledged"]
            and report["acknowledged_missing_from_log"] == 0
            and report["logged_twice"] == 0,
            "RSS growth < 10 %": report["rss_growth"] is not None and report["rss_growth"] < 0.10,
        }
        for name, passed in checks.items():
            print(f"  {'PASS' if passed else 'FAIL'}  {name}")
        return 0 if all(checks.values()) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def open_fds(service: ServiceProcess) -> int:
    import psutil

    assert service.proc is not None
    return max(p.num_fds() for p in psutil.Process(service.proc.pid).children(recursive=True))


def poison_run(root: Path, seconds: float, connections: int) -> int:
    import datetime as dt

    from lifecycle_assets.records import read_log_quarantine
    from lifecycle_assets_tests.loadgen import logged_ids, poison_soak

    home = make_home(root)
    limit = home.config().serving.max_open_segments
    service = ServiceProcess(home).start()
    try:
        before = open_fds(service)
        report = poison_soak(service, seconds, connections, distinct_days=1000)
        after = open_fds(service)
    finally:
        service.stop()
    ids = set(report.pop("acknowledged_ids"))
    logged = logged_ids(home, ("soak-", "day-"))
    report |= {"fds_before": before, "fds_after": after, "logged": len(logged)}
    print(json.dumps(report, indent=2))
    checks = {
        "every valid request 200": report["valid_errors"] == {},
        "every poison request 4xx": all(400 <= int(k) < 500 for k in report["poison_answers"]),
        "logged == acknowledged, none twice": set(logged) == ids and len(logged) == len(ids),
        f"open descriptors grow by at most max_open_segments ({limit}) + 4": after - before
        <= limit + 4,
        "log quarantine empty": read_log_quarantine(home.logs, dt.datetime.now(dt.UTC).date())
        == [],
    }
    for name, passed in checks.items():
        print(f"  {'PASS' if passed else 'FAIL'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
