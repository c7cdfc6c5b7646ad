"""Replay speed: seconds per period of `lifecycle replay` at the demo's traffic, by stage,
against the bar of 2 s per `never` period (a policy that never retrains: what a period costs
the loop itself).

    .venv/bin/python benchmarks/replay_speed.py [--days 12] [--policy never --policy periodic]
        [--out FILE]

Writes the built-in simulator's traffic for `--days` days (the example config's, the demo's
volume), replays it with each policy in process (no profiler) in a temporary home, and
prints each policy's wall seconds per period over the whole replay and, for the periods
after its first model was promoted (before that every policy trains each period, as a cold
start), their mean and the mean of each stage that `replay.json` times per period (serving,
ingest, late labels, training, the Dagster runs' own overhead). The bar is judged on those
periods of `never`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BAR_NEVER_SECONDS = 2.0


def measure(days: int, policies: list[str]) -> dict[str, Any]:
    from lifecycle_assets.config import example_config_path
    from lifecycle_assets.replay.runner import run_replay
    from lifecycle_assets.replay.simulated import write_simulated_traffic

    with tempfile.TemporaryDirectory(prefix="replay-speed-") as tmp:
        data = write_simulated_traffic(None, days, Path(tmp) / "traffic.parquet")
        result = run_replay(data, example_config_path(), Path(tmp) / "replay", policies=policies)
    out: dict[str, Any] = {"days": days, "requests": result["requests"], "policies": {}}
    for name, policy in result["policies"].items():
        periods = policy["periods"]
        first = next(
            (i for i, p in enumerate(periods) if p["decision"] == "FIRST_MODEL"), len(periods)
        )
        served = periods[first + 1 :]  # a model in production since the period before
        stages = sorted({k for p in served for k in p["seconds"] if k != "period"})
        out["policies"][name] = {
            "seconds_per_period": policy["seconds_per_period"],
            "first_model_period": first,
            "served_periods": len(served),
            "mean_served_period": (
                statistics.fmean(p["seconds"]["period"] for p in served) if served else None
            ),
            "served_stages": {
                k: statistics.fmean(p["seconds"].get(k, 0.0) for p in served) for k in stages
            },
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--policy", action="append", choices=["never", "periodic", "triggered"])
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    result = measure(args.days, args.policy or ["never", "periodic"])
    print(f"{args.days} simulated days, {result['requests']} requests")
    for name, p in result["policies"].items():
        stages = ", ".join(f"{k} {v:.2f}" for k, v in p["served_stages"].items())
        served = p["mean_served_period"]
        print(
            f"{name:10s} {p['seconds_per_period']:.2f} s per period over the replay; "
            f"the first model on period {p['first_model_period'] + 1}; "
            + (
                f"the {p['served_periods']} periods after it: {served:.2f} s ({stages})"
                if served is not None
                else "no period after it"
            )
        )
    never = result["policies"].get("never")
    if never is not None and never["mean_served_period"] is not None:
        figure = never["mean_served_period"]
        verdict = "PASS" if figure <= BAR_NEVER_SECONDS else "MISS"
        result["bar"] = {"never_period_seconds": figure, "bar": BAR_NEVER_SECONDS}
        print(f"{verdict}: a `never` period {figure:.2f} s (bar ≤ {BAR_NEVER_SECONDS:.0f} s)")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
