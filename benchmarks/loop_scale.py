"""Scale run: the loop's days at 100 k and 1 M predictions a day, seconds per stage and peak RSS.

    .venv/bin/python benchmarks/loop_scale.py --size small --workdir /tmp/scale   # 10 k × 2 days
    .venv/bin/python benchmarks/loop_scale.py --workdir /tmp/scale --out scale.json
    .venv/bin/python benchmarks/loop_scale.py --size 1m --workdir /tmp/scale --profile-day 3

Each size is a home of its own (`<workdir>/<size>/home`) running `--days` simulated days of
the card-fraud simulator at `--rows` payments a day (`SIZES`), with the config `CONFIG`. Every
day has two processes, one after the other:

1. the traffic: the simulator scores the day's payments with the model in production (none on
   the first days) and writes them, and the chargebacks that arrive that day (labels of
   payments one to three days old), through the service's `LogWriter`: the JSONL segments the
   service writes (`simulate_day`, as the loop's tests do);
2. the loop: `automation.loop.run_day` in a fresh process (as the daemon runs each run in one):
   ingest, the late-label refresh of past days, the splits, training, the gate and the
   release, each a Dagster run in the home's SQLite instance. Its seconds per stage are read
   from outside, from Dagster's step statistics of the day's runs, and the time of a run
   outside its steps is its orchestration. Peak RSS is the process's own `ru_maxrss` (the
   process ran nothing else), and the largest sum of its PSS and its live children's (git,
   DVC) sampled every 0.2 s.

`PJRT_DEVICE` is dropped from the children's environment: training runs eager PyTorch, as on
a plain machine (a TPU VM sets `PJRT_DEVICE=TPU`; docs/data.md, "Scale").

Each day's figures are written to `<size>/day-N.json` as it finishes and each size's to
`<size>/result.json`, and both are skipped on a rerun with the same `--workdir`: a long run
continues where it stopped. Prints a Markdown table per size and the bars, and writes every
figure as JSON (`--out`). `--profile-day N` runs day N's loop (from 0) under pyinstrument and splits
its time as `benchmarks/profile_loop.py` does (`<size>/profile-day-N.txt`, `.json`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# name: (payments a day, days)
SIZES = {"small": (10_000, 2), "10k": (10_000, 5), "100k": (100_000, 5), "1m": (1_000_000, 5)}
# The run's sizes by default: 10k is the baseline for the fixed per-day overhead.
DEFAULT_SIZES = ("10k", "100k", "1m")

# The loop's tests' small windows (a label matures after a day; train on two days, test on
# one; no history), so five days reach training and the gate; the example's family (mlp: the
# simulator's problem), eager; `training.max_rows` caps a fit at 200,000 rows: the 100 k run's
# two-day train split (≤ 200,000 rows) fits whole, the 1 M run's (2 M rows) is sampled, so
# its training costs about what the 100 k run's does and the other stages show the scale.
CONFIG: dict[str, dict[str, Any]] = {
    "labels": {"maturity_days": 1},
    "windows": {"train_days": 2, "test_days": 1, "history_days": 0, "min_train_rows": 1000,
                "min_test_rows": 400},
    "training": {"model": {"family": "mlp", "embedding_dim": 4, "hidden_units": 32},
                 "device": "cpu", "max_rows": 200_000},
    "data": {"pii_mode": "hash"},
}  # fmt: skip


def config_text(rows: int) -> str:
    """The size's `lifecycle.yaml`: `CONFIG` at `rows` payments a day."""
    return yaml.safe_dump({**CONFIG, "simulation": {"payments_per_day": rows}}, sort_keys=False)


# Dagster step (asset) → stage of the table.
STAGES = {
    "raw_prediction_logs": "ingest",
    "ground_truth": "ingest",
    "prediction_drift": "ingest",
    "labeled_examples": "labels",
    "feature_table": "labels",
    "live_quality": "labels",
    "train_split": "splits",
    "test_split": "splits",
    "candidate_model": "training",
    "validation_report": "gate",
    "production_model": "release",
    "shadow_report": "shadow",
}
COLUMNS = ["ingest", "labels", "splits", "training", "gate", "release", "shadow", "dagster"]
TRAINING = "training"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PJRT_DEVICE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _child(*args: str) -> dict[str, Any]:
    """This script in a child process (`--generate` / `--run-day`); its JSON line."""
    done = subprocess.run(
        [sys.executable, __file__, *args], env=_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _rss_mib() -> dict[str, float]:
    """Peak RSS of this process, MiB (`ru_maxrss`, KiB on Linux). Its children's `ru_maxrss`
    is not used: Linux counts a child's pre-exec copy of this process in it."""
    return {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


class TreeRss(threading.Thread):
    """Samples the memory of this process plus its live children (git, DVC) every `interval`
    seconds, as PSS (a forked child's pages shared with this process count once, not twice
    as their RSS would): `peak_mib` is the largest sum seen."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak_mib = interval, 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop_event.wait(self.interval):
            total = 0
            for proc in (me, *me.children(recursive=True)):
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_full_info().pss
            self.peak_mib = max(self.peak_mib, total / 2**20)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return round(self.peak_mib, 1)


# --- the children --------------------------------------------------------------------------


def generate(home_dir: Path, index: int) -> dict[str, Any]:
    """Day `index`'s traffic through the service's log writer; the bytes it wrote."""
    from lifecycle_assets.home import LifecycleHome
    from lifecycle_assets_tests.automation.test_loop import simulate_day

    home = LifecycleHome(home_dir)
    started = time.perf_counter()
    day = simulate_day(home, index)
    seconds = time.perf_counter() - started
    streams = {}
    for stream in ("predictions", "ground_truth"):
        folder = home.logs / stream / f"date={day.isoformat()}"
        files = list(folder.glob("*.jsonl")) if folder.is_dir() else []
        streams[stream] = {
            "bytes": sum(f.stat().st_size for f in files),
            "rows": sum(sum(1 for _ in f.open("rb")) for f in files),
        }
    return {"day": day.isoformat(), "seconds": round(seconds, 2), **streams, **_rss_mib()}


def run_loop_day(home_dir: Path, day: str, profile: Path | None) -> dict[str, Any]:
    """`run_day` for `day` in this fresh process; its stages' seconds from Dagster's step
    statistics, and the peak RSS."""
    import datetime as dt

    from lifecycle_assets.automation.loop import instance_for, run_day
    from lifecycle_assets.definitions import defs
    from lifecycle_assets.home import LifecycleHome

    home = LifecycleHome(home_dir)
    instance = instance_for(home)  # the instance and the definitions before the clock
    defs.resolve_job_def("lifecycle_loop")
    baseline = round(_rss_now_mib(), 1)
    load_before = _load()
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    sampler = TreeRss()
    sampler.start()
    started = time.perf_counter()
    outcome = run_day(home, dt.date.fromisoformat(day))
    seconds = time.perf_counter() - started
    tree_peak = sampler.stop()
    if profiler is not None and profile is not None:
        profiler.stop()
        _save_profile(profiler, profile, seconds)
    stages = dict.fromkeys(COLUMNS, 0.0)
    steps: dict[str, float] = {}
    for run in outcome.runs:
        for stat in instance.get_run_step_stats(run.run_id):
            if stat.start_time is None or stat.end_time is None:
                continue  # a step the run skipped (no challenger today)
            took = stat.end_time - stat.start_time
            key = stat.step_key
            steps[f"{key}[{run.partition}]"] = round(took, 3)
            stages[STAGES.get(key, "other")] = stages.get(STAGES.get(key, "other"), 0.0) + took
        stages["dagster"] += max(run.seconds - run.step_seconds, 0.0)
    decision = outcome.decision or {}
    return {
        "day": day,
        "seconds": round(seconds, 2),
        "stages": {k: round(v, 2) for k, v in stages.items()},
        "steps": steps,
        "runs": len(outcome.runs),
        "refreshed": sorted({r.partition for r in outcome.runs if r.partition != day}),
        "decision": decision.get("decision"),
        "test_rows": decision.get("test_rows"),
        "training_sample": _training_sample(home, decision.get("challenger_version")),
        "rss_after_imports_mib": baseline,
        "load_before": load_before,
        "load_after": _load(),
        **_rss_mib(),
        "tree_peak_rss_mib": tree_peak,
    }


def _rss_now_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _training_sample(home: Any, version: str | None) -> dict[str, Any] | None:
    """What the registry recorded of the day's challenger's rows (`training.max_rows`)."""
    if version is None:
        return None
    from lifecycle_assets.registry.registry import Registry

    entry = Registry(home, home.config().problem.name).versions().get(version, {})
    return {"version": version, "train_rows": entry.get("train_rows"),
            "sample": entry.get("training_sample")}  # fmt: skip


def _save_profile(profiler: Any, path: Path, seconds: float) -> None:
    from benchmarks.profile_loop import table

    path.with_suffix(".txt").write_text(
        profiler.output_text(unicode=True, color=False, show_all=False, time="seconds")
    )
    root = profiler.last_session.root_frame() if profiler.last_session else None
    split = table(root)
    path.with_suffix(".json").write_text(
        json.dumps({"wall_seconds": round(seconds, 2), "split": split}, indent=2) + "\n"
    )


# --- the driver ----------------------------------------------------------------------------


def run_size(name: str, rows: int, days: int, workdir: Path, profile_day: int | None) -> dict:
    """The size's days, each resumed from its files; its result."""
    folder = workdir / name
    result_path = folder / "result.json"
    if result_path.is_file() and profile_day is None:
        print(f"{name}: done already ({result_path})", flush=True)
        return json.loads(result_path.read_text())
    home_dir = folder / "home"
    if not (home_dir / "lifecycle.yaml").is_file():
        from lifecycle_assets.home import LifecycleHome
        from lifecycle_assets.home_setup import init_home

        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "lifecycle.yaml"
        config.write_text(config_text(rows))
        os.environ.update(LifecycleHome(home_dir).tool_env())
        init_home(home_dir, config)
    out: list[dict[str, Any]] = []
    for index in range(days):
        day_path = folder / f"day-{index}.json"
        if day_path.is_file():
            out.append(json.loads(day_path.read_text()))
            continue
        traffic_path = folder / f"traffic-{index}.json"
        if not traffic_path.is_file():  # written once: a rerun must not log the day twice
            traffic_path.write_text(json.dumps(_child("--generate", str(home_dir), str(index))))
        traffic = json.loads(traffic_path.read_text())
        args = ["--run-day", str(home_dir), traffic["day"]]
        if profile_day == index:
            args += ["--profile", str(folder / f"profile-day-{index}")]
        figures = {**_child(*args), "traffic": traffic}
        day_path.write_text(json.dumps(figures, indent=2) + "\n")
        out.append(figures)
        print(f"{name} day {index}: {figures['seconds']} s, stages {figures['stages']}, "
              f"peak {figures['peak_rss_mib']} MiB, load {figures['load_after']}", flush=True)  # fmt: skip
    result = {"size": name, "rows_per_day": rows, "days": out, "config": config_text(rows)}
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def non_training(day: dict[str, Any]) -> float:
    return sum(v for k, v in day["stages"].items() if k != TRAINING)


def _peak(day: dict[str, Any]) -> float:
    """The day's peak RSS: the process's own, or with its children where the sampler saw more."""
    return max(day["peak_rss_mib"], day["tree_peak_rss_mib"])


def input_mib(day: dict[str, Any]) -> float:
    """A day's input: the JSONL the service wrote for it (predictions and arriving labels)."""
    t = day["traffic"]
    return (t["predictions"]["bytes"] + t["ground_truth"]["bytes"]) / 2**20


def report(results: dict[str, dict]) -> tuple[str, dict[str, Any]]:
    """The Markdown tables and the bars."""
    lines = []
    bars: dict[str, Any] = {}
    for name, result in results.items():
        lines += [
            f"\n{name}: {result['rows_per_day']:,} predictions a day",
            "",
            "| day | " + " | ".join(COLUMNS) + " | day s | non-training s | peak RSS MiB "
            "(with children) | input MiB | RSS / input | decision | load (1 min) |",
            "|---|" + "---:|" * (len(COLUMNS) + 5) + "---|---|",
        ]
        for day in result["days"]:
            s = day["stages"]
            peak = _peak(day)
            lines.append(
                f"| {day['day']} | " + " | ".join(f"{s.get(c, 0):.2f}" for c in COLUMNS)
                + f" | {day['seconds']:.1f} | {non_training(day):.1f} | {day['peak_rss_mib']:.0f}"
                f" ({day['tree_peak_rss_mib']:.0f}) | {input_mib(day):.1f} | "
                f"{peak / input_mib(day):.2f} | {day['decision'] or '—'} | "
                f"{day['load_before'][0]}–{day['load_after'][0]} |"
            )  # fmt: skip
        days = result["days"]
        mean = {c: statistics.mean(d["stages"].get(c, 0.0) for d in days) for c in COLUMNS}
        lines.append(
            "| mean | " + " | ".join(f"{mean[c]:.2f}" for c in COLUMNS)
            + f" | {statistics.mean(d['seconds'] for d in days):.1f} | "
            f"{statistics.mean(non_training(d) for d in days):.1f} | | | | | |"
        )  # fmt: skip
        bars[name] = {
            "non_training_mean_s": round(statistics.mean(non_training(d) for d in days), 2),
            "non_training_max_s": round(max(non_training(d) for d in days), 2),
            # the gate's paired bootstrap is the largest share: the rest on its own
            "non_training_without_gate_mean_s": round(
                statistics.mean(non_training(d) - d["stages"]["gate"] for d in days), 2
            ),
            "peak_rss_mib": max(_peak(d) for d in days),
            "rss_over_input_max": round(max(_peak(d) / input_mib(d) for d in days), 2),
        }
    lines.append("\n| bar | figure | met |\n|---|---|---|")
    if "1m" in bars:
        b = bars["1m"]
        lines.append(
            f"| non-training stages at 1 M rows/day ≤ 20 s a day | mean {b['non_training_mean_s']}"
            f" s, worst {b['non_training_max_s']} s (without the gate: mean "
            f"{b['non_training_without_gate_mean_s']} s) | {'yes' if b['non_training_max_s'] <= 20 else 'no'} |"
        )  # fmt: skip
    if {"10k", "100k", "1m"} <= set(bars):
        fixed = bars["10k"]["non_training_mean_s"]
        ratio = (bars["1m"]["non_training_mean_s"] - fixed) / max(
            bars["100k"]["non_training_mean_s"] - fixed, 1e-9
        )
        bars["scaling_1m_over_100k"] = round(ratio, 2)
        key = "non_training_without_gate_mean_s"
        base = bars["10k"][key]
        rest = (bars["1m"][key] - base) / max(bars["100k"][key] - base, 1e-9)
        bars["scaling_1m_over_100k_without_gate"] = round(rest, 2)
        lines.append(
            f"| 10× rows ≤ 10× time above the fixed per-day overhead (the 10 k run's "
            f"{fixed} s) | {ratio:.2f}× (without the gate: {rest:.2f}× above {base} s) "
            f"| {'yes' if ratio <= 10 else 'no'} |"
        )
    for name, b in bars.items():
        if isinstance(b, dict):
            lines.append(
                f"| peak RSS ≤ 2× a day's input ({name}) | {b['rss_over_input_max']}× "
                f"({b['peak_rss_mib']:.0f} MiB) | {'yes' if b['rss_over_input_max'] <= 2 else 'no'} |"
            )  # fmt: skip
    return "\n".join(lines), bars


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", action="append", choices=sorted(SIZES), help="repeatable")
    parser.add_argument("--workdir", required=False, help="homes and per-day figures (resumable)")
    parser.add_argument("--out", default=None, help="write every figure as JSON here")
    parser.add_argument("--profile-day", type=int, default=None, help="profile this day index")
    parser.add_argument("--generate", nargs=2, metavar=("HOME", "INDEX"), help=argparse.SUPPRESS)
    parser.add_argument("--run-day", nargs=2, metavar=("HOME", "DAY"), help=argparse.SUPPRESS)
    parser.add_argument("--profile", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate:
        print(json.dumps(generate(Path(args.generate[0]), int(args.generate[1]))))
        return 0
    if args.run_day:
        profile = Path(args.profile) if args.profile else None
        print(json.dumps(run_loop_day(Path(args.run_day[0]), args.run_day[1], profile)))
        return 0
    if not args.workdir:
        parser.error("--workdir is required")
    workdir = Path(args.workdir).resolve()
    results = {}
    for name in args.size or DEFAULT_SIZES:
        rows, days = SIZES[name]
        results[name] = run_size(name, rows, days, workdir, args.profile_day)
    text, bars = report(results)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps({"sizes": results, "bars": bars}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
