"""The fraud simulator: reproducible days, honest labels, real drift, and the no-service path."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import numpy as np
import polars as pl
import pytest

from lifecycle_assets.config import LifecycleConfig, load_config
from lifecycle_assets.records import LogWriter, read_ground_truth, read_predictions
from lifecycle_assets.simulator.fraud import (
    CATEGORICAL_FEATURES,
    CHANNELS,
    COUNTRIES,
    MERCHANT_CATEGORIES,
    NUMERIC_FEATURES,
    FraudSimulator,
    Payment,
)
from lifecycle_assets.training.artifact import ModelArtifact, build_net
from lifecycle_assets.training.features import Preprocessor


def _config(**simulation: object) -> LifecycleConfig:
    return LifecycleConfig.model_validate({"simulation": simulation})


@pytest.fixture(scope="module")
def example() -> FraudSimulator:
    return FraudSimulator(load_config())


def _luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


# --- shape of a day ---------------------------------------------------------------------


def test_day_has_the_configured_payments_with_exactly_the_config_features(example):
    cfg = example.config
    payments = example.payments(0)
    assert len(payments) == cfg.simulation.payments_per_day
    assert example.date(0) == cfg.simulation.start_date
    assert len({p.request_id for p in payments}) == len(payments)
    times = [p.event_time for p in payments]
    assert times == sorted(times)
    for p in payments[:500]:
        assert set(p.features) == set(cfg.problem.features)
        assert "card_number" not in p.features
        for name in NUMERIC_FEATURES:
            assert isinstance(p.features[name], float)
        assert p.features["merchant_category"] in MERCHANT_CATEGORIES
        assert p.features["country"] in COUNTRIES
        assert p.features["channel"] in CHANNELS
        assert p.event_time.tzinfo is not None
        assert p.event_time.utcoffset() == dt.timedelta(0)
        assert p.event_time.date() == example.date(0)
        assert p.features["hour"] == float(p.event_time.hour)
        assert p.features["amount"] > 0
        assert 0 <= p.features["merchant_risk"] <= 1
        assert p.features["card_age_days"] >= 0 and p.features["txn_count_24h"] >= 0
        assert len(p.card_number) == 16 and p.card_number.isdigit()
        assert _luhn_ok(p.card_number)
        assert (p.chargeback_time is not None) == p.is_fraud


def test_cards_recur_across_days_with_a_stable_card_number(example):
    day0 = {p.card_id: p.card_number for p in example.payments(0)}
    day1 = {p.card_id: p.card_number for p in example.payments(1)}
    shared = set(day0) & set(day1)
    assert len(shared) > 50
    assert all(day0[c] == day1[c] for c in shared)
    assert len(set(day0.values())) == len(day0)  # distinct cards, distinct numbers
    ids0 = {p.request_id for p in example.payments(0)}
    assert not ids0 & {p.request_id for p in example.payments(1)}


def test_every_category_and_channel_occurs(example):
    payments = example.payments(0)
    for name, values in (
        ("merchant_category", MERCHANT_CATEGORIES),
        ("country", COUNTRIES),
        ("channel", CHANNELS),
    ):
        assert {p.features[name] for p in payments} == set(values)


# --- determinism ------------------------------------------------------------------------


def test_same_seed_and_day_is_identical_regardless_of_what_came_before():
    cfg = _config(payments_per_day=500)
    first = FraudSimulator(cfg)
    wanted = first.payments(5)
    other = FraudSimulator(cfg)
    for day in (9, 0, 3, 4):
        other.payments(day)
    other.chargebacks_arriving(7)
    assert other.payments(5) == wanted
    # Past the in-memory cache, a day regenerates to the same payments.
    for day in range(20, 40):
        first.payments(day)
    assert first.payments(5) == wanted


def test_a_different_seed_gives_different_payments():
    a = FraudSimulator(_config(payments_per_day=500, seed=1)).payments(2)
    b = FraudSimulator(_config(payments_per_day=500, seed=2)).payments(2)
    assert [p.features for p in a] != [p.features for p in b]
    assert [p.card_id for p in a] != [p.card_id for p in b]


def test_days_differ_from_each_other(example):
    assert [p.features for p in example.payments(3)] != [p.features for p in example.payments(4)]


# --- labels -----------------------------------------------------------------------------


def test_fraud_rate_is_close_to_config_over_ten_days():
    for rate in (0.03, 0.1):
        sim = FraudSimulator(_config(fraud_rate=rate))
        frauds = [p.is_fraud for day in range(10) for p in sim.payments(day)]
        assert np.mean(frauds) == pytest.approx(rate, abs=0.005)


def test_fraud_rate_holds_on_both_sides_of_the_drift(example):
    drift = example.config.simulation.drift_day
    assert drift is not None
    before = [p.is_fraud for d in range(drift - 6, drift) for p in example.payments(d)]
    after = [p.is_fraud for d in range(drift, drift + 6) for p in example.payments(d)]
    assert np.mean(before) == pytest.approx(example.config.simulation.fraud_rate, abs=0.006)
    assert np.mean(after) == pytest.approx(example.config.simulation.fraud_rate, abs=0.006)


@pytest.mark.parametrize("delays", [(1, 3), (0, 2)])
def test_every_fraud_gets_exactly_one_chargeback_within_the_delay_window(delays):
    sim = FraudSimulator(_config(payments_per_day=1000, chargeback_delay_days=delays))
    low, high = delays
    days = 12  # every fraud on these days has had time to be charged back by `days + high`
    horizon = days + high + 1
    payments = {p.request_id: p for d in range(horizon) for p in sim.payments(d)}
    arrivals: Counter[str] = Counter()
    for arrival_day in range(horizon):
        for rec in sim.chargebacks_arriving(arrival_day):
            assert rec.label == 1.0
            assert rec.observed_time.date() == sim.date(arrival_day)
            p = payments[rec.request_id]
            assert p.is_fraud
            assert rec.observed_time == p.chargeback_time
            assert rec.observed_time >= p.event_time
            assert low <= (rec.observed_time.date() - p.event_time.date()).days <= high
            arrivals[rec.request_id] += 1
    cutoff = sim.date(days)
    frauds = {rid for rid, p in payments.items() if p.is_fraud}
    settled = {rid for rid in frauds if payments[rid].event_time.date() < cutoff}
    assert len(settled) > 50
    assert settled <= set(arrivals) <= frauds
    assert set(arrivals.values()) == {1}
    # Nothing arrives for days before the first payments.
    if low > 0:
        assert sim.chargebacks_arriving(0) == []


def test_no_maturity_window_outlives_the_chargeback_delay(example):
    # "No chargeback by the end of the maturity window means legitimate" must be true.
    assert example.config.simulation.chargeback_delay_days[1] <= example.config.labels.maturity_days


# --- drift ------------------------------------------------------------------------------


def _design(payments: list[Payment]) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    for p in payments:
        f = p.features
        rows.append(
            [
                np.log(float(f["amount"])),
                float(f["merchant_risk"]),
                float(f["hour"]),
                float(f["card_age_days"]) < 30,
                float(f["txn_count_24h"]),
                *(f["merchant_category"] == c for c in MERCHANT_CATEGORIES),
                *(f["country"] == c for c in COUNTRIES),
                *(f["channel"] == c for c in CHANNELS),
            ]
        )
    return np.asarray(rows, dtype=np.float64), np.array([p.is_fraud for p in payments], float)


def _fit_logistic(x: np.ndarray, y: np.ndarray):
    mean, std = x.mean(0), x.std(0) + 1e-9

    def design(a: np.ndarray) -> np.ndarray:
        return np.c_[np.ones(len(a)), (a - mean) / std]

    z, w = design(x), np.zeros(x.shape[1] + 1)
    for _ in range(400):
        p = 1 / (1 + np.exp(-z @ w))
        w -= 0.5 * (z.T @ (p - y) / len(y) + 1e-3 * w)
    return lambda a: design(a) @ w


def _roc_auc(scores: np.ndarray, y: np.ndarray) -> float:
    ranks = np.argsort(np.argsort(scores)) + 1
    pos = y.sum()
    neg = len(y) - pos
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def test_drift_makes_a_pre_drift_model_measurably_worse(example):
    drift = example.config.simulation.drift_day
    assert drift is not None
    pre_train = _design([p for d in range(0, 6) for p in example.payments(d)])
    pre_test = _design([p for d in range(6, drift) for p in example.payments(d)])
    post_train = _design([p for d in range(drift, drift + 6) for p in example.payments(d)])
    post_test = _design([p for d in range(drift + 6, drift + 8) for p in example.payments(d)])
    old, new = _fit_logistic(*pre_train), _fit_logistic(*post_train)

    old_on_old = _roc_auc(old(pre_test[0]), pre_test[1])
    new_on_new = _roc_auc(new(post_test[0]), post_test[1])
    old_on_new = _roc_auc(old(post_test[0]), post_test[1])
    # Learnable within a regime...
    assert old_on_old > 0.85 and new_on_new > 0.85
    # ...and a model from before the drift is clearly worse after it than a retrained one.
    assert new_on_new - old_on_new > 0.15


def test_without_drift_an_old_model_stays_good():
    sim = FraudSimulator(_config(drift_day=None))
    old = _fit_logistic(*_design([p for d in range(0, 6) for p in sim.payments(d)]))
    x, y = _design([p for d in range(14, 16) for p in sim.payments(d)])
    assert _roc_auc(old(x), y) > 0.85


def test_a_drift_episode_ends_and_the_old_pattern_returns(example):
    drift = example.config.simulation.drift_day
    assert drift is not None
    sim = FraudSimulator(_config(drift_day=drift, drift_end_day=drift + 6))
    assert [sim.is_drifted(d) for d in (drift - 1, drift, drift + 5, drift + 6)] == [
        False, True, True, False,
    ]  # fmt: skip
    # The days before the end are the lasting drift's days; the days after, the old pattern:
    # a model of the drifted days is then clearly worse than one from before them.
    assert sim.payments(drift + 5) == example.payments(drift + 5)
    old = _fit_logistic(*_design([p for d in range(0, 6) for p in sim.payments(d)]))
    new = _fit_logistic(*_design([p for d in range(drift, drift + 6) for p in sim.payments(d)]))
    x, y = _design([p for d in range(drift + 6, drift + 8) for p in sim.payments(d)])
    assert _roc_auc(old(x), y) - _roc_auc(new(x), y) > 0.15


def test_drift_end_must_follow_the_drift():
    with pytest.raises(ValueError, match="drift_end_day must be after drift_day"):
        _config(drift_day=8, drift_end_day=8)
    with pytest.raises(ValueError, match="drift_end_day must be after drift_day"):
        _config(drift_day=None, drift_end_day=3)


def test_drift_moves_fraud_between_segments(example):
    drift = example.config.simulation.drift_day
    assert drift is not None
    before = [p for d in range(drift - 6, drift) for p in example.payments(d)]
    after = [p for d in range(drift, drift + 6) for p in example.payments(d)]

    def rate(payments: list[Payment], channel: str) -> float:
        seg = [p.is_fraud for p in payments if p.features["channel"] == channel]
        return float(np.mean(seg))

    assert rate(before, "online") > 2 * rate(before, "pos")
    assert rate(after, "pos") > 2 * rate(after, "online")


# --- scheduled payments -----------------------------------------------------------------


def test_scheduled_payments_are_deterministic_and_dated_the_next_day():
    cfg = _config(scheduled_payments_per_day=150)
    a, b = FraudSimulator(cfg), FraudSimulator(cfg)
    b.scheduled_payments(9)
    b.payments(4)
    items = a.scheduled_payments(4)
    assert items == b.scheduled_payments(4)
    assert len(items) == 150
    assert len({s.scheduled_payment_id for s in items}) == 150
    for s in items:
        assert s.scheduled_time.date() == a.date(5)
        assert s.scheduled_time.utcoffset() == dt.timedelta(0)
        assert set(s.features) == set(cfg.problem.features)
        assert s.features["hour"] == float(s.scheduled_time.hour)
    assert items != a.scheduled_payments(5)
    assert FraudSimulator(_config(scheduled_payments_per_day=0)).scheduled_payments(0) == []


# --- config checks ----------------------------------------------------------------------


def test_a_config_with_other_features_is_refused():
    cfg = LifecycleConfig.model_validate(
        {"problem": {"numeric_features": ["amount", "merchant_risk", "hour", "card_age_days"]}}
    )
    with pytest.raises(ValueError, match="txn_count_24h"):
        FraudSimulator(cfg)
    cfg = LifecycleConfig.model_validate(
        {"problem": {"categorical_features": [*CATEGORICAL_FEATURES, "device"]}}
    )
    with pytest.raises(ValueError, match="device"):
        FraudSimulator(cfg)


# --- the no-service path ----------------------------------------------------------------


def test_write_day_cold_start_logs_unscored_predictions_and_arriving_labels(tmp_path):
    cfg = _config(payments_per_day=400)
    sim = FraudSimulator(cfg)
    writer = LogWriter(tmp_path, writer_id="simulator")
    counts = [sim.write_day(writer, day, None) for day in range(3)]
    writer.close()

    numeric, categorical = cfg.problem.numeric_features, cfg.problem.categorical_features
    rows, quarantine = read_predictions(tmp_path, sim.date(0), numeric, categorical)
    assert quarantine.height == 0
    assert rows.height == counts[0]["predictions"] == 400
    assert rows["score"].null_count() == 400
    assert rows["model_version"].null_count() == 400
    assert rows["decision"].null_count() == 400
    assert (rows["logged_at"] == rows["event_time"]).all()
    assert "card_number" not in rows.columns
    expected = sim.payments(0)
    assert rows["request_id"].to_list() == [p.request_id for p in expected]
    assert rows["entity_id"].to_list() == [p.card_id for p in expected]
    assert rows["amount"].to_list() == [p.features["amount"] for p in expected]

    # Chargebacks land on their arrival day; none on day 0 (minimum delay is one day).
    assert counts[0]["labels"] == 0
    for day in (1, 2):
        labels, bad = read_ground_truth(tmp_path, sim.date(day))
        assert bad.height == 0
        assert labels.height == counts[day]["labels"] == len(sim.chargebacks_arriving(day))
    labels, _ = read_ground_truth(tmp_path, sim.date(2))
    assert labels.height > 0
    assert (labels["label"] == 1.0).all()


def test_write_day_with_a_model_scores_and_decides_in_one_batch(tmp_path):
    cfg = _config(payments_per_day=300)
    sim = FraudSimulator(cfg)
    numeric, categorical = cfg.problem.numeric_features, cfg.problem.categorical_features
    frame = pl.DataFrame([p.features for p in sim.payments(0)])
    preprocessor = Preprocessor.fit(frame, numeric, categorical)
    architecture = {"embedding_dim": 2, "hidden_units": 4}
    artifact = ModelArtifact(
        task="binary",
        preprocessor=preprocessor,
        net=build_net(preprocessor, architecture),
        architecture=architecture,
        thresholds={"review": 0.3, "decline": 0.7},
        version="v7",
    )
    writer = LogWriter(tmp_path, writer_id="simulator")
    assert sim.write_day(writer, 1, artifact)["predictions"] == 300
    writer.close()

    rows, quarantine = read_predictions(tmp_path, sim.date(1), numeric, categorical)
    assert quarantine.height == 0 and rows.height == 300
    assert rows["score"].null_count() == 0
    assert rows["score"].is_between(0, 1).all()
    assert set(rows["model_version"].to_list()) == {"v7"}
    expected = artifact.decide(artifact.score_rows([p.features for p in sim.payments(1)]))
    assert rows["decision"].to_list() == expected


def test_a_day_is_generated_quickly():
    sim = FraudSimulator(_config(payments_per_day=3000))
    best = float("inf")
    for day in range(3):
        start = time.perf_counter()
        sim.payments(day)
        best = min(best, time.perf_counter() - start)
    # Well under 100 ms on a laptop; the bound is loose so a busy CI box does not flake.
    assert best < 0.25
