"""Is the next model worse than the one it would replace? Measured offline on the quality
benchmark's scenario files, for the `gbdt` family's defaults and for other hyperparameters.

    .venv/bin/python benchmarks/successors.py --workdir /work/runs/qfull-folds
    .venv/bin/python benchmarks/successors.py --workdir DIR --scenarios public-housing \\
        --variant leaves7:num_leaves=7 --variant slow:num_trees=400,learning_rate=0.025

Reads each scenario's `data.parquet` and `lifecycle-gbdt.yaml` from a `benchmarks/quality.py`
workdir (as `history_windows.py` does). For every period k from the fifth on, LightGBM with the
variant's hyperparameters (the family's `lightgbm_params`; no holdout, no compilation, no
loop) is fitted on every period before k — the loop's history, with no label delay — and
scored on period k, beside the model fitted one period earlier. Per variant:

- `first`: the model fitted on the first period alone, mean score on the periods from the
  third on (what a first model serves);
- `mean`: each period's score by the model fitted just before it (daily retraining, every
  challenger promoted);
- `worse`: how many successors score worse on period k than their predecessor by more than
  the gate's default margin (0.01 ROC-AUC; 1 % of the predecessor's RMSE) — the challengers
  a gate with exact figures would still reject; `median Δ`: the successors' median gain.

No label delay, no gate noise: what `worse` counts is what the data does to a model one period
newer. Each scenario's figures are written to `DIR/<scenario>/successors.json` as each
variant finishes and reused by a rerun.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:
    from history_windows import fit_gbdt, load_scenario  # run as a script: on sys.path
except ImportError:  # imported as benchmarks.successors
    from benchmarks.history_windows import fit_gbdt, load_scenario  # type: ignore[no-redef]

from lifecycle_assets.hyperparameters import GbdtParams  # noqa: E402
from lifecycle_assets.metrics import HIGHER_IS_BETTER, metric  # noqa: E402

FIRST_SCORED = 4  # the first successor: fitted on four periods, its predecessor on three
MARGIN = {"roc_auc": 0.01, "rmse": 0.01}  # the gate's defaults: absolute, relative
VARIANTS = {
    "default": {},
    "leaf100": {"min_data_in_leaf": 100},
    "leaves7": {"num_leaves": 7},
    "l2_50": {"lambda_l2": 50.0},
    "slow400": {"num_trees": 400, "learning_rate": 0.025},
    "ff05": {"feature_fraction": 0.5},
}


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """`name:key=value,key=value` → (name, overrides), checked against `GbdtParams`."""
    name, _, rest = text.partition(":")
    if not name or not rest:
        raise ValueError(f"--variant {text!r}: expected name:key=value[,key=value]")
    overrides: dict[str, Any] = {}
    for pair in rest.split(","):
        key, _, value = pair.partition("=")
        overrides[key] = float(value) if "." in value else int(value)
    GbdtParams(**overrides)  # an unknown or out-of-range hyperparameter is named here
    return name, overrides


def successor_scores(root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    data = load_scenario(root)

    def fitted(rows: np.ndarray) -> Any:
        return fit_gbdt(data, rows, overrides)

    def score(model: Any, k: int) -> float:
        rows = data.period == k
        return metric(data.metric, data.y[rows], model.predict(data.x[rows]))

    periods = len(data.starts)
    first = fitted(data.period == 0)
    first_mean = float(np.mean([score(first, k) for k in range(2, periods)]))
    sign = 1.0 if HIGHER_IS_BETTER[data.metric] else -1.0
    before = fitted(data.period < FIRST_SCORED - 1)
    served, gains = [], []
    for k in range(FIRST_SCORED, periods):
        model = fitted(data.period < k)
        new, old = score(model, k), score(before, k)
        gain = sign * (new - old)
        gains.append(gain if HIGHER_IS_BETTER[data.metric] else gain / old)
        served.append(new)
        before = model
    margin = MARGIN[data.metric]
    return {
        "metric": data.metric,
        "first": first_mean,
        "mean": float(np.mean(served)),
        "successors": len(gains),
        "worse": int(sum(g < -margin for g in gains)),
        "median_gain": float(np.median(gains)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a quality.py workdir")
    parser.add_argument("--scenarios", default="", help="comma-separated (default: all there)")
    parser.add_argument(
        "--variant", action="append", default=[],
        help="name:key=value[,key=value] (repeatable; default: the built-in set)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        variants = dict(parse_variant(v) for v in args.variant) if args.variant else VARIANTS
    except ValueError as err:
        parser.error(str(err))
    wanted = [s for s in args.scenarios.split(",") if s]
    roots = sorted(p.parent for p in args.workdir.glob("*/lifecycle-gbdt.yaml"))
    roots = [r for r in roots if not wanted or r.name in wanted]
    if not roots:
        parser.error(f"no scenario with lifecycle-gbdt.yaml and data.parquet in {args.workdir}")
    print("| scenario | variant | first model | mean | worse successors | median gain |")
    print("|---|---|---|---|---|---|")
    for root in roots:
        out = root / "successors.json"
        done = json.loads(out.read_text()) if out.exists() else {}
        for name, overrides in variants.items():
            key = json.dumps({"name": name, **overrides}, sort_keys=True)
            if key not in done:
                done[key] = successor_scores(root, overrides)
                out.write_text(json.dumps(done, indent=1))
            r = done[key]
            print(
                f"| {root.name} | {name} | {r['first']:.4f} | {r['mean']:.4f} | "
                f"{r['worse']} of {r['successors']} | {r['median_gain']:+.4f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
