"""Quality estimated before the labels arrive: plain numpy functions.

Binary tasks (confidence-based performance estimation): a calibrated score p is the
probability that the row is positive, so the model's own scores say what quality to expect
on a day's traffic. Expected ROC-AUC counts each row as a positive of weight p and a
negative of weight 1 − p (pairs of a row with itself excluded); expected log-loss is the mean
binary entropy of p. The interval is the spread of the metric over label vectors drawn
y ~ Bernoulli(p): the quality the day's traffic would show if the scores are calibrated.

Regression: a linear model of the absolute residual, fitted on rows whose labels arrived,
predicts each new row's expected error; the spread of the fitted rows' standardised
residuals (|r| / predicted |r|) turns that into expected MAE and RMSE with an interval.

Both hold only while the relation the model learned holds: concept drift that leaves the
scores (or the features) unchanged leaves the estimate unchanged too, however wrong the
model has become. The estimate tracks covariate shift, not a changed P(y | x).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from lifecycle_assets.metrics import BINARY_METRICS, metric
from lifecycle_assets.worktime import work

DRAWS = 400
LEVEL = 0.95
# Cells (draws × rows) per block of label draws: bounds memory to a few tens of MB.
_BLOCK_CELLS = 2_000_000
_CLIP = 1e-15  # log-loss clips probabilities as the gate's metric does
ESTIMATED_METRICS = ("roc_auc", "pr_auc", "log_loss", "rmse", "mae")


def _probabilities(scores: np.ndarray) -> np.ndarray:
    p = np.asarray(scores, dtype=np.float64)
    p = p[np.isfinite(p)]
    return np.clip(p, 0.0, 1.0)


def expected_roc_auc(scores: np.ndarray, probabilities: np.ndarray | None = None) -> float | None:
    """ROC-AUC expected under the scores' own probabilities: the AUC of every (positive,
    negative) pair of distinct rows, each pair weighted p_i (1 − p_j), ties counting half.
    `probabilities`: each row's chance of being positive taken from elsewhere (a known
    P(y | x)), the rows still ranked by `scores`. None when no pair can be formed (fewer than
    two rows, or every p is 0 or every p is 1)."""
    if probabilities is None:
        s = p = _probabilities(scores)
    else:
        s, p = np.asarray(scores, dtype=np.float64), np.asarray(probabilities, dtype=np.float64)
        finite = np.isfinite(s) & np.isfinite(p)
        s, p = s[finite], np.clip(p[finite], 0.0, 1.0)
    if len(p) < 2:
        return None
    order = np.argsort(s, kind="stable")
    s, pos = s[order], p[order]
    neg = 1.0 - pos
    # groups of tied scores: each row's group's totals
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos_g = np.add.reduceat(pos, starts)
    neg_g = np.add.reduceat(neg, starts)
    self_g = np.add.reduceat(pos * neg, starts)
    neg_below = np.cumsum(neg_g) - neg_g  # negative weight strictly below each group
    numerator = float(np.sum(pos_g * neg_below) + 0.5 * np.sum(pos_g * neg_g - self_g))
    denominator = float(pos.sum() * neg.sum() - self_g.sum())
    if denominator <= 0:
        return None
    return numerator / denominator


def expected_log_loss(scores: np.ndarray) -> float | None:
    """Log-loss expected under the scores' own probabilities: the mean binary entropy of p
    (nats). None for no rows."""
    p = np.clip(_probabilities(scores), _CLIP, 1 - _CLIP)
    if len(p) == 0:
        return None
    return float(np.mean(-(p * np.log(p) + (1 - p) * np.log1p(-p))))


def _midranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks of `s`, ties sharing their mean rank."""
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks start+1 … end
    ranks = np.empty(len(s))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _label_blocks(p: np.ndarray, draws: int, seed: int) -> Any:
    """Label vectors y ~ Bernoulli(p), `draws` of them, in blocks of rows (draws × rows)."""
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // max(len(p), 1))
    for start in range(0, draws, block):
        yield rng.random((min(block, draws - start), len(p))) < p


def sampled_binary_metric(
    name: str, scores: np.ndarray, draws: int = DRAWS, seed: int = 0
) -> np.ndarray:
    """The metric `name` of the scores under `draws` label vectors y ~ Bernoulli(p); draws
    where it is undefined (one class only) are left out. ROC-AUC and log-loss are
    vectorised; any other gate metric is computed draw by draw."""
    p = _probabilities(scores)
    if len(p) == 0:
        return np.zeros(0)
    out: list[np.ndarray] = []
    if name == "roc_auc":
        ranks = _midranks(p)
        for y in _label_blocks(p, draws, seed):
            n1 = y.sum(axis=1).astype(np.float64)
            n0 = len(p) - n1
            with np.errstate(divide="ignore", invalid="ignore"):
                out.append((y @ ranks - n1 * (n1 + 1) / 2) / (n1 * n0))
    elif name == "log_loss":
        q = np.clip(p, _CLIP, 1 - _CLIP)
        log_odds, log_neg = np.log(q) - np.log1p(-q), np.log1p(-q)
        for y in _label_blocks(p, draws, seed):
            out.append(-(y @ log_odds + log_neg.sum()) / len(p))
    else:
        for y in _label_blocks(p, draws, seed):
            out.append(
                np.array(
                    [
                        metric(name, row.astype(np.float64), p)
                        if 0 < row.sum() < len(p)
                        else np.nan
                        for row in y
                    ]
                )
            )
    values = np.concatenate(out)
    return values[np.isfinite(values)]


def _interval(values: np.ndarray, level: float) -> tuple[float | None, float | None]:
    if len(values) == 0:
        return None, None
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def estimate_binary(
    name: str, scores: np.ndarray, draws: int = DRAWS, level: float = LEVEL, seed: int = 0
) -> dict[str, Any]:
    """The day's expected `name` (roc_auc, log_loss analytically; pr_auc as the mean of the
    draws) from its calibrated scores, with the `level` interval of the draws. `estimate`
    is None when there is nothing to estimate from."""
    p = _probabilities(scores)
    sampled = sampled_binary_metric(name, p, draws, seed)
    if name == "roc_auc":
        point = expected_roc_auc(p)
    elif name == "log_loss":
        point = expected_log_loss(p)
    else:
        point = float(sampled.mean()) if len(sampled) else None
    low, high = _interval(sampled, level)
    if point is None:
        low = high = None
    return {"metric": name, "estimate": point, "low": low, "high": high, "rows": len(p)}


# --- regression -------------------------------------------------------------------------------

_QUANTILES = 401  # quantiles of the standardised residuals a model keeps (JSON-small)


def fit_residual_model(x: np.ndarray, residual: np.ndarray, ridge: float = 1.0) -> dict[str, Any]:
    """A ridge regression of |residual| on the columns of `x` (features and the prediction,
    rows × columns; NaN is imputed with the column mean), JSON-safe. It also keeps the
    quantiles of the standardised residuals |r| / predicted |r|, from which expected MAE and
    RMSE and their intervals follow (`estimate_regression`)."""
    x = np.asarray(x, dtype=np.float64)
    r = np.abs(np.asarray(residual, dtype=np.float64))
    keep = np.isfinite(r)
    x, r = x[keep], r[keep]
    if len(r) < 2:
        raise ValueError("a residual model needs at least two rows with a residual")
    x = x.reshape(len(r), -1)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    z = _standardise(x, mean, np.ones_like(mean))
    scale = z.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = z / scale
    design = np.c_[np.ones(len(r)), z]
    penalty = ridge * np.eye(design.shape[1])
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    coef = np.linalg.solve(design.T @ design + penalty, design.T @ r)
    model = {
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": coef.tolist(),
        # a floor keeps every predicted |r| positive, so ratios stay finite
        "floor": float(max(0.05 * r.mean(), 1e-12)),
        "rows": len(r),
    }
    ratios = r / predict_abs_residual(model, x)
    q = np.quantile(ratios, np.linspace(0, 1, _QUANTILES))
    model["ratio_quantiles"] = q.tolist()
    # The moments of the distribution the interval draws from (linear between the kept
    # quantiles), so that the point estimate sits where the draws do.
    lo, hi = q[:-1], q[1:]
    model["ratio_mean"] = float(np.mean((lo + hi) / 2))
    model["ratio_square_mean"] = float(np.mean((lo**2 + lo * hi + hi**2) / 3))
    return model


def _standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    filled = np.where(np.isfinite(x), x, mean)
    return (filled - mean) / scale


def predict_abs_residual(model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Each row's expected |residual| under a `fit_residual_model` model."""
    mean = np.asarray(model["mean"], dtype=np.float64)
    x = np.asarray(x, dtype=np.float64).reshape(-1, len(mean))
    z = _standardise(x, mean, np.asarray(model["scale"], dtype=np.float64))
    coef = np.asarray(model["coef"], dtype=np.float64)
    return np.maximum(coef[0] + z @ coef[1:], float(model["floor"]))


def estimate_regression(
    name: str,
    model: dict[str, Any],
    x: np.ndarray,
    draws: int = DRAWS,
    level: float = LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """The day's expected `name` (mae or rmse) from its rows' features and predictions `x`,
    with the `level` interval over residuals drawn as predicted |r| × a standardised residual
    of the fitted rows."""
    if name not in ("mae", "rmse"):
        raise ValueError(f"no residual estimate for {name!r} (mae | rmse)")
    g = predict_abs_residual(model, x)
    if len(g) == 0:
        return {"metric": name, "estimate": None, "low": None, "high": None, "rows": 0}
    if name == "mae":
        point = float(g.mean() * model["ratio_mean"])
    else:
        point = math.sqrt(float(np.mean(g**2)) * model["ratio_square_mean"])
    grid = np.linspace(0, 1, len(model["ratio_quantiles"]))
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // len(g))
    sampled: list[np.ndarray] = []
    for start in range(0, draws, block):
        u = rng.random((min(block, draws - start), len(g)))
        r = g * np.interp(u, grid, model["ratio_quantiles"])
        sampled.append(r.mean(axis=1) if name == "mae" else np.sqrt(np.mean(r**2, axis=1)))
    low, high = _interval(np.concatenate(sampled), level)
    return {"metric": name, "estimate": point, "low": low, "high": high, "rows": len(g)}


def estimate_error(estimated: float | None, realised: float | None) -> float | None:
    """estimated − realised, in the metric's units; None when either is missing."""
    if estimated is None or realised is None:
        return None
    if not (math.isfinite(estimated) and math.isfinite(realised)):
        return None
    return float(estimated - realised)


def covered(low: float | None, high: float | None, realised: float | None) -> bool | None:
    """Whether the estimate's interval holds the realised value; None when either is missing."""
    if low is None or high is None or realised is None or not math.isfinite(realised):
        return None
    return bool(low <= realised <= high)


# The interval is widened by the errors the estimate made on earlier matured days once there
# are at least this many of them (fewer say too little about the tails).
ERROR_DAYS_MIN = 5


def widened_by_errors(
    estimated: float | None,
    low: float | None,
    high: float | None,
    errors: Sequence[float | None],
    level: float = LEVEL,
    bounds: tuple[float, float] = (0.0, math.inf),
) -> dict[str, Any]:
    """The interval at least as wide as the estimate's own recent errors require: the
    estimate ± the conformal quantile of the absolute errors (estimated − realised) of
    earlier matured days, at the interval's `level` — the ⌈(n + 1)·level⌉-th smallest of n,
    the largest when n is too small for that rank — unioned with the interval as computed.

    The draws behind the interval see only the labels' randomness given calibrated scores.
    What they cannot see — calibration that drifted with the traffic, a changed relation —
    shows in the errors of days whose labels have matured, so the interval takes their
    measure. Fewer than `ERROR_DAYS_MIN` errors, or no estimate: the interval unchanged.
    The widened bounds stay within the metric's range (`bounds`: ROC-AUC and PR-AUC in
    [0, 1], the error metrics ≥ 0). `widened_by` is the quantile used (None: not widened)."""
    finite = np.abs([e for e in errors if e is not None and math.isfinite(e)])
    unchanged = {"low": low, "high": high, "widened_by": None, "error_days": len(finite)}
    if estimated is None or low is None or high is None or len(finite) < ERROR_DAYS_MIN:
        return unchanged
    rank = min(math.ceil((len(finite) + 1) * level), len(finite))
    q = float(np.sort(finite)[rank - 1])
    return {
        "low": min(low, max(estimated - q, bounds[0])),
        "high": max(high, min(estimated + q, bounds[1])),
        "widened_by": q,
        "error_days": len(finite),
    }


# Binary: the scores are recalibrated on the serving version's matured rows of the days
# before D when there are at least this many (NannyML's CBPE fits its calibrator on labelled
# reference data too).
RECALIBRATION_MIN_ROWS = 500
# ... of its newest matured days only (where they hold that many rows): under a shift that
# keeps moving, older days' calibration lags (replaying the benchmark's stored `never` runs:
# covariate median |error| 0.0149 with all 14 days, 0.0116 with the newest 4; stable 0.0079
# and 0.0068).
RECALIBRATION_DAYS = 4


def matured_rows(
    history: pl.DataFrame,
    label: str,
    version: str | None,
    min_rows: int,
    *,
    any_version: bool = True,
) -> pl.DataFrame:
    """The scored, labelled rows of `history` whose day matured: those `version` scored
    when there are at least `min_rows`, else (`any_version`) every version's; no rows when
    even those are fewer."""
    if history.height == 0 or label not in history.columns:
        return pl.DataFrame()
    matured = history.filter(
        pl.col("score").is_not_null() & pl.col(label).is_not_null() & pl.col("label_matured")
    )
    if version is not None:
        own = matured.filter(pl.col("model_version") == version)
        if own.height >= min_rows:
            return own
    if not any_version:
        return matured.clear()
    return matured if matured.height >= min_rows else matured.clear()


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -700, 700)))  # clipped: no overflow in exp


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q) - np.log1p(-q)


def fit_recalibration(
    scores: np.ndarray, labels: np.ndarray, ridge: float = 1e-3
) -> dict[str, Any]:
    """A logistic recalibration of the scores on labelled rows: P(y = 1) = σ(a + b·logit(p)),
    fitted by Newton's method (a little ridge keeps it finite on separable rows). b < 1: the
    scores were over-confident on those rows."""
    x = _logit(np.asarray(scores, dtype=np.float64))
    y = np.asarray(labels, dtype=np.float64)
    design = np.c_[np.ones_like(x), x]
    w = np.array([0.0, 1.0])
    for _ in range(50):
        q = _sigmoid(design @ w)
        grad = design.T @ (y - q) - ridge * w
        hess = (design * (q * (1 - q))[:, None]).T @ design + ridge * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w = w + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return {"a": float(w[0]), "b": float(w[1]), "rows": len(y)}


def recalibrate(scores: np.ndarray, recalibration: dict[str, Any] | None) -> np.ndarray:
    """The scores through a `fit_recalibration` fit; unchanged without one."""
    p = np.asarray(scores, dtype=np.float64)
    if not recalibration:
        return p
    return _sigmoid(recalibration["a"] + recalibration["b"] * _logit(p))


RECALIBRATION_DRAWS = 100  # refits of the recalibration; DRAWS label vectors in all


def sampled_recalibrated_metric(
    name: str,
    scores: np.ndarray,
    fit_scores: np.ndarray,
    fit_labels: np.ndarray,
    groups: np.ndarray | None = None,
    draws: int = DRAWS,
    seed: int = 0,
) -> np.ndarray:
    """The metric of `scores` over label draws that also carry the recalibration's own
    uncertainty: the recalibration is refitted on `RECALIBRATION_DRAWS` bootstrap resamples
    of its rows — of whole days when `groups` (a day per row) names two or more, since
    calibration varies more from day to day than within a day — and each refit's
    probabilities get their share of the `draws` label vectors y ~ Bernoulli(p)."""
    rng = np.random.default_rng(seed)
    per = max(1, draws // RECALIBRATION_DRAWS)
    members: list[np.ndarray] | None = None
    if groups is not None:
        _, codes = np.unique(groups, return_inverse=True)
        if codes.max(initial=0) >= 1:
            members = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
    out = []
    for k in range(RECALIBRATION_DRAWS):
        if members is not None:
            chosen = rng.integers(0, len(members), len(members))
            idx = np.concatenate([members[g] for g in chosen])
        else:
            idx = rng.integers(0, len(fit_scores), len(fit_scores))
        refit = fit_recalibration(fit_scores[idx], fit_labels[idx])
        p = np.clip(recalibrate(scores, refit), 0.0, 1.0)
        out.append(sampled_binary_metric(name, p, per, seed=seed + 1 + k))
    return np.concatenate(out) if out else np.zeros(0)


@work("statistics")
def estimate_day(
    metric_name: str,
    scores: np.ndarray,
    history: pl.DataFrame | None = None,
    label: str | None = None,
    version: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """A binary day's label-free estimate from its scores: the gate's metric
    (`estimated_quality` with its interval) and the expected ROC-AUC and log-loss whatever
    the gate's metric is. With `history` (the days before, `label` its label column), the
    scores are first recalibrated on its matured rows that `version` scored, when there are
    at least `RECALIBRATION_MIN_ROWS`. Empty for a metric that is not a binary one."""
    if metric_name not in BINARY_METRICS:
        return {}
    raw = _probabilities(scores)
    # Only the serving version's own rows: another model's calibration says nothing about
    # this one's (on the benchmark's concept drift, recalibrating on older versions' rows
    # after the drift made the estimate of each retrained model 0.05-0.15 too low).
    rows = (
        matured_rows(history, label, version, RECALIBRATION_MIN_ROWS, any_version=False)
        if history is not None and label is not None
        else pl.DataFrame()
    )
    if rows.height == 0 or label is None:
        main = estimate_binary(metric_name, raw, seed=seed)
        recalibration = None
        p = raw
    else:
        timed = "event_time" in rows.columns and rows.schema["event_time"].is_temporal()
        days = rows["event_time"].dt.date().to_physical().to_numpy() if timed else None
        if days is not None:
            recent = days >= np.unique(days)[-RECALIBRATION_DAYS:].min()
            if recent.sum() >= RECALIBRATION_MIN_ROWS:
                rows, days = rows.filter(pl.Series(recent)), days[recent]
        s, y = rows["score"].to_numpy(), rows[label].cast(pl.Float64).to_numpy()
        recalibration = fit_recalibration(s, y)
        p = np.clip(recalibrate(raw, recalibration), 0.0, 1.0)
        main = estimate_binary(metric_name, p, seed=seed)
        sampled = sampled_recalibrated_metric(metric_name, raw, s, y, days, seed=seed)
        if main["estimate"] is not None:
            main["low"], main["high"] = _interval(sampled, LEVEL)
    return {
        "estimated_quality": main["estimate"],
        "estimated_low": main["low"],
        "estimated_high": main["high"],
        "estimated_rows": main["rows"],
        "expected_roc_auc": expected_roc_auc(p),
        "expected_log_loss": expected_log_loss(p),
        "recalibration": recalibration,
    }


# Regression: the residual model learns from the matured rows of the days before D.
RESIDUAL_MIN_ROWS = 50


def residual_design(frame: pl.DataFrame, numeric: Sequence[str]) -> np.ndarray:
    """The residual model's inputs: the numeric features and the prediction (`score`)."""
    cols = [c for c in numeric if c in frame.columns]
    return frame.select(*(pl.col(c).cast(pl.Float64) for c in [*cols, "score"])).to_numpy()


@work("statistics")
def estimate_regression_day(
    metric_name: str,
    day: pl.DataFrame,
    history: pl.DataFrame,
    label: str,
    numeric: Sequence[str],
    version: str | None,
    seed: int = 0,
) -> dict[str, Any]:
    """A regression day's label-free estimate: a residual model fitted on `history`'s
    matured, labelled rows (those of `version` where there are at least
    `RESIDUAL_MIN_ROWS`, else every version's), applied to the day's scored rows. Empty
    when the metric is not mae/rmse or there are too few matured rows to fit on."""
    if metric_name not in ("mae", "rmse"):
        return {}
    fit_on = matured_rows(history, label, version, RESIDUAL_MIN_ROWS)
    scored = day.filter(pl.col("score").is_not_null())
    if fit_on.height == 0 or scored.height == 0:
        return {}
    cols = [c for c in numeric if c in fit_on.columns and c in scored.columns]
    residual = (fit_on[label].cast(pl.Float64) - fit_on["score"]).to_numpy()
    model = fit_residual_model(residual_design(fit_on, cols), residual)
    est = estimate_regression(metric_name, model, residual_design(scored, cols), seed=seed)
    return {
        "estimated_quality": est["estimate"],
        "estimated_low": est["low"],
        "estimated_high": est["high"],
        "estimated_rows": est["rows"],
        "residual_model_rows": fit_on.height,
    }
