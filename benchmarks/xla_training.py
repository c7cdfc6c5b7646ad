"""Per-step training time of the torch-xla path against eager PyTorch, same data, same run.

    PJRT_DEVICE=CPU .venv/bin/python benchmarks/xla_training.py [--rows 20000] [--repeats 2]

Both paths run `lifecycle_assets.training.train.train_model` with the example config
(batch 256, 6 epochs) on the same synthetic fraud-like rows; the runs alternate
(eager, xla, eager, xla, …) so that load from other processes hits both alike. Reports the
steady per-step time (epochs 2…N, median over repeats), the first epoch's per-step time
(XLA compiles there), the compile count from torch-xla's metrics, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import polars as pl

os.environ.setdefault("PJRT_DEVICE", "CPU")  # before torch-xla is imported


def rows(n: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, n)
    risk = rng.random(n)
    country = rng.choice(["DE", "FR", "XX", "US", "GB", "IT"], n)
    logit = 4.0 * (risk - 0.5) + 1.5 * (np.log(amount) - 3.0) + 3.0 * (country == "XX") - 3.0
    return pl.DataFrame(
        {
            "amount": amount,
            "merchant_risk": risk,
            "hour": rng.integers(0, 24, n).astype(np.float64),
            "card_age_days": rng.integers(1, 2000, n).astype(np.float64),
            "txn_count_24h": rng.poisson(3, n).astype(np.float64),
            "merchant_category": rng.choice(["grocery", "travel", "games", "fuel"], n),
            "country": country,
            "channel": rng.choice(["web", "pos", "app"], n),
            "is_fraud": (logit + rng.logistic(0, 0.3, n) > 0).astype(np.float64),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch_xla.debug.metrics as met

    from lifecycle_assets.config import load_config
    from lifecycle_assets.training.train import train_model

    config = load_config()
    frame = rows(args.rows)
    results: dict[str, list] = {"cpu": [], "xla": []}
    for _ in range(args.repeats):
        for device in ("cpu", "xla"):
            started = time.perf_counter()
            result = train_model(frame, config, "v1", device=device)
            results[device].append((result, time.perf_counter() - started))
    compile = met.metric_data("CompileTime")
    summary = {"rows": args.rows, "batch_size": config.training.batch_size,
               "epochs": config.training.epochs}  # fmt: skip
    for device, runs in results.items():
        first, _ = runs[0]
        summary[device] = {
            "steps_per_epoch": first.steps_per_epoch,
            "steady_step_ms": round(
                1000 * statistics.median(s for r, _ in runs for s in r.step_seconds[1:]), 3
            ),
            "first_epoch_step_ms": round(1000 * first.step_seconds[0], 3),
            "later_runs_first_epoch_step_ms": [
                round(1000 * r.step_seconds[0], 3) for r, _ in runs[1:]
            ],
            "total_s": [round(t, 2) for _, t in runs],
            "compilations_per_epoch": first.compilations,
        }
    summary["xla"]["process_compilations"] = int(compile[0]) if compile else 0
    summary["xla"]["process_compile_s"] = round(compile[1] / 1e9, 2) if compile else 0.0
    summary["ratio_xla_to_eager_steady_step"] = round(
        summary["xla"]["steady_step_ms"] / summary["cpu"]["steady_step_ms"], 2
    )
    summary["ratio_xla_to_eager_total_first_run"] = round(
        results["xla"][0][1] / results["cpu"][0][1], 2
    )
    a = results["cpu"][0][0].artifact.score(frame)
    b = results["xla"][0][0].artifact.score(frame)
    summary["max_score_diff_eager_vs_xla"] = float(np.abs(a - b).max())
    print(json.dumps(summary, indent=2))
    print(
        f"steady per-step: xla {summary['xla']['steady_step_ms']} ms vs eager "
        f"{summary['cpu']['steady_step_ms']} ms → ratio {summary['ratio_xla_to_eager_steady_step']}×;"
        f" compilations {summary['xla']['compilations_per_epoch']} (cumulative per epoch)"
    )


if __name__ == "__main__":
    main()
