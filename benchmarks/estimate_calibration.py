"""How calibrating a model on cross-fitted scores moves the label-free estimate, measured
offline on the quality benchmark's scenario files.

    .venv/bin/python benchmarks/estimate_calibration.py --workdir /work/runs/qfull-folds \\
        --scenarios covariate,stable

Reads each scenario's `data.parquet` and `lifecycle-gbdt.yaml` from a `benchmarks/quality.py`
workdir. For every period t from the sixth on, LightGBM with the `gbdt` defaults is fitted on
every period before t and scores period t; the estimate's error is the expected ROC-AUC of
those scores (`monitoring.estimate.expected_roc_auc`) minus their ROC-AUC on the period's
labels. Three versions of the scores:

- `raw`: the model's own probabilities (the family's default: no holdout, no calibration);
- `random folds`: through a Platt map fitted on the fitted rows' cross-fitted scores, each
  row in one of k folds drawn at random (`training.calibration_folds`, as training does);
- `time blocks`: the same with k consecutive blocks of time instead.

No loop, no label delay: the figures compare the calibrations, not the loop's own estimate.
Each scenario's errors are written to `DIR/<scenario>/estimate-calibration.json` and reused by
a rerun.
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
except ImportError:  # imported as benchmarks.estimate_calibration
    from benchmarks.history_windows import fit_gbdt, load_scenario  # type: ignore[no-redef]

from lifecycle_assets.metrics import metric  # noqa: E402
from lifecycle_assets.monitoring.estimate import expected_roc_auc  # noqa: E402
from lifecycle_assets.training.artifact import calibrate  # noqa: E402
from lifecycle_assets.training.train import fit_calibration  # noqa: E402

FIRST_ESTIMATED = 5
KINDS = ("raw", "random folds", "time blocks")


def scenario_errors(root: Path, folds: int) -> dict[str, Any]:
    data = load_scenario(root)
    if data.task != "binary":
        raise SystemExit(f"{root.name}: the estimate's calibration is for binary tasks")

    def fitted(rows: np.ndarray) -> Any:
        return fit_gbdt(data, rows)

    errors: dict[str, list[float]] = {k: [] for k in KINDS}
    for t in range(FIRST_ESTIMATED, len(data.starts)):
        rows = np.flatnonzero(data.period < t)
        test = data.period == t
        scores = fitted(data.period < t).predict(data.x[test])
        realised = metric("roc_auc", data.y[test], scores)
        errors["raw"].append(expected_roc_auc(scores) - realised)
        assignments = {
            "random folds": np.random.default_rng(7).permutation(len(rows)) % folds,
            "time blocks": (np.arange(len(rows)) * folds) // len(rows),
        }
        for kind, fold_of in assignments.items():
            cross = np.empty(len(rows))
            for fold in range(folds):
                others = np.zeros(len(data.y), dtype=bool)
                others[rows[fold_of != fold]] = True
                cross[fold_of == fold] = fitted(others).predict(data.x[rows[fold_of == fold]])
            platt = fit_calibration(cross, data.y[rows], "platt")
            calibrated = calibrate(scores, platt if platt.get("method") else None)
            errors[kind].append(expected_roc_auc(calibrated) - realised)
    return {"folds": folds, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a quality.py workdir")
    parser.add_argument("--scenarios", default="covariate,stable", help="comma-separated")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    kinds = " | ".join(f"{k}: median \\|error\\|, mean" for k in KINDS)
    print(f"| scenario | periods | {kinds} |")
    print("|---|---|" + "---|" * len(KINDS))
    for name in filter(None, args.scenarios.split(",")):
        root = args.workdir / name
        out = root / "estimate-calibration.json"
        done = json.loads(out.read_text()) if out.exists() else None
        if done is None or done["folds"] != args.folds:
            done = scenario_errors(root, args.folds)
            out.write_text(json.dumps(done, indent=1))
        cells = [
            f"{np.median(np.abs(e)):.4f}, {np.mean(e):+.4f}"
            for e in (np.asarray(done["errors"][k]) for k in KINDS)
        ]
        periods = len(done["errors"]["raw"])
        print(f"| {name} | {periods} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
