"""The label-free estimate in the loop: `live_quality` materialised by Dagster carries it
beside the realised quality (and its error once the day matures), and the staleness trigger
uses it on days whose labels have not matured when `monitoring.use_estimate` is on."""

from __future__ import annotations

import math

import dagster as dg
import numpy as np
import polars as pl
import pytest

from lifecycle_assets.automation.loop import instance_for, materialize
from lifecycle_assets.config import MonitoringConfig
from lifecycle_assets.monitoring.staleness import estimated_reason
from lifecycle_assets.storage import AssetStore
from lifecycle_assets_tests.monitoring.test_sensors import (
    COOLDOWN_ONLY,
    register_versions,
    report,
    run_sensor,
)


def _examples(matured: bool, seed: int = 0, rows: int = 3000) -> pl.DataFrame:
    """A day of calibrated traffic: scores are the true probabilities; labels pending
    (null) until the day matures."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-(-2.0 + 1.5 * rng.normal(0, 1, rows))))
    y = (rng.random(rows) < p).astype(np.float64)
    return pl.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(rows)],
            "score": p,
            "is_fraud": y if matured else [None] * rows,
            "label_status": ["labeled" if matured else "pending"] * rows,
            "label_matured": [matured] * rows,
            "model_version": ["v1"] * rows,
        },
        schema_overrides={"is_fraud": pl.Float64},
    )


def _materialise(
    home, frame: pl.DataFrame, day: str, earlier: dict[str, pl.DataFrame] | None = None
) -> dict:
    """`live_quality[day]` in a real Dagster run of the loop's job, its upstream partitions
    (the day's labelled examples, earlier days' feature tables) stored in the home."""
    store = AssetStore.of(home)
    store.write("labeled_examples", day, frame)
    for d, f in (earlier or {}).items():
        store.write("feature_table", d, f)
    materialize(home, ["live_quality"], day)
    record = (
        instance_for(home)
        .fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("live_quality"), asset_partitions=[day]),
            limit=1,
        )
        .records[0]
    )
    meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    return {"report": store.read_record("live_quality", day), "meta": meta}


def test_live_quality_carries_the_estimate_and_its_error(make_home) -> None:
    home = make_home()
    young = _materialise(home, _examples(matured=False), "2026-06-10")
    # No label yet: no realised quality, but an estimate of the day's ROC-AUC.
    assert math.isnan(young["meta"]["quality"])
    est = young["meta"]["estimated_quality"]
    assert 0.7 < est < 0.9
    assert young["meta"]["estimated_quality_low"] < est < young["meta"]["estimated_quality_high"]
    assert 0 < young["meta"]["expected_log_loss"] < math.log(2)
    assert young["meta"]["estimated_model_version"] == "v1"
    assert young["meta"]["recalibration_rows"] == 0  # no matured day before it
    assert math.isnan(young["meta"]["estimate_error"])
    assert young["report"]["estimate_covers"] is None

    matured = _materialise(home, _examples(matured=True), "2026-06-10")
    realised = matured["meta"]["quality"]
    # The same scores: the same estimate; now beside the realised figure, with its error.
    assert matured["meta"]["estimated_quality"] == est
    assert matured["meta"]["estimate_error"] == est - realised
    assert abs(matured["meta"]["estimate_error"]) < 0.02
    assert matured["report"]["estimate_covers"] is True


def test_the_interval_takes_the_measure_of_earlier_matured_days_errors(make_home) -> None:
    """live_quality[D] reads its own records of the days before D (a window of its earlier
    partitions): with the errors of five matured days stored, the interval widens to the
    largest of them; a day not yet matured does not count."""
    home = make_home()
    store = AssetStore.of(home)
    plain = _materialise(home, _examples(matured=False), "2026-06-10")["meta"]
    assert plain["estimate_error_days"] == 0 and math.isnan(plain["estimate_widened_by"])
    errors = {"2026-06-03": 0.01, "2026-06-04": -0.02, "2026-06-05": 0.03, "2026-06-06": 0.02}
    errors["2026-06-07"] = -0.06
    for day, error in errors.items():
        store.write("live_quality", day, {"day": day, "matured": True, "estimate_error": error})
    store.write("live_quality", "2026-06-08", {"matured": False, "estimate_error": None})
    store.write("live_quality", "2026-06-09", {"matured": False, "estimate_error": -0.5})
    wide = _materialise(home, _examples(matured=False), "2026-06-10")
    meta, report = wide["meta"], wide["report"]
    est = meta["estimated_quality"]
    assert est == plain["estimated_quality"]  # the point estimate does not move
    assert meta["estimate_error_days"] == 5
    assert meta["estimate_widened_by"] == pytest.approx(0.06)
    assert meta["estimated_quality_low"] == pytest.approx(est - 0.06)
    assert meta["estimated_quality_high"] == pytest.approx(est + 0.06)
    # the draws' own interval is kept in the record beside it
    assert report["estimated_draws_low"] == plain["estimated_quality_low"]
    assert report["estimated_draws_high"] == plain["estimated_quality_high"]


REGRESSION = """\
problem:
  name: eta
  task: regression
  label: minutes
  numeric_features: [distance]
  categorical_features: []
labels:
  unlabeled_after_maturity: drop
validation:
  metric: rmse
"""


def _deliveries(rows: int, seed: int, matured: bool, shift: float = 0.0) -> pl.DataFrame:
    """Delivery minutes whose error grows with the distance; the model predicts the mean."""
    rng = np.random.default_rng(seed)
    distance = rng.uniform(0, 10, rows) + shift
    prediction = 5 + 3 * distance
    minutes = prediction + rng.normal(0, 1 + 0.5 * distance)
    return pl.DataFrame(
        {
            "request_id": [f"{seed}-{i}" for i in range(rows)],
            "distance": distance,
            "score": prediction,
            "minutes": minutes if matured else [None] * rows,
            "label_status": ["labeled" if matured else "pending"] * rows,
            "label_matured": [matured] * rows,
            "model_version": ["v1"] * rows,
        },
        schema_overrides={"minutes": pl.Float64},
    )


def test_live_quality_estimates_regression_error_from_earlier_matured_days(make_home) -> None:
    """The residual model learns from the matured rows of the days before D; day D's
    traffic, with longer deliveries, gets a larger estimated RMSE, close to the realised."""
    home = make_home(REGRESSION)
    earlier = {f"2026-06-0{d}": _deliveries(400, d, matured=True) for d in range(1, 6)}
    earlier["2026-06-06"] = _deliveries(400, 6, matured=False)  # not matured: not fitted on
    day = _materialise(home, _deliveries(2000, 10, False, shift=4.0), "2026-06-07", earlier)
    meta = day["meta"]
    assert meta["residual_model_rows"] == 2000
    assert "expected_roc_auc" not in meta
    later = _materialise(home, _deliveries(2000, 10, True, shift=4.0), "2026-06-07")
    realised = later["meta"]["quality"]
    assert later["meta"]["estimated_quality"] == meta["estimated_quality"]
    assert abs(later["meta"]["estimate_error"]) / realised < 0.05
    assert later["report"]["estimate_covers"] is True
    # the earlier days' own error was smaller: the estimate followed the shift
    fitted = pl.concat([earlier[f"2026-06-0{d}"] for d in range(1, 6)])
    before = float(np.sqrt(np.mean((fitted["minutes"] - fitted["score"]).to_numpy() ** 2)))
    assert meta["estimated_quality"] > 1.3 * before


def test_estimated_reason() -> None:
    cfg = MonitoringConfig()
    reason = estimated_reason(0.80, 0.90, "roc_auc", cfg, "2026-06-11")
    assert reason is not None
    assert reason.kind == "estimated_drop" and reason.since == "2026-06-11"
    assert "estimated quality" in reason.text
    assert estimated_reason(0.88, 0.90, "roc_auc", cfg) is None  # within quality_drop
    assert estimated_reason(None, 0.90, "roc_auc", cfg) is None
    assert estimated_reason(float("nan"), 0.90, "roc_auc", cfg) is None
    # lower is better: a rise is a drop
    assert estimated_reason(0.45, 0.30, "log_loss", cfg) is not None
    assert estimated_reason(0.20, 0.30, "log_loss", cfg) is None


def _run(home, estimates: list[tuple[str, float]]) -> list[str | None]:
    """The sensor over days whose newest matured day (three back) keeps the validated
    quality, while the day's own estimate (labels not matured) is as given."""
    instance = instance_for(home)
    plan = []
    for day, est in estimates:
        matured = f"2026-06-{int(day[-2:]) - 3:02d}"
        report(instance, "live_quality", matured, matured=True, quality=0.90, model_version="v1")
        young = {
            "matured": False,
            "quality": float("nan"),
            "model_version": "None",
            "estimated_quality": est,
            "estimated_model_version": "v1",
        }
        drift = {"max_psi": 0.01, "model_version": "v1"}
        plan.append((day, {"prediction_drift": drift, "live_quality": young}))
    return run_sensor(home, plan)


ESTIMATES = [("2026-06-10", 0.89), ("2026-06-11", 0.78), ("2026-06-12", 0.77)]


def _home(make_home, use: bool, name: str):
    home = make_home(COOLDOWN_ONLY + f"  use_estimate: {str(use).lower()}\n", name=name)
    register_versions(home, {"v1": "2026-06-01"})
    report(
        instance_for(home),
        "validation_report",
        "2026-06-05",
        challenger_version="v1",
        challenger_metric=0.90,
    )
    return home


def test_the_trigger_fires_on_the_estimate_before_labels_mature(make_home) -> None:
    """The estimate drops on 06-11, a day whose labels are days away; the matured days keep
    the validated quality. With `use_estimate` the trigger fires that day; without (the
    default), it waits for the labels."""
    assert _run(_home(make_home, True, "on"), ESTIMATES) == ["2026-06-11"]
    assert _run(_home(make_home, False, "off"), ESTIMATES) == []
