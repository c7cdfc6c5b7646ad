"""Where the label-free estimate's error comes from, measured offline on the quality
benchmark's generated churn scenarios, whose true probabilities are known.

    .venv/bin/python benchmarks/estimate_floor.py --workdir /work/runs/qfull-folds \\
        --scenarios covariate,stable

Reads each scenario's `data.parquet` and `lifecycle-gbdt.yaml` from a `benchmarks/quality.py`
workdir and prepares them as the replay does (`prepare_traffic`: the same rows, periods and
label arrival times the loop gets). For every period t from the fourth on, LightGBM with the
`gbdt` defaults is fitted on every period whose labels have matured by loop day t - 1 (the
periods up to t - 1 - `labels.maturity_days`: what the loop's history models learn from) and
scores period t. Its realised ROC-AUC is on the file's labels, as `benchmarks/quality.py`
judges the loop's estimate. The error (estimate - realised) of

- `oracle`: the ROC-AUC expected from the scores under the generator's own probabilities
  P(y | x). No estimate can do better than this on average: it is what the period's labels
  add by chance;
- `file labels`: the estimate (expected ROC-AUC under the model's own probabilities,
  `monitoring.estimate.expected_roc_auc`) of a model fitted on the file's labels;
- `loop labels`: the same for a model fitted on the labels as the loop's datasets see them
  (`quality.matured_label`: a label that arrives after its maturity window counts as 0 under
  `unlabeled_after_maturity: negative`);
- `loop labels, matured`: that estimate against the realised ROC-AUC on the period's labels
  as matured, the figure the loop's own `live_quality` realises.

The share of positives counted negative is printed beside them. No loop, no gate, no history
choice: the figures separate the labels' chance, the model's calibration and the label
contract. Each scenario's errors are written to `DIR/<scenario>/estimate-floor.json` and
reused by a rerun.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:  # run as a script: benchmarks/ is on sys.path
    import quality
    from history_windows import Scenario, fit_gbdt
except ImportError:  # imported as benchmarks.estimate_floor
    from benchmarks import quality  # type: ignore[no-redef]
    from benchmarks.history_windows import Scenario, fit_gbdt  # type: ignore[no-redef]

from lifecycle_assets.config import load_config  # noqa: E402
from lifecycle_assets.defs.partitions import daily  # noqa: E402
from lifecycle_assets.metrics import metric  # noqa: E402
from lifecycle_assets.monitoring.estimate import expected_roc_auc  # noqa: E402
from lifecycle_assets.replay.source import LABEL, PERIOD, load_table, prepare_traffic  # noqa: E402

FIRST_ESTIMATED = 3  # the first period the loop's first model serves (--first-window one)
KINDS = ("oracle", "file labels", "loop labels", "loop labels, matured")
# The scenarios drawn from `quality.churn` with one relation throughout: P(y | x) is
# `quality._churn_logit(features, 0)` on every row.
TRUE_PROBABILITY = ("stable", "covariate")


def true_probability(frame: pl.DataFrame) -> np.ndarray:
    """P(churn | x) of the generated churn rows: the generator's own relation."""
    features: dict[str, np.ndarray] = {
        c: frame[c].to_numpy().astype(np.float64)
        for c in ("monthly_spend", "tenure_months", "support_calls", "usage_hours")
    }
    for column, names in (
        ("plan", quality.PLANS),
        ("region", quality.REGIONS),
        ("device", quality.DEVICES),
    ):
        index = {name: i for i, name in enumerate(names)}
        features[column] = np.array([index[v] for v in frame[column].to_list()])
    return 1 / (1 + np.exp(-quality._churn_logit(features, np.zeros(frame.height))))


def scenario_errors(root: Path) -> dict[str, Any]:
    config = load_config(root / "lifecycle-gbdt.yaml")
    last = dt.date.fromisoformat(daily.get_last_partition_key() or "2026-01-01")
    traffic = prepare_traffic(load_table(root / "data.parquet"), config, config.replay.period, last)
    frame = traffic.frame.with_columns(
        quality.matured_label(config, traffic.loop_start).alias("_loop_label")
    )
    p = config.problem
    vocab = {c: sorted(frame[c].unique().to_list()) for c in p.categorical_features}
    x = quality._design(frame, config, vocab)
    period = frame[PERIOD].to_numpy().astype(np.int64)
    file_y = frame[LABEL].to_numpy().astype(np.float64)
    loop_y = frame["_loop_label"].to_numpy().astype(np.float64)
    truth = true_probability(frame)

    def data(y: np.ndarray) -> Scenario:
        return Scenario(
            task="binary",
            metric="roc_auc",
            x=x,
            y=y,
            period=period,
            starts=np.arange(len(traffic.periods)),
            categorical=list(range(len(p.numeric_features), x.shape[1])),
            train_periods=config.windows.train_days,
        )

    on_file, on_loop = data(file_y), data(loop_y)
    errors: dict[str, list[float]] = {k: [] for k in KINDS}
    maturity = config.labels.maturity_days
    for t in range(FIRST_ESTIMATED, len(traffic.periods)):
        fitted, served = period <= t - 1 - maturity, period == t
        file_scores = fit_gbdt(on_file, fitted).predict(x[served])
        loop_scores = fit_gbdt(on_loop, fitted).predict(x[served])
        realised = metric("roc_auc", file_y[served], file_scores)
        realised_loop = metric("roc_auc", file_y[served], loop_scores)
        oracle = expected_roc_auc(file_scores, truth[served])
        errors["oracle"].append(oracle - realised)  # type: ignore[operator]
        errors["file labels"].append(expected_roc_auc(file_scores) - realised)  # type: ignore[operator]
        estimate = expected_roc_auc(loop_scores)
        errors["loop labels"].append(estimate - realised_loop)  # type: ignore[operator]
        matured = metric("roc_auc", loop_y[served], loop_scores)
        errors["loop labels, matured"].append(estimate - matured)  # type: ignore[operator]
    positives = file_y == 1
    return {
        "positives_counted_negative": float(np.mean(loop_y[positives] == 0)),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a quality.py workdir")
    parser.add_argument("--scenarios", default=",".join(TRUE_PROBABILITY), help="comma-separated")
    args = parser.parse_args(argv)
    names = [n for n in args.scenarios.split(",") if n]
    unknown = sorted(set(names) - set(TRUE_PROBABILITY))
    if unknown:
        parser.error(
            f"no known P(y | x) for {', '.join(unknown)}: choose from {', '.join(TRUE_PROBABILITY)}"
        )
    kinds = " | ".join(f"{k}: median \\|error\\|, mean" for k in KINDS)
    print(f"| scenario | periods | positives counted negative | {kinds} |")
    print("|---|---|---|" + "---|" * len(KINDS))
    for name in names:
        root = args.workdir / name
        out = root / "estimate-floor.json"
        done = json.loads(out.read_text()) if out.exists() else None
        if done is None:
            done = scenario_errors(root)
            out.write_text(json.dumps(done, indent=1))
        cells = [
            f"{np.median(np.abs(e)):.4f}, {np.mean(e):+.4f}"
            for e in (np.asarray(done["errors"][k]) for k in KINDS)
        ]
        periods = len(done["errors"]["oracle"])
        share = f"{100 * done['positives_counted_negative']:.1f} %"
        print(f"| {name} | {periods} | {share} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
