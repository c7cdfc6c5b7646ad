"""The label-free quality estimate: hand-checkable cases, calibrated synthetic traffic (the
estimate is close and its interval covers), and concept drift that leaves the scores
unchanged (the estimate is wrong, by construction: its documented limit)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from lifecycle_assets.metrics import metric
from lifecycle_assets.monitoring import estimate


def test_expected_roc_auc_by_hand() -> None:
    # Rows p = 0 and p = 1: only the pair (row 2 positive, row 1 negative) has weight.
    assert estimate.expected_roc_auc(np.array([0.0, 1.0])) == pytest.approx(1.0)
    # p = (0.2, 0.8): pairs (2+,1-) weight 0.8·0.8 = 0.64 ranked right, (1+,2-) 0.2·0.2 = 0.04
    # ranked wrong: 0.64 / 0.68.
    assert estimate.expected_roc_auc(np.array([0.2, 0.8])) == pytest.approx(0.64 / 0.68)
    # Every score the same: every pair is a tie, one half.
    assert estimate.expected_roc_auc(np.full(5, 0.3)) == pytest.approx(0.5)
    # Not estimable: one row, or no row that can be negative.
    assert estimate.expected_roc_auc(np.array([0.4])) is None
    assert estimate.expected_roc_auc(np.ones(4)) is None


def test_expected_roc_auc_under_given_probabilities_is_the_estimates_own_formula() -> None:
    """With the scores as their own probabilities, the given-probabilities form (the
    oracle of benchmarks/estimate_floor.py) is the estimate; with probabilities that ignore
    the scores, any ranking is expected at 0.5."""
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(500), 2)  # with ties
    own = estimate.expected_roc_auc(scores)
    assert estimate.expected_roc_auc(scores, scores) == pytest.approx(own)
    assert estimate.expected_roc_auc(scores, np.full(500, 0.3)) == pytest.approx(0.5)


def test_expected_roc_auc_equals_the_mean_auc_over_label_draws() -> None:
    """The weighted AUC is (to sampling error) what the label draws average to."""
    rng = np.random.default_rng(1)
    p = rng.beta(1, 6, 800)
    sampled = estimate.sampled_binary_metric("roc_auc", p, draws=600, seed=2)
    assert estimate.expected_roc_auc(p) == pytest.approx(sampled.mean(), abs=0.002)
    # the vectorised draw equals the gate's own ROC-AUC for one label vector
    y = (np.random.default_rng(3).random(len(p)) < p).astype(np.float64)
    ranks = estimate._midranks(p)
    n1 = y.sum()
    via_ranks = (y @ ranks - n1 * (n1 + 1) / 2) / (n1 * (len(p) - n1))
    assert via_ranks == pytest.approx(metric("roc_auc", y, p))


def test_expected_log_loss_is_the_mean_binary_entropy() -> None:
    # p = 0.5: log 2 per row; p = 0 or 1: nothing to lose
    assert estimate.expected_log_loss(np.array([0.5, 0.5])) == pytest.approx(np.log(2))
    assert estimate.expected_log_loss(np.array([0.0, 1.0])) == pytest.approx(0.0, abs=1e-12)
    p = np.array([0.1, 0.7])
    h = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    assert estimate.expected_log_loss(p) == pytest.approx(h.mean())
    assert estimate.expected_log_loss(np.zeros(0)) is None
    # the vectorised draw equals the gate's log-loss for one label vector
    q = np.random.default_rng(0).uniform(0.01, 0.99, 300)
    draws = estimate.sampled_binary_metric("log_loss", q, draws=1, seed=5)
    y = (np.random.default_rng(5).random((1, len(q))) < q)[0].astype(np.float64)
    assert draws[0] == pytest.approx(metric("log_loss", y, q))


def _calibrated_days(days: int, rows: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Days of traffic whose scores are the true probabilities (a calibrated model), the
    feature mix moving from day to day (covariate shift: P(y | x) fixed)."""
    rng = np.random.default_rng(seed)
    out = []
    for d in range(days):
        x = rng.normal(0.4 * d / days, 1.0, rows)
        p = 1 / (1 + np.exp(-(-2.0 + 1.5 * x)))
        y = (rng.random(rows) < p).astype(np.float64)
        out.append((p, y))
    return out


@pytest.mark.parametrize("name", ["roc_auc", "log_loss"])
def test_on_calibrated_traffic_the_estimate_is_close_and_its_interval_covers(name) -> None:
    errors, hits = [], []
    for d, (p, y) in enumerate(_calibrated_days(40, 2000, seed=7)):
        est = estimate.estimate_binary(name, p, draws=300, seed=d)
        realised = metric(name, y, p)
        errors.append(abs(estimate.estimate_error(est["estimate"], realised) or 0.0))
        hits.append(estimate.covered(est["low"], est["high"], realised))
    assert np.median(errors) <= 0.01
    assert np.mean(hits) >= 0.8


def test_pr_auc_is_estimated_from_the_draws() -> None:
    p, y = _calibrated_days(1, 3000, seed=3)[0]
    est = estimate.estimate_binary("pr_auc", p, draws=100)
    assert est["low"] <= est["estimate"] <= est["high"]
    assert est["estimate"] == pytest.approx(metric("pr_auc", y, p), abs=0.05)


def test_concept_drift_that_leaves_the_scores_unchanged_fools_the_estimate() -> None:
    """The limit, asserted: after P(y | x) flips, the same features get the same scores, so
    the estimate stays where it was while the realised ROC-AUC collapses."""
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1, 5000)
    p = 1 / (1 + np.exp(-(-1.0 + 2.0 * x)))  # what the model learned, and serves
    before = (rng.random(len(x)) < p).astype(np.float64)
    after = (rng.random(len(x)) < 1 / (1 + np.exp(-(-1.0 - 2.0 * x)))).astype(np.float64)
    est = estimate.estimate_binary("roc_auc", p)
    assert abs(est["estimate"] - metric("roc_auc", before, p)) < 0.02
    realised = metric("roc_auc", after, p)
    assert realised < 0.3
    assert est["estimate"] - realised > 0.5  # the estimate misses by far
    assert not estimate.covered(est["low"], est["high"], realised)


def test_the_estimate_of_an_empty_day_is_none() -> None:
    est = estimate.estimate_binary("roc_auc", np.zeros(0))
    assert est == {"metric": "roc_auc", "estimate": None, "low": None, "high": None, "rows": 0}
    assert estimate.estimate_error(None, 0.8) is None
    assert estimate.covered(None, None, 0.8) is None


def _heteroscedastic(rows: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A regression whose error grows with the feature: x (feature, prediction), residual."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(0, 2, rows) + shift
    prediction = 3 * f
    residual = rng.normal(0, 0.2 + 0.5 * f)
    return np.c_[f, prediction], residual


def test_the_residual_model_estimates_mae_and_rmse_under_covariate_shift() -> None:
    x, r = _heteroscedastic(4000, seed=1)
    model = estimate.fit_residual_model(x, r)
    assert model["rows"] == 4000
    # shifted traffic: larger feature values, so larger errors; the estimate follows
    for name in ("mae", "rmse"):
        hits, errors = [], []
        for d in range(20):
            xs, rs = _heteroscedastic(1500, seed=100 + d, shift=0.5)
            est = estimate.estimate_regression(name, model, xs, draws=200, seed=d)
            realised = float(np.mean(np.abs(rs)) if name == "mae" else np.sqrt(np.mean(rs**2)))
            errors.append(abs(est["estimate"] - realised) / realised)
            hits.append(estimate.covered(est["low"], est["high"], realised))
        assert np.median(errors) < 0.05, name
        assert np.mean(hits) >= 0.7, name
    # the shift raised the estimate above the fitted rows' own error
    fitted = estimate.estimate_regression("mae", model, x)["estimate"]
    shifted = estimate.estimate_regression("mae", model, _heteroscedastic(1000, 9, 0.5)[0])
    assert shifted["estimate"] > fitted * 1.2


def test_the_residual_model_is_json_safe_and_imputes_missing_values() -> None:
    import json

    x, r = _heteroscedastic(200, seed=2)
    x[0, 0] = np.nan
    model = json.loads(json.dumps(estimate.fit_residual_model(x, r)))
    g = estimate.predict_abs_residual(model, np.array([[np.nan, 3.0], [1.0, 3.0]]))
    assert np.all(np.isfinite(g)) and np.all(g > 0)
    with pytest.raises(ValueError, match="no residual estimate"):
        estimate.estimate_regression("roc_auc", model, x)
    with pytest.raises(ValueError, match="two rows"):
        estimate.fit_residual_model(x[:1], r[:1])


def _overconfident(rows: int, seed: int, version: str = "v1") -> pl.DataFrame:
    """A matured day scored by an over-confident model: logit(score) = 2 · the true logit."""
    rng = np.random.default_rng(seed)
    true_logit = -1.5 + rng.normal(0, 1, rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(-true_logit))).astype(np.float64)
    return pl.DataFrame(
        {
            "score": 1 / (1 + np.exp(-2 * true_logit)),
            "truth": 1 / (1 + np.exp(-true_logit)),
            "y": y,
            "label_matured": [True] * rows,
            "model_version": [version] * rows,
        }
    )


def test_a_logistic_recalibration_recovers_the_over_confidence() -> None:
    day = _overconfident(20_000, seed=1)
    fit = estimate.fit_recalibration(day["score"].to_numpy(), day["y"].to_numpy())
    assert fit["b"] == pytest.approx(0.5, abs=0.03)
    assert fit["a"] == pytest.approx(0.0, abs=0.05)
    assert fit["rows"] == 20_000
    assert np.array_equal(estimate.recalibrate(np.array([0.2]), None), np.array([0.2]))


def test_scores_recalibrated_on_matured_days_fix_an_over_confident_estimate() -> None:
    """Over-confident scores make the expected ROC-AUC too high; recalibrated on the matured
    rows of earlier days (of the same version where there are enough), it is close again."""
    history = pl.concat([_overconfident(2000, seed=s) for s in range(3)])
    today = _overconfident(3000, seed=9)
    # what the realised ROC-AUC averages to: the expectation under the true probabilities
    truth = estimate.expected_roc_auc(today["truth"].to_numpy())
    realised = metric("roc_auc", today["y"].to_numpy(), today["score"].to_numpy())
    assert abs(realised - truth) < 0.03
    raw = estimate.estimate_day("roc_auc", today["score"].to_numpy())
    fixed = estimate.estimate_day("roc_auc", today["score"].to_numpy(), history, "y", "v1")
    assert raw["recalibration"] is None
    assert raw["estimated_quality"] - truth > 0.03
    assert abs(fixed["estimated_quality"] - truth) < 0.005
    assert fixed["estimated_low"] <= realised <= fixed["estimated_high"]
    assert fixed["recalibration"]["rows"] == 6000
    assert fixed["expected_log_loss"] > raw["expected_log_loss"]  # less confident


def test_matured_rows_prefer_the_version_and_need_enough_rows() -> None:
    rows = pl.concat([_overconfident(300, 1, "v1"), _overconfident(600, 2, "v2")])
    young = _overconfident(900, 3, "v2").with_columns(pl.lit(False).alias("label_matured"))
    history = pl.concat([rows, young])
    assert estimate.matured_rows(history, "y", "v2", 500)["model_version"].unique().to_list() == [
        "v2"
    ]
    assert estimate.matured_rows(history, "y", "v1", 500).height == 900  # too few of v1
    assert estimate.matured_rows(history, "y", None, 1000).height == 0
    assert estimate.matured_rows(history, "y", "v1", 500, any_version=False).height == 0


def test_another_versions_rows_do_not_recalibrate_the_scores() -> None:
    """A calibration map belongs to its model: rows scored by v1 leave v2's scores as
    they are (the estimate is then the plain expectation under v2's own probabilities)."""
    history = _overconfident(3000, seed=4, version="v1")
    today = _overconfident(2000, seed=5, version="v2")["score"].to_numpy()
    est = estimate.estimate_day("roc_auc", today, history, "y", "v2")
    assert est["recalibration"] is None
    assert est["estimated_quality"] == estimate.estimate_binary("roc_auc", today)["estimate"]
    assert estimate.matured_rows(pl.DataFrame(), "y", None, 1).height == 0


def test_the_interval_carries_the_recalibrations_day_to_day_variation() -> None:
    """Matured days whose calibration differs from day to day: the interval, drawn over
    recalibrations refitted on resampled days, is wider than label noise alone."""
    import datetime as dt

    days = []
    for d in range(10):
        day = _overconfident(800, seed=20 + d)
        # each day's labels follow a slightly different calibration (intercept ± 0.3)
        rng = np.random.default_rng(d)
        truth = 1 / (1 + np.exp(-(np.log(day["truth"] / (1 - day["truth"])) + 0.3 * (d % 3 - 1))))
        day = day.with_columns(
            pl.Series("y", (rng.random(day.height) < truth.to_numpy()).astype(np.float64)),
            pl.lit(dt.datetime(2026, 6, 1 + d)).alias("event_time"),
        )
        days.append(day)
    history = pl.concat(days)
    today = _overconfident(2000, seed=99)["score"].to_numpy()
    est = estimate.estimate_day("roc_auc", today, history, "y", "v1")
    label_only = estimate.estimate_binary(
        "roc_auc", estimate.recalibrate(today, est["recalibration"])
    )
    assert est["estimated_quality"] == pytest.approx(label_only["estimate"])
    assert est["estimated_high"] - est["estimated_low"] > label_only["high"] - label_only["low"]
    assert est["estimated_low"] < est["estimated_quality"] < est["estimated_high"]


def test_the_regression_point_estimate_sits_inside_its_interval() -> None:
    """Heavy-tailed standardised residuals: the point estimate and the draws share one
    distribution, so the interval holds the point."""
    rng = np.random.default_rng(3)
    x, _ = _heteroscedastic(3000, seed=3)
    residual = rng.standard_t(2, 3000)
    model = estimate.fit_residual_model(x, residual)
    for name in ("mae", "rmse"):
        est = estimate.estimate_regression(name, model, x, draws=400)
        assert est["low"] < est["estimate"] < est["high"], name


def test_the_interval_is_widened_to_the_conformal_quantile_of_earlier_errors() -> None:
    # Fewer than ERROR_DAYS_MIN errors (None and NaN are not errors): unchanged.
    few = [0.05] * (estimate.ERROR_DAYS_MIN - 1) + [None, float("nan")]
    assert estimate.widened_by_errors(0.8, 0.78, 0.82, few) == {
        "low": 0.78,
        "high": 0.82,
        "widened_by": None,
        "error_days": estimate.ERROR_DAYS_MIN - 1,
    }
    # 19 errors at 95 %: rank ⌈20 × 0.95⌉ = 19, the largest; 39 errors: rank 38 of 39.
    errors = [0.001 * k for k in range(1, 20)]
    wide = estimate.widened_by_errors(0.8, 0.78, 0.82, [-e for e in errors])
    assert wide["widened_by"] == pytest.approx(0.019) and wide["error_days"] == 19
    assert wide["low"] == 0.78 and wide["high"] == 0.82  # the draws' interval was wider
    errors = [0.01 * k for k in range(1, 40)]
    wide = estimate.widened_by_errors(0.8, 0.78, 0.82, errors)
    assert wide["widened_by"] == pytest.approx(0.38)
    assert (wide["low"], wide["high"]) == (pytest.approx(0.42), pytest.approx(1.18))
    wide = estimate.widened_by_errors(0.8, 0.78, 0.82, errors, bounds=(0.0, 1.0))
    assert (wide["low"], wide["high"]) == (pytest.approx(0.42), 1.0)  # kept within [0, 1]
    # Only as many errors as there are: with 5 the rank is capped at the largest.
    wide = estimate.widened_by_errors(0.8, 0.79, 0.81, [0.01, -0.02, 0.03, -0.04, 0.05])
    assert wide["widened_by"] == pytest.approx(0.05)
    assert (wide["low"], wide["high"]) == (pytest.approx(0.75), pytest.approx(0.85))
    # No estimate: nothing to widen.
    assert estimate.widened_by_errors(None, None, None, errors)["widened_by"] is None
