"""The loop's quality metrics, for one row of weights or a whole block of bootstrap resamples.

A resample is a vector of row multiplicities (weights); every metric here is computed from
weights, so the gate scores a block of resamples at once and training scores plain rows
(one row of ones) with the same code.
"""

from __future__ import annotations

import numpy as np

HIGHER_IS_BETTER = {
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
}


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC (ties count one half)."""
    return float(weighted_metric("roc_auc", y, s, _ones(len(y)))[0])


def pr_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision: Σ over score thresholds of precision × recall gained (tied scores
    form one threshold), the definition scikit-learn's `average_precision_score` uses."""
    return float(weighted_metric("pr_auc", y, s, _ones(len(y)))[0])


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(weighted_metric("log_loss", y, p, _ones(len(y)))[0])


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(weighted_metric("rmse", y, p, _ones(len(y)))[0])


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(weighted_metric("mae", y, p, _ones(len(y)))[0])


METRICS = {"roc_auc": roc_auc, "pr_auc": pr_auc, "log_loss": log_loss, "rmse": rmse, "mae": mae}
# The metrics of a binary task: its scores are probabilities and its labels 0 or 1.
BINARY_METRICS = ("roc_auc", "pr_auc", "log_loss")


def metric(name: str, y: np.ndarray, s: np.ndarray) -> float:
    return METRICS[name](np.asarray(y), np.asarray(s))


def _ones(n: int) -> np.ndarray:
    return np.ones((1, n), dtype=np.float64)


def weighted_metric(name: str, y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The metric under each row of weights `w` (resamples × rows); nan where undefined."""
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    w = np.atleast_2d(np.asarray(w))
    if w.dtype not in (np.float32, np.float64):
        w = w.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if name in ("roc_auc", "pr_auc"):
            return _ranking_metric(name, y.astype(bool), s, w)
        total = w.sum(axis=1)
        if name == "log_loss":
            p = np.clip(s, 1e-7, 1 - 1e-7)
            loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
            return (w @ loss) / total
        if name == "mae":
            return (w @ np.abs(y - s)) / total
        if name == "rmse":
            return np.sqrt((w @ (y - s) ** 2) / total)
    raise ValueError(f"unknown metric {name!r}: expected one of {sorted(METRICS)}")


def _ranking_metric(name: str, y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    if len(s) == 0:
        return np.full(w.shape[0], np.nan)
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # one group per distinct score, ascending
    starts = np.concatenate(([0], np.flatnonzero(np.diff(sorted_s)) + 1))
    wo = w[:, order]
    pos = np.where(y[order], wo, 0.0)
    neg = wo - pos
    if len(starts) < len(s):  # tied scores: one column per distinct score
        pos = np.add.reduceat(pos, starts, axis=1)
        neg = np.add.reduceat(neg, starts, axis=1)
    n_pos = pos.sum(axis=1, dtype=np.float64)
    n_neg = neg.sum(axis=1, dtype=np.float64)
    if name == "roc_auc":
        neg_below = np.cumsum(neg, axis=1) - neg
        auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1, dtype=np.float64) / (n_pos * n_neg)
        return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)
    # average precision: thresholds from the highest score down
    tp = np.cumsum(pos[:, ::-1], axis=1, dtype=np.float64)
    fp = np.cumsum(neg[:, ::-1], axis=1, dtype=np.float64)
    flagged = tp + fp
    precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
    ap = (pos[:, ::-1] * precision).sum(axis=1) / n_pos
    return np.where(n_pos > 0, ap, np.nan)
