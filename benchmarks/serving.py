"""Serving benchmark: the serving bars of docs/serving.md, as ratios measured side by side in one run.

    apt-get install wrk   # the throughput client; without it the Python client stands in
    .venv/bin/python benchmarks/serving.py [--requests 2000] [--seconds 8] [--rounds 3]
        [--client auto|wrk|python]

Starts, on localhost, each with one worker:
  echo       a BentoML echo service: same request model, async API, access log off
  lifecycle  `bentos/service.py` with a promoted model (config architecture, untrained
             weights: the same compute per request), post-processing, logging on
  no-log     the same with logging off (LIFECYCLE_BENCHMARK_NO_LOG=1): the cost of logging
  shadow     the lifecycle service on a copy of its home with a second version in shadow
             (`release.shadow_days`): the cost of scoring and logging the shadow
  adaptive   the same runtime behind BentoML adaptive batching (batchable API)
  starlette  plain Starlette (FastAPI's core) + uvicorn + the same artifact and scoring call
and measures, interleaving the services round by round so background load hits them alike:
  latency    one keep-alive connection, sequential requests: p50 and p99
  throughput 32 connections, closed loop, for --seconds: 200 responses per second, p50 and
             p99 under load, errors; driven by wrk (compiled, one thread) when it is on the
             PATH, else by the asyncio client, whose interpreter time per request is taken
             from the same two cores as the servers (--client python forces it)
  store      the lookup store's read vs a raw sqlite3 primary-key SELECT on the same file
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lifecycle_assets.config import example_config_path  # noqa: E402
from lifecycle_assets.home import LifecycleHome, set_simulated_today  # noqa: E402
from lifecycle_assets.registry.registry import Registry  # noqa: E402
from lifecycle_assets.serving.lookup import LookupEntry, SqliteLookupStore  # noqa: E402
from lifecycle_assets.serving.process import free_port  # noqa: E402
from lifecycle_assets_tests.loadgen import (  # noqa: E402
    in_child,
    run_load,
    sequential,
    soak_features,
)
from lifecycle_assets_tests.wrkload import INSTALL, LoadSummary, run_wrk  # noqa: E402

APPS = ROOT / "benchmarks" / "serving_apps"
DAY = "2026-06-05"
WRK_BODIES = 1000  # distinct bodies wrk cycles through (the Python client makes each anew)


class Server:
    """A server process in its own process group."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [*cmd, "--port", str(self.port)], env=env, cwd=ROOT, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def wait(self, path: str = "/healthz", timeout: float = 120) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def body(i: int, batch: bool = False) -> bytes:
    # No request id: the service makes one (it answers a repeated id with 409, and the
    # rounds send the same `i` again).
    req = {"entity_id": f"card-{i % 500}", "features": soak_features(i)}
    return json.dumps([req] if batch else req).encode()


def pct(data: list[float], q: float) -> float:
    data = sorted(data)
    return data[min(len(data) - 1, int(q / 100 * len(data)))]


def load_client(choice: str) -> str:
    """`auto`: wrk where installed, else the Python client, so machines without wrk still run
    the benchmark; `wrk` asked for and missing ends the run with the install command."""
    has_wrk = shutil.which("wrk") is not None
    if choice == "auto":
        return "wrk" if has_wrk else "python"
    if choice == "wrk" and not has_wrk:
        sys.exit(f"serving.py: --client wrk: wrk is not on the PATH; install it: {INSTALL}")
    return choice


def throughput(
    client: str, url: str, seconds: float, connections: int, make: Callable[[int, int], bytes]
) -> LoadSummary:
    """Closed-loop `/predict` load; `make(connection, sequence)` gives the bodies."""
    if client == "wrk":
        bodies = [make(0, s) for s in range(WRK_BODIES)]
        return run_wrk(
            url, path="/predict", seconds=seconds, connections=connections, bodies=bodies
        )
    res = run_load(
        url, seconds=seconds, connections=connections, path=lambda c, s: "/predict", body=make
    )
    return LoadSummary(res.seconds, res.ok, res.errors, res.percentile(50), res.percentile(99))


def verdict(ratio: float, bar: float | None, errors: int = 0) -> str:
    """A negative bar is a floor (`ratio ≥ 1`, with no errors), a positive one a ceiling."""
    if bar is None:
        return "(measured: decides whether adaptive batching is used)"
    if bar < 0:
        if errors:
            return f"MISS ({errors} errors; bar: ≥ 1 with 0 errors)"
        return "PASS" if ratio >= 1 else "MISS (bar: ≥ 1)"
    return "PASS" if ratio <= bar else f"MISS (bar: ≤ {bar})"


def store_read(directory: Path, keys: int, reads: int) -> dict[str, float]:
    """Our store's `get` vs `SELECT * ... WHERE item_id = ?` on a plain connection."""
    store = SqliteLookupStore(directory)
    feats = json.dumps(soak_features(0))
    store.publish(
        (
            LookupEntry(
                f"sched-{i:08d}",
                "card-1",
                "2026-06-06T10:00:00+00:00",
                feats,
                0.5,
                0.5,
                "review",
                None,
                "v1",
                "2026-06-05T12:00:00+00:00",
            )
            for i in range(keys)
        ),
        {},
    )
    rng = random.Random(7)
    sample = [f"sched-{rng.randrange(keys):08d}" for _ in range(reads)]
    raw = sqlite3.connect(directory / "lookup.sqlite")

    def timed(fn: Callable[[str], object]) -> list[float]:
        out = []
        for key in sample:
            t0 = time.perf_counter()
            fn(key)
            out.append((time.perf_counter() - t0) * 1e6)
        return out

    results: dict[str, list[float]] = {"raw": [], "store": []}
    for _ in range(3):  # interleaved rounds
        results["raw"] += timed(
            lambda k: raw.execute("SELECT * FROM entries WHERE item_id = ?", (k,)).fetchone()
        )
        results["store"] += timed(store.get)
    return {
        f"{name}_{stat}": round(pct(v, q), 2)
        for name, v in results.items()
        for stat, q in (("p50_us", 50), ("p99_us", 99))
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="sequential requests per round")
    ap.add_argument("--seconds", type=float, default=8, help="throughput seconds per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--store-keys", type=int, default=200_000)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    ap.add_argument(
        "--client", choices=("auto", "wrk", "python"), default="auto",
        help="throughput load generator (auto: wrk when on the PATH)",
    )  # fmt: skip
    args = ap.parse_args()
    client = load_client(args.client)
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    servers: list[Server] = []
    try:
        home = LifecycleHome(tmp / "home")
        home.repo.mkdir(parents=True)
        shutil.copyfile(example_config_path(), home.config_path)
        set_simulated_today(home, dt.date.fromisoformat(DAY))
        in_child(home, "register_untrained_model", str(home.root), "v1")
        first = json.loads(in_child(home, "publish_scheduled", str(home.root), "v1", DAY))
        lookup_ids = [row["item_id"] for row in first]
        token = "bench-token"
        env = {**os.environ, **home.tool_env(), "LIFECYCLE_FEEDBACK_TOKEN": token}
        shadow_home = LifecycleHome(tmp / "shadow-home")
        shutil.copytree(home.root, shadow_home.root)
        in_child(shadow_home, "register_untrained_model", str(shadow_home.root), "v2", "no")
        Registry(shadow_home, shadow_home.config().problem.name).move_alias(
            "shadow", "v2", actor="benchmark", reason="shadow cost", when=dt.datetime.now(dt.UTC)
        )
        shadow_env = {**env, **shadow_home.tool_env()}
        serve = [sys.executable, "-m", "bentoml", "serve", "--host", "127.0.0.1"]
        specs = {
            "echo": (
                [*serve, "echo_service:Echo", "--working-dir", str(APPS)], env, "/livez"
            ),
            "lifecycle": (
                [*serve, "service:Lifecycle", "--working-dir", str(ROOT / "bentos")], env,
                "/healthz",
            ),
            "shadow": (
                [*serve, "service:Lifecycle", "--working-dir", str(ROOT / "bentos")], shadow_env,
                "/healthz",
            ),
            "no-log": (
                [*serve, "service:Lifecycle", "--working-dir", str(ROOT / "bentos")],
                {**env, "LIFECYCLE_BENCHMARK_NO_LOG": "1"}, "/healthz",
            ),
            "adaptive": (
                [*serve, "adaptive_service:Adaptive", "--working-dir", str(APPS)], env, "/livez"
            ),
            "starlette": (
                [
                    sys.executable, "-m", "uvicorn", "starlette_app:app", "--app-dir",
                    str(APPS), "--host", "127.0.0.1", "--no-access-log", "--workers", "1",
                    "--log-level", "warning",
                ],
                env, "/predict",
            ),
        }  # fmt: skip
        for name, (cmd, e, _) in specs.items():
            servers.append(Server(name, cmd, e, tmp / f"{name}.log"))
        for server in servers:
            server.wait(specs[server.name][2])
        by = {s.name: s for s in servers}
        shadow_health = httpx.get(by["shadow"].url + "/healthz", timeout=5).json()
        if shadow_health.get("shadow_version") != "v2":
            raise RuntimeError(f"the shadow server scores no shadow: {shadow_health}")
        print(f"servers up; client {client}; load average before: {load_before}", flush=True)

        latency_targets: dict[str, tuple[str, Callable[[int], str], Callable[[int], bytes | None]]]
        latency_targets = {
            "echo /predict": ("echo", lambda i: "/predict", body),
            "lifecycle /predict": ("lifecycle", lambda i: "/predict", body),
            "shadow /predict": ("shadow", lambda i: "/predict", body),
            "no-log /predict": ("no-log", lambda i: "/predict", body),
            "lifecycle GET /lookup": (
                "lifecycle", lambda i: f"/lookup/{lookup_ids[i % len(lookup_ids)]}",
                lambda i: None,
            ),
            "starlette /predict": ("starlette", lambda i: "/predict", body),
        }  # fmt: skip
        throughput_targets = {
            "echo": ("echo", lambda c, s: body(c * 10**6 + s)),
            "lifecycle": ("lifecycle", lambda c, s: body(c * 10**6 + s)),
            "adaptive": ("adaptive", lambda c, s: body(c * 10**6 + s, batch=True)),
            "starlette": ("starlette", lambda c, s: body(c * 10**6 + s)),
        }
        for target, path, make in latency_targets.values():  # warm-up
            sequential(by[target].url, 200, path, make)
        lat: dict[str, list[float]] = {k: [] for k in latency_targets}
        p50s: dict[str, list[float]] = {k: [] for k in latency_targets}
        loads: dict[str, list[LoadSummary]] = {k: [] for k in throughput_targets}
        errors: dict[str, dict[str, int]] = {k: {} for k in throughput_targets}
        for r in range(args.rounds):
            for name, (target, path, make) in latency_targets.items():
                got = sequential(by[target].url, args.requests, path, make)
                lat[name] += got
                p50s[name].append(statistics.median(got))
                print(f"  round {r + 1} {name:24s} p50 {p50s[name][-1]:7.0f} µs", flush=True)
            for name, (target, make2) in throughput_targets.items():
                res = throughput(client, by[target].url, args.seconds, args.connections, make2)
                loads[name].append(res)
                print(
                    f"  round {r + 1} {name:10s} {res.rate:6.0f} req/s   p50 {res.p50_us:7.0f} µs"
                    f"   p99 {res.p99_us:7.0f} µs   errors: {res.errors or 0}",
                    flush=True,
                )
                for k, v in res.errors.items():
                    errors[name][k] = errors[name].get(k, 0) + v
            print(f"round {r + 1}/{args.rounds} done", flush=True)
        store = store_read(tmp / "store", args.store_keys, 20_000)
        load_after = os.getloadavg()

        p50 = {k: statistics.median(v) for k, v in p50s.items()}
        p99 = {k: pct(v, 99) for k, v in lat.items()}
        rate = {k: statistics.median(r.rate for r in v) for k, v in loads.items()}
        p50_load = {k: statistics.median(r.p50_us for r in v) for k, v in loads.items()}
        p99_load = {k: statistics.median(r.p99_us for r in v) for k, v in loads.items()}
        ratios = {
            "predict_p50_vs_echo": p50["lifecycle /predict"] / p50["echo /predict"],
            "predict_p99_vs_echo": p99["lifecycle /predict"] / p99["echo /predict"],
            "predict_p50_vs_echo_32c": p50_load["lifecycle"] / p50_load["echo"],
            "throughput_vs_starlette_32c": rate["lifecycle"] / rate["starlette"],
            "adaptive_throughput_vs_plain_32c": rate["adaptive"] / rate["lifecycle"],
            "logging_cost_p50": p50["lifecycle /predict"] / p50["no-log /predict"] - 1,
            "shadow_cost_p50": p50["shadow /predict"] / p50["lifecycle /predict"] - 1,
            "lookup_p50_vs_echo": p50["lifecycle GET /lookup"] / p50["echo /predict"],
            "store_read_p50_vs_raw_sqlite": store["store_p50_us"] / store["raw_p50_us"],
        }
        bars = {
            "predict_p50_vs_echo": 1.3,
            "predict_p99_vs_echo": 1.5,
            "predict_p50_vs_echo_32c": 1.3,
            "throughput_vs_starlette_32c": -1.0,
            "logging_cost_p50": 0.10,
            "shadow_cost_p50": 0.15,
            "lookup_p50_vs_echo": 1.2,
            "store_read_p50_vs_raw_sqlite": 2.0,
        }
        print(f"\nlatency, one keep-alive connection, {args.rounds}×{args.requests} requests:")
        for k in latency_targets:
            print(f"  {k:24s} p50 {p50[k]:8.0f} µs   p99 {p99[k]:8.0f} µs")
        print(
            f"throughput, {args.connections} connections, {args.rounds}×{args.seconds:.0f} s, "
            f"client {client} (medians over rounds):"
        )
        for k in throughput_targets:
            print(
                f"  {k:24s} {rate[k]:8.0f} req/s   p50 {p50_load[k]:8.0f} µs   "
                f"p99 {p99_load[k]:8.0f} µs   errors: {errors[k] or 0}"
            )
        print(f"store read ({args.store_keys} keys): {store}")
        print("\nratios (bar):")
        lifecycle_errors = sum(errors["lifecycle"].values())
        for k, ratio in ratios.items():
            print(f"  {k:34s} {ratio:7.3f}  {verdict(ratio, bars.get(k), lifecycle_errors)}")
        print(f"\nload average before {load_before}, after {load_after} (2 shared cores)")
        if args.out:
            args.out.write_text(
                json.dumps(
                    {
                        "p50_us": p50, "p99_us": p99, "rate": rate, "errors": errors,
                        "client": client, "p50_us_32c": p50_load, "p99_us_32c": p99_load,
                        "rounds": {k: [vars(r) for r in v] for k, v in loads.items()},
                        "store": store, "ratios": ratios, "load_before": load_before,
                        "load_after": load_after, "args": vars(args) | {"out": str(args.out)},
                    },
                    indent=2,
                )
            )  # fmt: skip
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
