"""How long a replay takes per period: a multi-year file replayed by month through the whole
loop, once per policy. Prints seconds per simulated period, the Dagster overhead share and the
policies' mean quality.

    .venv/bin/python benchmarks/replay.py [--years 2] [--per-week 150] [--period month]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from lifecycle_assets.replay.runner import run_replay
from lifecycle_assets_tests.replay.deliveries import CONFIG, deliveries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--per-week", type=int, default=150)
    parser.add_argument("--period", default="month", choices=["day", "week", "month"])
    parser.add_argument("--policy", action="append", default=None)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    weeks = 52 * args.years
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        data = root / "deliveries.parquet"
        # Drift at two thirds of the file: monthly retraining has something to catch up with.
        deliveries(weeks=weeks, per_week=args.per_week, drift_week=weeks * 2 // 3).write_parquet(
            data
        )
        config = yaml.safe_load(CONFIG)
        config["windows"].update({"min_train_rows": 300, "min_test_rows": 200})
        config["monitoring"]["cooldown_days"] = 1
        (root / "config.yaml").write_text(yaml.safe_dump(config))
        started = time.perf_counter()
        summary = run_replay(
            data,
            root / "config.yaml",
            root / "replay",
            policies=args.policy,
            period=args.period,
            echo=lambda m: print(m, flush=True),
        )
        wall = time.perf_counter() - started
    print()
    print(
        f"{summary['requests']} requests over {args.years} years replayed as "
        f"{summary['periods']} {args.period}s per policy; total wall {wall:.0f} s"
    )
    print("policy     s/period  median  dagster-share  mean rmse  trained  promoted")
    for name, res in summary["policies"].items():
        periods = res["periods"]
        per = [p["seconds"]["period"] for p in periods]
        overhead = sum(p["seconds"]["dagster_overhead"] for p in periods)
        q = summary["comparison"]["mean_quality"].get(name)
        print(
            f"{name:9}  {statistics.mean(per):8.2f}  {statistics.median(per):6.2f}  "
            f"{overhead / sum(per):13.1%}  {'—' if q is None else f'{q:9.3f}'}  "
            f"{res['retrains']:7}  {res['promotions']:8}"
        )
    print(
        json.dumps(
            {
                "seconds_per_period": {
                    k: v["seconds_per_period"] for k, v in summary["policies"].items()
                }
            }
        )
    )


if __name__ == "__main__":
    main()
