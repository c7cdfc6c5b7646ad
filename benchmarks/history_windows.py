"""How far back a model should learn: the recent window, the whole history, or a choice
between them on the newest period (`training/history.py`), measured offline on the quality
benchmark's scenario files.

    .venv/bin/python benchmarks/history_windows.py --workdir /work/quality-run11
    .venv/bin/python benchmarks/history_windows.py --workdir DIR --scenarios public-housing

Reads each scenario's `data.parquet` and `lifecycle-gbdt.yaml` from a `benchmarks/quality.py`
workdir (run that first; it writes them). For every period t from the sixth on, LightGBM with
the `gbdt` family's default hyperparameters (the family's own `lightgbm_params`; no
compilation, no loop) is fitted on

- `recent`: the `windows.train_days` periods before t (four in the benchmark), and
- `history`: every period before t,

and scored on period t by the scenario's metric (ROC-AUC or RMSE). The same two candidates
fitted without period t-1 and scored on it decide the choice for period t, as training does
on a split's newest day: `choose@X` keeps the history unless the recent window scored more
than X (relative) better. `choose@X, 2 windows` judges as training does now (`FOLDS`): the
two candidates' scores on period t-1 and on t-2 (each fitted on the periods before it)
averaged, then compared. No label delay, no gate, no drift trigger: the figures compare
how far back to learn, not the loop. Each scenario's per-period scores are written to
`DIR/<scenario>/history-windows.json` as it finishes and reused by a rerun.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lifecycle_assets.hyperparameters import GbdtParams  # noqa: E402
from lifecycle_assets.metrics import HIGHER_IS_BETTER, metric  # noqa: E402
from lifecycle_assets.training.trees import lightgbm_params  # noqa: E402

FIRST_SCORED = 5  # period t needs t-1 to judge on and one period before that to fit on
THRESHOLDS = (0.0, 0.005, 0.01, 0.02)
TWO_WINDOWS_AT = 0.005  # training's RECENT_BY


class Scenario(NamedTuple):
    """A quality.py scenario's rows as LightGBM takes them, with each row's period."""

    task: str
    metric: str  # the scenario's metric: roc_auc (binary) or rmse
    x: np.ndarray
    y: np.ndarray
    period: np.ndarray  # index of each row's period, 0 = the first
    starts: np.ndarray  # each period's first instant
    categorical: list[int]  # columns of x that are categorical codes
    train_periods: int  # windows.train_days: one loop day per period


def load_scenario(root: Path) -> Scenario:
    """A scenario's `data.parquet`, cut into its periods by its `lifecycle-gbdt.yaml`."""
    try:
        from quality import INTERVAL  # run as a script: benchmarks/ is on sys.path
    except ImportError:  # imported as benchmarks.history_windows
        from benchmarks.quality import INTERVAL

    cfg = yaml.safe_load((root / "lifecycle-gbdt.yaml").read_text())
    problem, task = cfg["problem"], cfg["problem"]["task"]
    frame = pl.read_parquet(root / "data.parquet").sort(problem["event_time"])
    period = pl.col(problem["event_time"]).dt.truncate(INTERVAL[cfg["replay"]["period"]])
    frame = frame.with_columns(period.alias("_period"))
    starts = np.sort(frame["_period"].unique().to_numpy())
    index = np.searchsorted(starts, frame["_period"].to_numpy())
    numeric, categorical = problem["numeric_features"], problem["categorical_features"]
    x = frame.select(
        [pl.col(c).cast(pl.Float64) for c in numeric]
        + [pl.col(c).cast(pl.String).cast(pl.Categorical).to_physical() for c in categorical]
    ).to_numpy()
    return Scenario(
        task=task,
        metric="roc_auc" if task == "binary" else "rmse",
        x=x,
        y=frame[problem["label"]].cast(pl.Float64).to_numpy(),
        period=index,
        starts=starts,
        categorical=list(range(len(numeric), len(numeric) + len(categorical))),
        train_periods=int(cfg["windows"]["train_days"]),
    )


def fit_gbdt(
    data: Scenario, rows: np.ndarray, overrides: dict[str, Any] | None = None, threads: int = 2
) -> Any:
    """LightGBM on the scenario's `rows` (a mask), with the `gbdt` family's hyperparameters
    (`overrides` on its defaults) through the family's own `lightgbm_params` (seed 7), for
    all of its rounds: no holdout, no compilation."""
    import lightgbm as lgb

    hp = GbdtParams(**(overrides or {})).model_dump(exclude_none=True)
    params = lightgbm_params(hp, data.task, 7, threads)
    train = lgb.Dataset(data.x[rows], data.y[rows], categorical_feature=data.categorical)
    return lgb.train(params, train, num_boost_round=int(hp["num_trees"]))


def scenario_scores(root: Path) -> dict[str, Any]:
    """Per period: each candidate's score on it, and on the period before it."""
    data = load_scenario(root)
    y, index, name, recent_periods = data.y, data.period, data.metric, data.train_periods

    def fitted_score(first: int, scored: int) -> float:
        booster = fit_gbdt(data, (index >= first) & (index < scored), threads=1)
        test = index == scored
        return metric(name, y[test], booster.predict(data.x[test]))

    periods = []
    for t in range(FIRST_SCORED, len(data.starts)):
        periods.append(
            {
                "period": str(data.starts[t])[:10],
                "test": {
                    "recent": fitted_score(t - recent_periods, t),
                    "history": fitted_score(0, t),
                },
                "newest": {
                    "recent": fitted_score(t - 1 - recent_periods, t - 1),
                    "history": fitted_score(0, t - 1),
                },
            }
        )
    return {"metric": name, "periods": periods}


def summary(scores: dict[str, Any]) -> dict[str, float]:
    """Mean score per strategy over the periods."""
    sign = 1.0 if HIGHER_IS_BETTER[scores["metric"]] else -1.0
    periods = scores["periods"]
    out = {k: float(np.mean([p["test"][k] for p in periods])) for k in ("recent", "history")}

    def gain(judged: list[dict[str, float]]) -> float:
        mean = {k: float(np.mean([j[k] for j in judged])) for k in ("recent", "history")}
        return sign * (mean["recent"] - mean["history"]) / max(abs(mean["history"]), 1e-12)

    for threshold in THRESHOLDS:
        chosen = [
            p["test"]["recent" if gain([p["newest"]]) > threshold else "history"] for p in periods
        ]
        out[f"choose@{threshold:g}"] = float(np.mean(chosen))
    # Judged on two windows (training's FOLDS): the period before t and the one before that,
    # whose candidates are the previous period's `newest` fits; the first period has one.
    chosen = []
    for i, p in enumerate(periods):
        judged = [q["newest"] for q in periods[max(i - 1, 0) : i + 1]]
        chosen.append(p["test"]["recent" if gain(judged) > TWO_WINDOWS_AT else "history"])
    out[f"choose@{TWO_WINDOWS_AT:g}, 2 windows"] = float(np.mean(chosen))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a quality.py workdir")
    parser.add_argument("--scenarios", default="", help="comma-separated (default: all there)")
    args = parser.parse_args(argv)
    wanted = [s for s in args.scenarios.split(",") if s]
    roots = sorted(p.parent for p in args.workdir.glob("*/lifecycle-gbdt.yaml"))
    roots = [r for r in roots if not wanted or r.name in wanted]
    if not roots:
        parser.error(f"no scenario with lifecycle-gbdt.yaml and data.parquet in {args.workdir}")
    print(
        "| scenario | metric | periods | recent | history | "
        + " | ".join(f"choose@{t:g}" for t in THRESHOLDS)
        + f" | choose@{TWO_WINDOWS_AT:g}, 2 windows |"
    )
    print("|---|---|---|" + "---|" * (3 + len(THRESHOLDS)))
    for root in roots:
        out = root / "history-windows.json"
        scores = json.loads(out.read_text()) if out.exists() else scenario_scores(root)
        out.write_text(json.dumps(scores, indent=1))
        row = summary(scores)
        cells = " | ".join(f"{v:.4f}" for v in row.values())
        print(f"| {root.name} | {scores['metric']} | {len(scores['periods'])} | {cells} |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
