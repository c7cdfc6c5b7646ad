"""The validation gate: metrics checked against brute force and hand computation; the paired
non-inferiority decision on constructed challenger/production pairs."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from lifecycle_assets.config import ValidationConfig, parse_config
from lifecycle_assets.metrics import log_loss, mae, metric, rmse, roc_auc
from lifecycle_assets.validation.gate import (
    FAIL,
    FIRST_MODEL,
    PASS,
    bootstrap_weights,
    decide,
    paired_bootstrap_delta,
    settled,
)
from lifecycle_assets.validation.record import gate_seed, reason


def brute_force_auc(y: np.ndarray, s: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half."""
    pos, neg = s[y == 1], s[y == 0]
    wins = 0.0
    for p in pos:
        for n in neg:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [None, 3, 10], ids=["continuous", "3-levels", "10-levels"])
def test_roc_auc_matches_brute_force(seed, levels):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 120))
    y = (rng.random(n) < 0.3).astype(int)
    y[0], y[1] = 0, 1  # both classes present
    s = rng.random(n) + 0.4 * y
    if levels is not None:  # heavy ties
        s = np.floor(s * levels) / levels
    assert roc_auc(y, s) == pytest.approx(brute_force_auc(y, s), abs=1e-12)


@pytest.mark.parametrize(
    ("y", "s", "expected"),
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0),
        ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.0),
        ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5),
        ([0, 1, 1], [0.3, 0.3, 0.9], 0.75),
        ([True, False], [0.2, 0.1], 1.0),
    ],
)
def test_roc_auc_hand_computed(y, s, expected):
    assert roc_auc(np.array(y), np.array(s)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "y", [[0, 0, 0], [1, 1], []], ids=["all-negative", "all-positive", "empty"]
)
def test_roc_auc_of_one_class_is_nan(y):
    s = np.linspace(0, 1, len(y))
    assert math.isnan(roc_auc(np.array(y), s))


def test_roc_auc_ignores_scale():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y
    assert roc_auc(y, s) == pytest.approx(roc_auc(y, 1 / (1 + np.exp(-3 * s))))


@pytest.mark.parametrize(
    ("name", "y", "p", "expected"),
    [
        ("log_loss", [1, 0], [0.8, 0.4], -(math.log(0.8) + math.log(0.6)) / 2),
        ("log_loss", [1, 1, 0], [0.5, 0.5, 0.5], math.log(2)),
        # clipped at 1e-7: a confident wrong answer costs a finite amount
        ("log_loss", [1], [0.0], -math.log(1e-7)),
        ("log_loss", [0], [1.0], -math.log(1e-7)),
        ("rmse", [1.0, 2.0, 3.0], [1.0, 2.0, 5.0], math.sqrt(4 / 3)),
        ("rmse", [0.0, 0.0], [3.0, -4.0], math.sqrt(12.5)),
        ("mae", [1.0, 2.0, 3.0], [2.0, 2.0, 1.0], 1.0),
        ("mae", [0.0, 0.0], [3.0, -4.0], 3.5),
    ],
)
def test_metrics_hand_computed(name, y, p, expected):
    fn = {"log_loss": log_loss, "rmse": rmse, "mae": mae}[name]
    assert fn(np.array(y), np.array(p)) == pytest.approx(expected, rel=1e-9)
    assert metric(name, np.array(y), np.array(p)) == pytest.approx(expected, rel=1e-9)


# --- the decision ---------------------------------------------------------------------------

# Scores here are not calibrated probabilities: the calibration guard has its own tests.
CFG = ValidationConfig(bootstrap_samples=300, calibration_tolerance=None)


def informative_data(n: int = 800, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.float64)
    good = 1 / (1 + np.exp(-(3.0 * y - 1.5 + rng.normal(0, 1, n))))
    noise = rng.random(n)
    return y, good, noise


def test_first_model_when_nothing_is_in_production():
    y, good, _ = informative_data()
    record = decide(y, good, None, CFG)
    assert record["decision"] == FIRST_MODEL
    assert record["challenger_metric"] == pytest.approx(roc_auc(y, good))
    assert record["production_metric"] is None
    assert record["delta"] is None
    assert record["delta_lower_bound"] is None
    assert record["n_rows"] == len(y)
    assert record["n_positive"] == int(y.sum())
    assert (record["metric"], record["higher_is_better"]) == ("roc_auc", True)
    assert (record["margin"], record["alpha"]) == (CFG.margin, CFG.alpha)


def test_identical_models_pass():
    y, good, _ = informative_data()
    record = decide(y, good, good.copy(), CFG)
    assert record["delta"] == 0.0
    assert record["delta_lower_bound"] == 0.0
    assert record["delta_upper_bound"] == 0.0
    assert record["decision"] == PASS


def test_clearly_worse_challenger_fails():
    y, good, noise = informative_data()
    record = decide(y, noise, good, CFG)
    assert record["delta"] < -0.2
    assert record["delta_upper_bound"] < -record["margin"]
    assert record["decision"] == FAIL


def test_clearly_better_challenger_passes():
    y, good, noise = informative_data()
    record = decide(y, good, noise, CFG)
    assert record["delta"] > 0.2
    assert record["delta_lower_bound"] > 0
    assert record["decision"] == PASS


def test_slightly_worse_within_margin_passes_but_beyond_it_fails():
    y, good, _ = informative_data(n=2000)
    rng = np.random.default_rng(9)
    # swap a few scores: a worse model, by far less than a generous margin
    worse = good.copy()
    idx = rng.choice(len(y), 40, replace=False)
    worse[idx] = rng.random(40)
    generous = ValidationConfig(bootstrap_samples=300, margin=0.1, calibration_tolerance=None)
    strict = ValidationConfig(bootstrap_samples=300, margin=0.0, calibration_tolerance=None)
    assert decide(y, worse, good, generous)["decision"] == PASS
    assert decide(y, worse, good, strict)["decision"] == FAIL


@pytest.mark.parametrize("metric_name", ["log_loss", "roc_auc"])
def test_better_probabilities_pass_and_worse_fail_whatever_the_orientation(metric_name):
    y, good, noise = informative_data()
    cfg = ValidationConfig(metric=metric_name, bootstrap_samples=300, calibration_tolerance=None)
    better = decide(y, good, noise, cfg)
    worse = decide(y, noise, good, cfg)
    assert better["decision"] == PASS
    assert worse["decision"] == FAIL
    assert better["delta"] > 0 > worse["delta"]


def test_log_loss_delta_is_oriented_so_higher_is_better():
    y, good, noise = informative_data()
    cfg = ValidationConfig(metric="log_loss", bootstrap_samples=300, calibration_tolerance=None)
    record = decide(y, good, noise, cfg)
    assert record["higher_is_better"] is False
    assert record["challenger_metric"] < record["production_metric"]
    assert record["delta"] == pytest.approx(
        record["production_metric"] - record["challenger_metric"]
    )
    assert record["delta_lower_bound"] <= record["delta"] <= record["delta_upper_bound"]


@pytest.mark.parametrize("metric_name", ["rmse", "mae"])
def test_regression_metrics_are_lower_is_better(metric_name):
    rng = np.random.default_rng(4)
    y = rng.normal(size=500)
    close = y + rng.normal(0, 0.1, 500)
    far = y + rng.normal(0, 1.0, 500)
    cfg = ValidationConfig(metric=metric_name, bootstrap_samples=300, calibration_tolerance=None)
    assert decide(y, close, far, cfg)["decision"] == PASS
    assert decide(y, far, close, cfg)["decision"] == FAIL


def test_different_lengths_raise():
    y, good, _ = informative_data()
    with pytest.raises(ValueError, match="same rows"):
        decide(y, good, good[:-1], CFG)


def test_decision_is_deterministic_for_a_seed():
    y, good, _ = informative_data()
    rng = np.random.default_rng(1)
    other = np.clip(good + rng.normal(0, 0.2, len(y)), 0, 1)
    first = decide(y, other, good, CFG, seed=5)
    assert decide(y, other, good, CFG, seed=5) == first
    different = decide(y, other, good, CFG, seed=6)
    assert different["delta"] == first["delta"]
    assert different["delta_lower_bound"] != first["delta_lower_bound"]


def test_bootstrap_resamples_the_same_rows_for_both_models():
    """Paired: with identical scores every resample's Δ is exactly zero, whatever the rows."""
    y, good, _ = informative_data(n=50)
    deltas = paired_bootstrap_delta("roc_auc", y, good, good.copy(), 200, seed=0)
    assert len(deltas) == 200
    assert np.all(deltas == 0.0)


def test_bootstrap_drops_one_class_resamples():
    y = np.array([1.0] + [0.0] * 9)
    s = np.linspace(0, 1, 10)
    deltas = paired_bootstrap_delta("roc_auc", y, s, s[::-1].copy(), 500, seed=0)
    # a resample without the single positive has no AUC and is dropped, not counted as nan
    assert 0 < len(deltas) < 500
    assert np.all(np.isfinite(deltas))


def test_a_verdict_within_the_resamplings_own_error_draws_more_resamples() -> None:
    """A lower bound near −margin is drawn again until the resampling's error is small
    beside its distance from the margin; a clear verdict keeps the first resamples."""
    y, good, _ = informative_data()
    borderline = good + 0.095 * np.random.default_rng(1).normal(0, 1, len(y))
    record = decide(y, borderline, good, CFG)
    assert CFG.bootstrap_samples < record["bootstrap_samples"] <= CFG.bootstrap_max_samples
    only = decide(y, borderline, good, CFG.model_copy(update={"bootstrap_max_samples": 100}))
    assert only["bootstrap_samples"] == CFG.bootstrap_samples
    many = CFG.model_copy(update={"bootstrap_samples": 8000, "bootstrap_max_samples": 8000})
    reference = decide(y, borderline, good, many)
    assert record["decision"] == reference["decision"]
    assert abs(record["delta_lower_bound"] - reference["delta_lower_bound"]) < abs(
        only["delta_lower_bound"] - reference["delta_lower_bound"]
    )
    clear = decide(y, good + 0.5 * np.random.default_rng(1).normal(0, 1, len(y)), good, CFG)
    assert (clear["decision"], clear["bootstrap_samples"]) == (FAIL, CFG.bootstrap_samples)


def test_settled_is_a_binomial_distance_from_alpha() -> None:
    at_margin = np.array([-0.01] * 50 + [0.0] * 950)  # 5 % at or below −margin: α itself
    assert not settled(at_margin, 0.01, 0.05)
    assert settled(np.zeros(1000), 0.01, 0.05)  # none: clear
    assert settled(np.full(1000, -0.02), 0.01, 0.05)  # all: clear
    assert not settled(np.zeros(100), 0.01, 0.05)  # none of 100: not yet clear of 5 %
    # 2.6 % below: clear of α = 0.05 at 10,000 resamples, not at 500
    mostly = np.r_[np.full(26, -0.02), np.zeros(974)]
    assert settled(np.tile(mostly, 10), 0.01, 0.05) and not settled(mostly[:500], 0.01, 0.05)


def test_more_resamples_begin_with_the_same_ones() -> None:
    first = np.concatenate(list(bootstrap_weights(30, 300, seed=3)))
    extended = np.concatenate(list(bootstrap_weights(30, 300, seed=3, most=900)))
    assert len(extended) == 900 and np.array_equal(extended[:300], first)


def test_unset_margins_scale_with_an_error_metric() -> None:
    """A price model's RMSE is in the hundreds: an unset margin is 1 % of production's RMSE
    (and each slice's 5 % of production's on the slice), not the 0.01 a ROC-AUC takes."""
    rng = np.random.default_rng(0)
    y = rng.normal(5000, 1000, 4000)
    production = y + rng.normal(0, 800, y.size)
    challenger = y + (production - y) * 1.003  # worse by 0.3 %: within 1 %
    segment = rng.choice(["a", "b"], y.size)
    cfg = ValidationConfig(metric="rmse", bootstrap_samples=300, slice_min_rows=100)
    record = decide(y, challenger, production, cfg, slices={"segment": segment})
    assert record["margin"] == pytest.approx(0.01 * record["production_metric"])
    assert record["decision"] == PASS, record
    slices = record["guards"]["slices"]["slices"]
    assert all(r["margin"] == pytest.approx(0.05 * 800, rel=0.1) for r in slices)
    explicit = decide(y, challenger, production, cfg.model_copy(update={"margin": 0.01}))
    assert explicit["margin"] == 0.01 and explicit["decision"] == FAIL  # metric units as given


def test_a_better_challenger_on_too_few_rows_is_kept_out_without_an_alert() -> None:
    """Better on the metric but not shown non-inferior (few rows, two noisy models): not
    promoted, so α holds, but inconclusive — no gate alert; a worse one is a real FAIL."""
    rng = np.random.default_rng(5)
    n = 150
    y = (rng.random(n) < 0.3).astype(np.float64)
    signal = 2.0 * y - 1.0
    production = signal + rng.normal(0, 1.6, n)
    challenger = signal + rng.normal(0, 1.5, n)
    record = decide(y, challenger, production, CFG)
    assert record["delta"] >= 0 and record["non_inferior"] is False
    assert record["decision"] == FAIL and record["inconclusive"] is True
    assert "inconclusive" in reason(record)
    worse = decide(y, production, challenger, CFG)
    assert worse["delta"] < 0 and worse["inconclusive"] is False


def test_the_gate_seed_is_fixed_unless_the_config_asks_for_the_day() -> None:
    """`validation.bootstrap_seed`: by default (0) every day resamples alike, so a decision
    depends on the rows and not on the calendar day (the demo's days move with the date it
    runs on); null: each day resamples with its ordinal."""
    june, november = dt.date(2026, 6, 10), dt.date(2026, 11, 25)
    fixed = parse_config({})
    assert gate_seed(fixed, june) == gate_seed(fixed, november) == 0
    by_day = parse_config({"validation": {"bootstrap_seed": None}})
    assert gate_seed(by_day, june) == june.toordinal() != gate_seed(by_day, november)


def test_the_record_counts_negatives_whose_label_never_arrived() -> None:
    """`test_rows_counted_negative` in every record; the reason names them once they are a
    sizeable share of the negatives (a missing label that is not a "no" shows up there)."""
    import polars as pl

    from lifecycle_assets.data.transforms import LABELED, MATURED_NEGATIVE
    from lifecycle_assets.validation.record import COUNTED_NEGATIVE_SHARE, evaluate_scores

    y, good, noise = informative_data()
    negatives = int((y == 0).sum())
    config = parse_config({"validation": CFG.model_dump()})

    def record(counted: int) -> dict:
        status = [LABELED] * len(y)
        for i in np.flatnonzero(y == 0)[:counted]:
            status[i] = MATURED_NEGATIVE
        rows = pl.DataFrame({config.problem.label: y, "label_status": status})
        return evaluate_scores(rows, lambda: good, lambda: good.copy(), config, seed=0)

    many = math.ceil(COUNTED_NEGATIVE_SHARE * negatives)
    few = many - 1
    assert record(0)["test_rows_counted_negative"] == 0
    assert record(few)["test_rows_counted_negative"] == few
    assert "never arrived" not in record(few)["reason"]
    assert f"{many} of the test split's {negatives} negatives" in record(many)["reason"]
    # rows without the ledger's column (a frame built by hand) count none
    plain = evaluate_scores(
        pl.DataFrame({config.problem.label: y}), lambda: good, lambda: noise, config, 0
    )
    assert plain["test_rows_counted_negative"] == 0
