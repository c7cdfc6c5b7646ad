"""The loop's quality metrics, for one row of weights or a whole block of bootstrap resamples.

A resample is a vector of row multiplicities (weights); every metric here is computed from
weights, so the gate scores a block of resamples at once and training scores plain rows
(one row of ones) with the same code. `weighted_scorer` prepares the rows once (ROC-AUC's
sort) for a caller that scores many blocks of the same rows.
"""

from __future__ import annotations

from collections.abc import Callable

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
    w = _block(w)
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "roc_auc":
            return RocAuc(y, s)(w)
        if name == "pr_auc":
            return _average_precision(y.astype(bool), s, w)
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


def _block(w: np.ndarray) -> np.ndarray:
    w = np.atleast_2d(np.asarray(w))
    return w if w.dtype in (np.float32, np.float64) else w.astype(np.float64)


def weighted_scorer(
    name: str, y: np.ndarray, s: np.ndarray, rows: np.ndarray | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """`weighted_metric` of these rows, prepared once for many blocks of weights: the
    returned function takes a block (resamples × all rows) and gives the metric of each
    resample. `rows` (indices) restricts it to some rows, a slice, without copying the
    block's columns for a ranking metric."""
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    if name == "roc_auc":
        return RocAuc(y, s, rows)
    if rows is None:
        return lambda w: weighted_metric(name, y, s, w)
    y_rows, s_rows = y[rows], s[rows]
    return lambda w: weighted_metric(name, y_rows, s_rows, _block(w)[:, rows])


class RocAuc:
    """ROC-AUC under blocks of row weights, ties counting one half.

    The weighted AUC is Σ over positives i of w_i × (the negatives' weight scored below s_i
    + half of theirs tied with it), over (Σ positive weight × Σ negative weight). Prepared
    once: the negatives sorted by score, and for each positive how many of them score below
    it and how many at or below (`searchsorted`). A block then costs one gather of the
    negatives' weights in score order and one running sum of them, read at those two counts
    for each positive. A float32 block (the gate's resamples: whole-number multiplicities)
    is summed in float32 while its sums stay below 2**24, where every one is exact, and in
    float64 beyond."""

    def __init__(self, y: np.ndarray, s: np.ndarray, rows: np.ndarray | None = None) -> None:
        cols = np.arange(len(y)) if rows is None else np.asarray(rows, dtype=np.int64)
        positive = np.asarray(y)[cols].astype(bool)
        scores = np.asarray(s, dtype=np.float64)[cols]
        order = np.argsort(scores[~positive], kind="mergesort")
        negative_scores = scores[~positive][order]
        # column 0 stands for "no negative below": its gathered weight is set to 0
        self.running_cols = np.concatenate(([0], cols[~positive][order]))
        self.positive_cols = cols[positive]
        self.below = np.searchsorted(negative_scores, scores[positive], side="left")
        self.through = np.searchsorted(negative_scores, scores[positive], side="right")

    def _running(self, w: np.ndarray) -> np.ndarray:
        """Per resample, the negatives' weight summed in score order, from 0."""
        running = np.take(w, self.running_cols, axis=1)
        running[:, 0] = 0
        np.cumsum(running, axis=1, out=running)
        if running.dtype != np.float64 and running[:, -1].max() >= _FLOAT32_EXACT:
            return self._running(w.astype(np.float64))
        return running

    def __call__(self, w: np.ndarray) -> np.ndarray:
        w = _block(w)
        if w.shape[1] == 0:
            return np.full(w.shape[0], np.nan)
        running = self._running(w)
        ends = np.take(running, self.below, axis=1).astype(np.float64)
        ends += np.take(running, self.through, axis=1)
        wp = np.take(w, self.positive_cols, axis=1).astype(np.float64)
        n_pos, n_neg = wp.sum(axis=1), running[:, -1].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = 0.5 * np.einsum("ij,ij->i", wp, ends) / (n_pos * n_neg)
        return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


# Whole numbers up to here are exact in float32, and so is every sum of them that stays below.
_FLOAT32_EXACT = 2**24


def _average_precision(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
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
    # average precision: thresholds from the highest score down
    tp = np.cumsum(pos[:, ::-1], axis=1, dtype=np.float64)
    fp = np.cumsum(neg[:, ::-1], axis=1, dtype=np.float64)
    flagged = tp + fp
    precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
    ap = (pos[:, ::-1] * precision).sum(axis=1) / n_pos
    return np.where(n_pos > 0, ap, np.nan)
