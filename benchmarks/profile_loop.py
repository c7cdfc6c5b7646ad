"""Where one day of the loop spends its time: a profile of one demo day and of a replay.

    .venv/bin/python benchmarks/profile_loop.py                 # both, into docs/profiles/
    .venv/bin/python benchmarks/profile_loop.py --part demo --days 5 --out /tmp/prof

`demo`: `lifecycle demo` in this process (a real `bentoml serve` beside it) for `--days`
simulated days, the last one profiled with pyinstrument: serving it traffic over HTTP, the
labels, and the day's Dagster runs. `replay`: `lifecycle replay` of `--replay-days` simulated
days with the `never` and `periodic` policies, profiled whole (divide by the periods for one).

Each profile is saved as pyinstrument's HTML (its call tree and timeline, a flame view) and
split into where the time went: every sample is given to the innermost frame of this
project's code on its stack, read with the library it was in (see `CATEGORIES`). The split
goes to `<out>/profile.json` (each part rewritten as it finishes) and is printed as a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinstrument import Profiler
from pyinstrument.frame import Frame

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (category, a test on (innermost project frame's file:function, the sample's own file)):
# the first that matches takes the sample. Project files are named from the package root.
CATEGORIES: list[tuple[str, Callable[[str, str], bool]]] = [
    ("git subprocesses", lambda ours, leaf: "versioning/repo.py:_git" in ours),
    ("DVC (commit, push, gc)", lambda ours, leaf: "/dvc/" in leaf or "_dvc_api" in ours),
    ("training", lambda ours, leaf: "/training/" in ours),
    ("gate (bootstrap, guards)", lambda ours, leaf: "/validation/" in ours),
    ("IO manager reads/writes", lambda ours, leaf: "io_manager" in ours or "storage.py" in ours),
    ("data pipeline (polars)", lambda ours, leaf: "/data/" in ours or "/records/" in ours),
    ("monitoring", lambda ours, leaf: "/monitoring/" in ours),
    ("serving over HTTP (client side)", lambda ours, leaf: "demo.py" in ours or "httpx" in leaf),
    ("serving in process", lambda ours, leaf: "/serving/" in ours),
    ("Dagster run overhead", lambda ours, leaf: "/dagster" in leaf),
    ("registry and release", lambda ours, leaf: "/registry/" in ours),
]


def _ours(path: str) -> bool:
    return "/lifecycle_assets/" in path and "/site-packages/" not in path


def categorise(root: Frame | None) -> dict[str, float]:
    """Seconds per category of a pyinstrument frame tree (self time of every frame)."""
    out: dict[str, float] = defaultdict(float)
    if root is None:
        return {}

    def walk(frame: Frame, ours: str) -> None:
        path = frame.file_path or ""
        if _ours(path):
            ours = f"{path.split('/lifecycle_assets/')[-1]}:{frame.function}"
            ours = "/" + ours  # "/versioning/repo.py:_git"
        self_time = frame.time - sum(child.time for child in frame.children)
        if self_time > 0:
            category = next((name for name, test in CATEGORIES if test(ours, path)), "other")
            out[category] += self_time
        for child in frame.children:
            walk(child, ours)

    walk(root, "")
    return dict(out)


def table(split: dict[str, float]) -> list[dict[str, Any]]:
    total = sum(split.values()) or 1.0
    rows = sorted(split.items(), key=lambda kv: -kv[1])
    return [{"category": k, "seconds": round(v, 3), "share": round(v / total, 4)} for k, v in rows]


def profile_demo(days: int, out: Path) -> dict[str, Any]:
    import lifecycle_assets.demo as demo
    from lifecycle_assets.serving.process import free_port

    profiled: dict[str, Any] = {}
    original = demo._run_one_day

    def one_day(home: Any, client: Any, sim: Any, index: int, never: Any = None) -> Any:
        if index != days - 1:
            return original(home, client, sim, index, never)
        profiler = Profiler(interval=0.002)
        profiler.start()
        started = time.perf_counter()
        try:
            return original(home, client, sim, index, never)
        finally:
            profiled["seconds"] = time.perf_counter() - started
            profiler.stop()
            profiled["profiler"] = profiler

    demo._run_one_day = one_day
    try:
        with tempfile.TemporaryDirectory() as tmp:
            summary = demo.run_demo(workdir=str(Path(tmp) / "home"), days=days, port=free_port())
    finally:
        demo._run_one_day = original
    profiler = profiled["profiler"]
    (out / "demo-day.html").write_text(profiler.output_html())
    last = summary["daily"][-1]
    return {
        "what": f"day {days} of `lifecycle demo --days {days}` (3,000 payments a day)",
        "wall_seconds": round(profiled["seconds"], 2),
        "demo_stage_seconds": last["seconds"],
        "decision": last["decision"],
        "split": table(
            categorise(profiler.last_session.root_frame() if profiler.last_session else None)
        ),
    }


def profile_replay(days: int, out: Path) -> dict[str, Any]:
    from lifecycle_assets.config import example_config_path
    from lifecycle_assets.replay.runner import run_replay
    from lifecycle_assets.replay.simulated import write_simulated_traffic

    with tempfile.TemporaryDirectory() as tmp:
        data = write_simulated_traffic(None, days, Path(tmp) / "traffic.parquet")
        profiler = Profiler(interval=0.002)
        started = time.perf_counter()
        profiler.start()
        try:
            result = run_replay(
                data,
                example_config_path(),
                Path(tmp) / "replay",
                policies=["never", "periodic"],
            )
        finally:
            profiler.stop()
        seconds = time.perf_counter() - started
    (out / "replay.html").write_text(profiler.output_html())
    periods = int(result["periods"])
    return {
        "what": f"`lifecycle replay` of {days} simulated days, policies never and periodic",
        "wall_seconds": round(seconds, 2),
        "periods": periods,
        "seconds_per_period": {
            name: p["seconds_per_period"] for name, p in result["policies"].items()
        },
        "split": table(
            categorise(profiler.last_session.root_frame() if profiler.last_session else None)
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["demo", "replay", "both"], default="both")
    parser.add_argument("--days", type=int, default=4, help="demo days (the last is profiled)")
    parser.add_argument("--replay-days", type=int, default=6, help="simulated days replayed")
    parser.add_argument("--out", default=str(ROOT / "docs" / "profiles"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "profile.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.is_file() else {}
    parts = ["demo", "replay"] if args.part == "both" else [args.part]
    for part in parts:
        if part == "demo":
            results["demo"] = profile_demo(args.days, out)
        else:
            results["replay"] = profile_replay(args.replay_days, out)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        r = results[part]
        print(f"\n{part}: {r['what']}: {r['wall_seconds']} s")
        for row in r["split"]:
            print(f"  {row['category']:<34} {row['seconds']:>8.2f} s  {100 * row['share']:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
