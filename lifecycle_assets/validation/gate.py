"""The validation gate: challenger and production scored on the identical test rows.

The decision uses a paired bootstrap of Δ = challenger − production (oriented so that higher
is better): PASS only when the one-sided (1 − α) lower bound of Δ clears −margin.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lifecycle_assets.config import ValidationConfig

PASS, FAIL, FIRST_MODEL, FORCED = "PASS", "FAIL", "FIRST_MODEL", "FORCED"
HIGHER_IS_BETTER = {"roc_auc": True, "log_loss": False, "rmse": False, "mae": False}


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC by the rank-sum formula, ties averaged."""
    y = np.asarray(y, dtype=bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(s, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(s: np.ndarray) -> np.ndarray:
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # group equal scores and give each group its average 1-based rank
    boundaries = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(s)]))
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(p)) ** 2)))


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(p))))


METRICS = {"roc_auc": roc_auc, "log_loss": log_loss, "rmse": rmse, "mae": mae}


def metric(name: str, y: np.ndarray, s: np.ndarray) -> float:
    return METRICS[name](y, s)


def paired_bootstrap_delta(
    name: str,
    y: np.ndarray,
    challenger: np.ndarray,
    production: np.ndarray,
    samples: int,
    seed: int,
) -> np.ndarray:
    """Bootstrap distribution of the oriented difference, resampling the same rows for both."""
    rng = np.random.default_rng(seed)
    sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
    n = len(y)
    deltas = np.empty(samples)
    for b in range(samples):
        idx = rng.integers(0, n, n)
        deltas[b] = sign * (
            metric(name, y[idx], challenger[idx]) - metric(name, y[idx], production[idx])
        )
    return deltas[np.isfinite(deltas)]


def decide(
    y: np.ndarray,
    challenger: np.ndarray,
    production: np.ndarray | None,
    cfg: ValidationConfig,
    seed: int = 0,
) -> dict[str, Any]:
    """The decision record's numbers: metrics, the interval of Δ and the verdict."""
    if production is not None and len(production) != len(challenger):
        raise ValueError("challenger and production must be scored on the same rows")
    name = cfg.metric
    record: dict[str, Any] = {
        "metric": name,
        "higher_is_better": HIGHER_IS_BETTER[name],
        "n_rows": len(y),
        "n_positive": int(np.sum(y)) if len(y) else 0,
        "margin": cfg.margin,
        "alpha": cfg.alpha,
        "challenger_metric": metric(name, y, challenger),
        "production_metric": None,
        "delta": None,
        "delta_lower_bound": None,
        "delta_upper_bound": None,
    }
    if production is None:
        record["decision"] = FIRST_MODEL
        return record
    record["production_metric"] = metric(name, y, production)
    sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
    record["delta"] = sign * (record["challenger_metric"] - record["production_metric"])
    deltas = paired_bootstrap_delta(name, y, challenger, production, cfg.bootstrap_samples, seed)
    lower = float(np.quantile(deltas, cfg.alpha)) if len(deltas) else float("-inf")
    record["delta_lower_bound"] = lower
    record["delta_upper_bound"] = float(np.quantile(deltas, 1 - cfg.alpha)) if len(deltas) else None
    record["decision"] = PASS if lower > -cfg.margin else FAIL
    return record
