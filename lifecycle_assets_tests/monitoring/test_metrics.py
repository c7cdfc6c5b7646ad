from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from lifecycle_assets.monitoring import metrics


def frame(
    rng: np.random.Generator, n: int, shift: float = 0.0, cats=("a", "b", "c")
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "x": rng.normal(shift, 1.0, n),
            "c": rng.choice(list(cats), n),
        }
    )


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    ref = metrics.feature_reference(frame(rng, 20_000), ("x",), ("c",))
    same = metrics.feature_drift(frame(rng, 20_000), ref)
    shifted = metrics.feature_drift(frame(rng, 20_000, shift=1.0), ref)
    assert same["x"] < 0.01 and same["c"] < 0.01
    assert shifted["x"] > 0.25
    assert shifted["c"] < 0.01  # the categorical did not move


def test_unseen_categories_count_as_drift() -> None:
    rng = np.random.default_rng(1)
    ref = metrics.feature_reference(frame(rng, 10_000), ("x",), ("c",))
    new = metrics.feature_drift(frame(rng, 10_000, cats=("a", "z")), ref)
    assert new["c"] > 0.5


def test_reference_is_json_safe_and_bins_cover_all_values() -> None:
    import json

    rng = np.random.default_rng(2)
    ref = metrics.feature_reference(frame(rng, 1000), ("x",), ("c",))
    json.dumps(ref)
    assert sum(ref["numeric"]["x"]["shares"]) == pytest.approx(1.0)
    assert sum(ref["categorical"]["c"].values()) == pytest.approx(1.0)
    assert metrics.feature_drift(pl.DataFrame({"x": [], "c": []}), ref) == {}


def test_prediction_bias_interval() -> None:
    rng = np.random.default_rng(3)
    labels = rng.binomial(1, 0.1, 50_000)
    calibrated = np.full(50_000, 0.1)
    over = np.full(50_000, 0.2)
    ok = metrics.prediction_bias(calibrated, labels)
    bad = metrics.prediction_bias(over, labels)
    assert ok["low"] < 0 < ok["high"]
    assert bad["low"] > 0.08 and bad["bias"] == pytest.approx(0.1, abs=0.01)
    assert metrics.prediction_bias(np.array([]), np.array([]))["bias"] is None


def test_requests_served_beyond_the_training_range_are_counted() -> None:
    logs = pl.DataFrame(
        {"out_of_range": [["amount"], None, ["amount", "hour"], [], None]},
        schema={"out_of_range": pl.List(pl.String())},
    )
    counted = metrics.out_of_range(logs)
    assert counted["out_of_range_rows"] == 2
    assert counted["out_of_range_share"] == pytest.approx(0.4)
    assert counted["out_of_range_features"] == {"amount": 2, "hour": 1}
    empty = metrics.out_of_range(logs.clear())
    assert empty["out_of_range_rows"] == 0 and empty["out_of_range_share"] is None
