"""Monitoring measures: plain functions over served predictions and matured labels.

- prediction bias: mean score minus mean label, with a normal-approximation interval of the
  paired per-row difference (the same rows contribute both means);
- live quality: the gate's metric on matured labels, with label coverage, and how far it
  fell below the quality the model was validated with (`quality_drop`, oriented by the metric);
- feature drift: population stability index (PSI) of each feature against the reference
  the model carries from its training data;
- model age: days since the serving model was trained.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from lifecycle_assets.metrics import HIGHER_IS_BETTER
from lifecycle_assets.worktime import work

REFERENCE_BINS = 10
_EPS = 1e-4  # floor for empty bins, so PSI stays finite


@work("transforms")
def feature_reference(
    frame: pl.DataFrame, numeric: tuple[str, ...], categorical: tuple[str, ...]
) -> dict[str, Any]:
    """What drift is measured against: decile edges and shares per numeric feature, category
    shares per categorical feature. Small, JSON-safe, stored in the model's manifest."""
    ref: dict[str, Any] = {"rows": frame.height, "numeric": {}, "categorical": {}}
    for col in numeric:
        values = frame[col].drop_nulls().cast(pl.Float64).to_numpy()
        if len(values) == 0:
            continue
        edges = np.unique(np.quantile(values, np.linspace(0, 1, REFERENCE_BINS + 1))[1:-1])
        ref["numeric"][col] = {
            "edges": edges.tolist(),
            "shares": _bin_shares(values, edges).tolist(),
        }
    for col in categorical:
        counts = frame[col].drop_nulls().value_counts()
        total = counts["count"].sum() or 1
        ref["categorical"][col] = {
            str(k): int(c) / total for k, c in zip(counts[col], counts["count"], strict=True)
        }
    return ref


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(edges, values, side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)
    return counts / max(len(values), 1)


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected, _EPS)
    a = np.maximum(actual, _EPS)
    return float(np.sum((a - e) * np.log(a / e)))


@work("transforms")
def feature_drift(frame: pl.DataFrame, reference: dict[str, Any]) -> dict[str, float]:
    """PSI per feature of `frame` against `reference` (0 = same distribution; > 0.2 is large)."""
    out: dict[str, float] = {}
    if frame.height == 0:
        return out
    for col, ref in reference.get("numeric", {}).items():
        if col in frame.columns:
            values = frame[col].drop_nulls().cast(pl.Float64).to_numpy()
            edges = np.asarray(ref["edges"], dtype=np.float64)
            out[col] = _psi(np.asarray(ref["shares"]), _bin_shares(values, edges))
    for col, shares in reference.get("categorical", {}).items():
        if col in frame.columns:
            counts = frame[col].drop_nulls().value_counts()
            total = counts["count"].sum() or 1
            current = {
                str(k): int(c) / total for k, c in zip(counts[col], counts["count"], strict=True)
            }
            # Categories unseen in training share one bucket, as the model's OOV index does.
            keys = sorted(shares)
            expected = np.array([shares[k] for k in keys] + [0.0])
            actual = np.array(
                [current.get(k, 0.0) for k in keys]
                + [sum(v for k, v in current.items() if k not in shares)]
            )
            out[col] = _psi(expected, actual)
    return out


def prediction_bias(scores: np.ndarray, labels: np.ndarray, z: float = 1.96) -> dict[str, Any]:
    """Mean score − mean label on the same rows, with a two-sided interval."""
    n = len(scores)
    if n == 0:
        return {"n": 0, "bias": None, "low": None, "high": None}
    diff = np.asarray(scores, dtype=np.float64) - np.asarray(labels, dtype=np.float64)
    bias = float(diff.mean())
    se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else float("inf")
    return {"n": n, "bias": bias, "low": bias - z * se, "high": bias + z * se}


def mean_interval(values: np.ndarray, z: float = 1.96) -> dict[str, Any]:
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "low": None, "high": None}
    mean = float(np.mean(values))
    se = float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else float("inf")
    return {"n": n, "mean": mean, "low": mean - z * se, "high": mean + z * se}


def out_of_range(logs: pl.DataFrame) -> dict[str, Any]:
    """Requests the service answered with a feature beyond the serving model's training
    range (their log records' `out_of_range` flags): how many, what share, which features."""
    if logs.height == 0 or "out_of_range" not in logs.columns:
        return {"out_of_range_rows": 0, "out_of_range_share": None, "out_of_range_features": {}}
    flags = logs["out_of_range"]
    rows = int((flags.list.len().fill_null(0) > 0).sum())
    counts = flags.explode().drop_nulls().value_counts(sort=True)
    return {
        "out_of_range_rows": rows,
        "out_of_range_share": rows / logs.height,
        "out_of_range_features": {str(k): int(v) for k, v in counts.iter_rows()},
    }


def quality_drop(live: float | None, validated: float | None, metric_name: str) -> float | None:
    """How much worse live quality is than the quality the model was validated with, in the
    metric's units: positive is worse whichever way the metric points (ROC-AUC falling,
    log-loss or RMSE rising). None when either is missing or not finite.

    The one implementation behind every staleness decision (the daemon's sensor and the
    replay's `triggered` policy), so the orientation cannot differ between them."""
    if live is None or validated is None or not (math.isfinite(live) and math.isfinite(validated)):
        return None
    sign = 1.0 if HIGHER_IS_BETTER[metric_name] else -1.0
    return float(sign * (validated - live))
