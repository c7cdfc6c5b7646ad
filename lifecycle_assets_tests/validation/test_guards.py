"""The vectorised bootstrap and the gate's guards: PR-AUC against brute force, weighted metrics
against explicit resamples, calibration, slices (Holm) and the golden dataset."""

from __future__ import annotations

import numpy as np
import pytest

from lifecycle_assets.config import ValidationConfig
from lifecycle_assets.metrics import metric, pr_auc, weighted_metric, weighted_scorer
from lifecycle_assets.validation import gate
from lifecycle_assets.validation.gate import (
    FAIL,
    PASS,
    block_ends,
    bootstrap_weights,
    decide,
)
from lifecycle_assets.validation.record import reason
from lifecycle_assets_tests.conftest import benchmark_module


def brute_force_average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Σ over distinct thresholds (high to low) of (recall gained) × precision there."""
    total = y.sum()
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        flagged = s >= t
        tp = float((y[flagged] == 1).sum())
        recall = tp / total
        ap += (recall - prev_recall) * tp / flagged.sum()
        prev_recall = recall
    return ap


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("levels", [None, 4], ids=["continuous", "ties"])
def test_pr_auc_matches_brute_force(seed: int, levels: int | None) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 150))
    y = (rng.random(n) < 0.2).astype(int)
    y[0] = 1
    s = rng.random(n) + 0.5 * y
    if levels:
        s = np.floor(s * levels) / levels
    assert pr_auc(y, s) == pytest.approx(brute_force_average_precision(y, s), abs=1e-12)


def test_pr_auc_hand_computed() -> None:
    # ranked: 0.9 (pos), 0.8 (neg), 0.7 (pos): AP = 0.5 × 1 + 0.5 × 2/3
    assert pr_auc(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7])) == pytest.approx(5 / 6)


@pytest.mark.parametrize("name", ["roc_auc", "pr_auc", "log_loss", "rmse", "mae"])
def test_weighted_metrics_equal_explicit_resamples(name: str) -> None:
    """A resample as row multiplicities gives the metric of the resampled rows, exactly."""
    rng = np.random.default_rng(11)
    n = 300
    y = (rng.random(n) < 0.3).astype(np.float64)
    s = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
    s[:40] = np.round(s[:40], 1)  # some ties
    idx = rng.integers(0, n, size=(5, n))
    weights = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(np.float64)
    got = weighted_metric(name, y, s, weights)
    want = [metric(name, y[row], s[row]) for row in idx]
    assert got == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("name", ["roc_auc", "pr_auc", "log_loss", "rmse", "mae"])
def test_a_prepared_slice_scores_the_slice_rows_of_each_resample(name: str) -> None:
    """`weighted_scorer` with `rows` takes the whole block and gives the metric of the
    slice's rows as resampled: what the slice guard compares."""
    rng = np.random.default_rng(5)
    n = 400
    y = (rng.random(n) < 0.3).astype(np.float64)
    s = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 2)  # many ties
    rows = np.flatnonzero(rng.random(n) < 0.4)
    block = np.concatenate(list(bootstrap_weights(n, 50, seed=2)))
    got = weighted_scorer(name, y, s, rows)(block)
    want = weighted_metric(name, y[rows], s[rows], block[:, rows])
    assert got == pytest.approx(want, rel=1e-12, nan_ok=True)
    assert weighted_scorer(name, y, s)(block) == pytest.approx(
        weighted_metric(name, y, s, block), rel=1e-12, nan_ok=True
    )


def test_roc_auc_sums_large_weights_in_float64() -> None:
    """A float32 block whose sums pass 2**24 is no longer exact in float32: the AUC is summed
    in float64 and equals the float64 block's."""
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.4).astype(np.float64)
    s = rng.random(300)
    w = rng.integers(1, 2**18, size=(3, 300)).astype(np.float32)
    assert np.all(w[:, y == 0].sum(axis=1, dtype=np.float64) > 2**24)
    got = weighted_metric("roc_auc", y, s, w)
    assert np.array_equal(got, weighted_metric("roc_auc", y, s, w.astype(np.float64)))


def test_a_block_in_chunks_is_the_same_resamples() -> None:
    """However many resamples are drawn at once (`cells`), the draws are the same, in the
    same order, and no chunk crosses the end of a block (where the gate may stop)."""
    whole = list(bootstrap_weights(37, 450, seed=4, most=800))
    assert [len(b) for b in whole] == [200, 200, 50, 200, 150]
    chunked = list(bootstrap_weights(37, 450, seed=4, most=800, cells=37 * 30))
    assert max(len(b) for b in chunked) == 30
    assert np.array_equal(np.concatenate(chunked), np.concatenate(whole))
    ends = np.cumsum([len(b) for b in chunked]).tolist()
    assert set(block_ends(450, 800)) <= set(ends) and block_ends(450, 800)[-1] == 800
    assert block_ends(450, 800) == [200, 400, 450, 650, 800]
    for n in (2, 1001, 4097):  # odd and even row counts: the generator's stream, not the shape
        one = np.concatenate(list(bootstrap_weights(n, 12, seed=9)))
        assert np.array_equal(one, np.concatenate(list(bootstrap_weights(n, 12, 9, cells=n))))


def test_the_gate_decides_the_same_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole record — metrics, bounds, the adaptive resampling's count, calibration and
    slices — is the same when the resamples are scored in small chunks."""
    rng = np.random.default_rng(8)
    n = 3000
    y = (rng.random(n) < 0.2).astype(np.float64)
    production = np.round(np.clip(0.25 * y + rng.random(n) * 0.75, 0, 1), 3)
    challenger = np.round(np.clip(production + rng.normal(0, 0.12, n), 0, 1), 3)
    slices = {"region": rng.choice(["north", "south", "east"], n)}
    cfg = ValidationConfig(slice_min_rows=200, slice_min_positives=20)
    whole = decide(y, challenger, production, cfg, seed=5, slices=slices)
    monkeypatch.setattr(gate, "CHUNK_CELLS", n * 7)
    assert decide(y, challenger, production, cfg, seed=5, slices=slices) == whole
    assert whole["guards"]["slices"]["tested"] == 3
    # one thread works every task in turn: the same record again
    monkeypatch.setattr(gate, "SCORING_THREADS", 1)
    assert gate._threads(11) == 1
    assert decide(y, challenger, production, cfg, seed=5, slices=slices) == whole


def test_the_gate_uses_a_few_threads_whatever_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate.os, "sched_getaffinity", lambda _: set(range(64)), raising=False)
    assert gate._threads(41) == gate.SCORING_THREADS == 4
    assert gate._threads(2) == 2


def test_bootstrap_weights_are_resamples_of_n_rows() -> None:
    blocks = list(bootstrap_weights(50, 450, seed=3))
    assert [b.shape for b in blocks] == [(200, 50), (200, 50), (50, 50)]
    assert all(np.all(b.sum(axis=1) == 50) for b in blocks)
    again = list(bootstrap_weights(50, 450, seed=3))
    assert all(np.array_equal(a, b) for a, b in zip(blocks, again, strict=True))


# --- guards ---------------------------------------------------------------------------------


def calibrated(n: int = 6000, seed: int = 0, base: float = 0.2):
    """Labels drawn from the scores themselves: a perfectly calibrated model."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(np.log(base / (1 - base)), 1.5, n)
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p).astype(np.float64)
    return y, p, rng


def test_a_biased_challenger_fails_the_calibration_guard() -> None:
    y, p, _ = calibrated()
    biased = np.clip(p + 0.08, 0, 1)  # same ranking, much worse calibration
    cfg = ValidationConfig(bootstrap_samples=300, calibration_tolerance=0.1)
    record = decide(y, biased, p, cfg)
    assert record["non_inferior"] is True
    assert record["guards"]["calibration"]["passed"] is False
    assert record["decision"] == FAIL
    off = ValidationConfig(bootstrap_samples=300, calibration_tolerance=None)
    assert decide(y, biased, p, off)["decision"] == PASS


def test_a_challenger_less_biased_than_production_is_not_blocked() -> None:
    y, p, _ = calibrated()
    worse = np.clip(p + 0.10, 0, 1)
    better = np.clip(p + 0.05, 0, 1)  # outside the tolerance, but better than the incumbent
    cfg = ValidationConfig(bootstrap_samples=300, calibration_tolerance=0.1)
    record = decide(y, better, worse, cfg)
    assert record["guards"]["calibration"]["passed"] is True
    assert record["guards"]["calibration"]["challenger_bias"] == pytest.approx(
        np.mean(better) - np.mean(y)
    )


def label_rate_change(shift: float, offset: float, n: int = 6000, seed: int = 0):
    """Both models calibrated for the old label rate; the test rows' rate moved (logit
    `shift`). Production ranks worse (noisy logits); the challenger ranks better and is off
    by a little more than production (`offset`), in the direction of the shift."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(np.log(0.1 / 0.9), 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(logit + shift)))).astype(np.float64)
    production = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.7, n))))
    challenger = 1 / (1 + np.exp(-(logit + offset)))
    return y, challenger, production


@pytest.mark.parametrize(
    ("shift", "offset"), [(0.7, 0.0), (-0.7, 0.15)], ids=["rate-up", "rate-down"]
)
def test_a_label_rate_change_that_shifts_both_models_does_not_block_a_better_one(
    shift: float, offset: float
) -> None:
    """Both models' bias is far outside ±tolerance and the challenger's slightly larger: the
    old guard (challenger's own bias outside ±tolerance and larger than production's)
    rejected this better-ranking challenger; the paired difference of the errors is within."""
    y, challenger, production = label_rate_change(shift, offset)
    cfg = ValidationConfig(bootstrap_samples=300)  # the default relative tolerance
    record = decide(y, challenger, production, cfg)
    guard = record["guards"]["calibration"]
    assert record["delta_lower_bound"] > 0  # better on ROC-AUC, with confidence
    assert abs(guard["production_bias"]) > 0.05 and abs(guard["challenger_bias"]) > 0.05
    assert guard["challenger_error"] > guard["production_error"]
    assert guard["error_difference"] == pytest.approx(
        guard["challenger_error"] - guard["production_error"]
    )
    assert guard["error_difference_lower_bound"] < guard["tolerance"]
    assert guard["passed"] is True
    assert record["decision"] == PASS


def test_a_challenger_confidently_worse_calibrated_than_production_fails() -> None:
    """The same label-rate change, but the challenger is off by 0.05 more than production:
    worse calibrated than the incumbent beyond the tolerance, with confidence."""
    y, challenger, production = label_rate_change(0.7, 0.0)
    off = np.clip(challenger - 0.05, 0, 1)
    cfg = ValidationConfig(bootstrap_samples=300, calibration_tolerance=0.1)
    record = decide(y, off, production, cfg)
    guard = record["guards"]["calibration"]
    assert record["non_inferior"] is True  # the ranking is still better
    assert guard["error_difference_lower_bound"] > guard["tolerance"]
    assert guard["passed"] is False
    assert record["decision"] == FAIL
    assert "calibration: calibration error" in reason(record)
    # the proper score beside it: here the shifted mean costs more than the ranking gains
    brier = float(np.mean((off - y) ** 2)), float(np.mean((production - y) ** 2))
    assert (guard["challenger_brier"], guard["production_brier"]) == pytest.approx(brier)
    assert f"Brier score challenger {brier[0]:.4f} vs production {brier[1]:.4f}" in reason(record)


def test_the_calibration_tolerance_is_relative_to_the_base_rate() -> None:
    """At a 3 % base rate a challenger predicting 5 % on average over-predicts by 67 %: the
    default tolerance (a quarter of the minority-class rate) blocks it, where an absolute
    0.02 would have let it through; at a 30 % base rate the same +0.02 is within."""
    rng = np.random.default_rng(3)
    for rate, blocked in ((0.03, True), (0.3, False)):
        p = np.clip(rng.beta(2, 2 / rate - 2, 20_000), 1e-4, 1 - 1e-4)
        y = (rng.random(p.size) < p).astype(np.float64)
        record = decide(y, np.clip(p + 0.02, 0, 1), p, ValidationConfig(bootstrap_samples=300))
        guard = record["guards"]["calibration"]
        assert guard["scale"] == pytest.approx(rate, abs=0.01)
        assert guard["passed"] is (not blocked), guard["reason"]


def test_the_calibration_guard_uses_the_gates_resamples() -> None:
    """Identical models: every resampled difference of the errors is exactly zero."""
    y, p, _ = calibrated(n=500)
    cfg = ValidationConfig(bootstrap_samples=200, calibration_tolerance=0.1)
    guard = decide(y, p, p.copy(), cfg)["guards"]["calibration"]
    assert guard["error_difference_interval"] == [0.0, 0.0]
    assert guard["passed"] is True


def segment_data(n: int = 6000, seed: int = 0):
    y, p, rng = calibrated(n, seed)
    segment = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])
    tiny = np.where(np.arange(n) < 50, "rare", "common")
    return y, p, rng, {"segment": segment, "tiny": tiny}


def test_a_slice_made_worse_blocks_promotion_and_is_named() -> None:
    y, p, rng, slices = segment_data()
    challenger = p.copy()
    broken = slices["segment"] == "c"
    challenger[broken] = rng.random(int(broken.sum()))  # useless on one segment
    cfg = ValidationConfig(bootstrap_samples=400, calibration_tolerance=None, margin=0.2)
    record = decide(y, challenger, p, cfg, slices=slices)
    guard = record["guards"]["slices"]
    assert record["non_inferior"] is True  # overall, within the generous margin
    assert guard["passed"] is False
    # the broken segment, and `tiny=common` (almost every row), not the intact segments
    assert [w for w in guard["worse"] if w.startswith("segment")] == ["segment=c"]
    assert record["decision"] == FAIL
    # `tiny=rare` has 50 rows (< slice_min_rows) and is not tested
    tested = {(r["feature"], r["value"]) for r in guard["slices"]}
    assert ("tiny", "rare") not in tested and ("segment", "c") in tested


def test_equal_models_pass_every_slice_despite_many_tests() -> None:
    """Holm keeps a family of noisy slice tests from blocking an equally good challenger."""
    y, p, rng, slices = segment_data()
    noisy_a = np.clip(p + rng.normal(0, 0.05, len(y)), 0, 1)
    noisy_b = np.clip(p + rng.normal(0, 0.05, len(y)), 0, 1)
    cfg = ValidationConfig(bootstrap_samples=400, calibration_tolerance=None)
    record = decide(y, noisy_a, noisy_b, cfg, slices=slices)
    guard = record["guards"]["slices"]
    assert guard["tested"] == 5  # four segments and tiny=common
    assert guard["passed"] is True
    assert all(0 < r["p_value"] <= 1 for r in guard["slices"])
    # the unset margin is named by the value it resolved to
    assert guard["reason"] == "no slice of 5 worse beyond −0.05 (Holm, α=0.05)"


def test_slice_features_can_be_narrowed_or_turned_off() -> None:
    y, p, _, slices = segment_data()
    only = ValidationConfig(bootstrap_samples=200, slice_features=("segment",))
    assert decide(y, p, p, only, slices=slices)["guards"]["slices"]["tested"] == 4
    none = ValidationConfig(bootstrap_samples=200, slice_features=())
    assert decide(y, p, p, none, slices=slices)["guards"]["slices"]["tested"] == 0
    with pytest.raises(ValueError, match="not a column"):
        decide(y, p, p, ValidationConfig(slice_features=("nope",)), slices=slices)


def test_a_regression_on_the_golden_dataset_blocks_promotion() -> None:
    y, p, _ = calibrated()
    gy, gp, grng = calibrated(2000, seed=5)
    cfg = ValidationConfig(bootstrap_samples=300, calibration_tolerance=None)
    fine = decide(y, p, p, cfg, golden=(gy, gp, gp.copy()))
    assert fine["guards"]["golden"]["passed"] is True
    assert fine["decision"] == PASS
    useless = grng.random(len(gy))
    blocked = decide(y, p, p, cfg, golden=(gy, useless, gp))
    assert blocked["guards"]["golden"]["passed"] is False
    assert blocked["guards"]["golden"]["delta_upper_bound"] < 0
    assert blocked["decision"] == FAIL


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ({"validation": {"slice_features": ["amount"]}}, "not categorical features"),
        ({"validation": {"metric": "pr_auc"}, "problem": {"task": "regression"}}, "pr_auc"),
        ({"validation": {"metric": "mae"}}, "needs task regression"),
        ({"alerts": {"webhook_retries": -1}}, "alerts.webhook_retries"),
    ],
)
def test_gate_and_alert_settings_are_validated(section: dict, words: str) -> None:
    from lifecycle_assets.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=words):
        parse_config(section)


def test_the_gate_speed_benchmark_decides_a_fraud_like_day() -> None:
    """`benchmarks/gate_speed.py`'s run (structure only; no timing is asserted)."""
    result = benchmark_module("gate_speed").one_size(4000)
    assert result["rows"] == 4000 and result["resamples"] >= 1000
    assert result["decision"] in (PASS, FAIL) and result["slices_tested"] > 0
    assert result["seconds"] >= 0 and len(result["record_digest"]) == 16
