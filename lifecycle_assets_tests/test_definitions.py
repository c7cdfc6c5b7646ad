"""The Definitions load whole, and Dagster's own CLI materialises from them (this guards the
antlr4 pin that keeps the asset-selection parser working next to DVC)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import dagster as dg
import polars as pl
import pytest

from lifecycle_assets.definitions import ASSETS, defs
from lifecycle_assets.home import set_simulated_today
from lifecycle_assets.records import LogWriter, PredictionRecord, log_fingerprints
from lifecycle_assets.simulator.fraud import FraudSimulator
from lifecycle_assets_tests.conftest import subprocess_env

EXPECTED_ASSETS = {
    "raw_prediction_logs",
    "ground_truth",
    "labeled_examples",
    "feature_table",
    "train_split",
    "test_split",
    "candidate_model",
    "validation_report",
    "production_model",
    "shadow_report",
    "prediction_drift",
    "live_quality",
    "offline_predictions",
    "production_bento",
}


def test_definitions_load_with_every_asset_and_check() -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == EXPECTED_ASSETS | {"prediction_log_store"}
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == {
        ("feature_table", "feature_table_is_well_formed"),
        ("raw_prediction_logs", "raw_prediction_logs_quarantine_rate"),
        ("labeled_examples", "label_coverage"),
        ("train_split", "no_overlap_with_test"),
        ("validation_report", "challenger_not_worse"),
    }
    assert len(ASSETS) == len(EXPECTED_ASSETS)
    # the loop job runs every asset of one daily partition; sensors launch its runs
    loop = defs.resolve_job_def("lifecycle_loop")
    assert {k.to_user_string() for k in loop.asset_layer.executable_asset_keys} == EXPECTED_ASSETS
    assert loop.partitions_def is not None and "Daily" in str(loop.partitions_def)
    assert not list(defs.schedules or [])
    assert {s.name for s in defs.sensors or []} == {
        "daily_retraining",
        "new_log_partitions",
        "staleness_retrain",
        "broken_run_alert",
        "late_labels",
    }


def test_the_service_log_store_closes_the_loop_with_the_sensors_fingerprints(make_home) -> None:
    """The log store is an observable source upstream of both ingest assets; observing it
    records, per closed day, the fingerprint the ingest sensor compares."""
    graph = defs.resolve_asset_graph()
    store = dg.AssetKey("prediction_log_store")
    assert graph.get(store).is_observable
    assert graph.get(dg.AssetKey("raw_prediction_logs")).parent_keys == {store}
    assert graph.get(dg.AssetKey("ground_truth")).parent_keys == {store}
    home = make_home()
    sim = FraudSimulator(home.config())
    writer = LogWriter(home.logs, "t")
    for i in range(2):
        day = sim.date(i)
        set_simulated_today(home, day)
        t = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        writer.write_predictions(
            [PredictionRecord(f"r{i}", "c", t, {"amount": 1.0}, None, None, None, t)]
        )
    writer.close()
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(instance=instance, asset_selection=[store]).success
    observed = {
        r.asset_observation.partition: r.asset_observation.tags["dagster/data_version"]
        for r in instance.fetch_observations(store, limit=10).records
        if r.asset_observation is not None
    }
    assert observed == log_fingerprints(home.logs) and len(observed) == 2


def test_selection_parser_works() -> None:
    selection = dg.AssetSelection.from_string("key:raw_prediction_logs or key:ground_truth")
    keys = selection.resolve(defs.resolve_asset_graph())
    assert {k.to_user_string() for k in keys} == {"raw_prediction_logs", "ground_truth"}


def test_dagster_cli_materialises_from_the_module(make_home) -> None:
    home = make_home()
    sim = FraudSimulator(home.config())
    day = sim.date(0)
    set_simulated_today(home, day)
    writer = LogWriter(home.logs, "simulator")
    written = sim.write_day(writer, 0, None)
    writer.close()
    cmd = [
        sys.executable, "-m", "dagster", "asset", "materialize",
        "-m", "lifecycle_assets.definitions",
        "--select", "raw_prediction_logs,ground_truth",
        "--partition", day.isoformat(),
    ]  # fmt: skip
    out = subprocess.run(cmd, env=subprocess_env(home), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    frame = pl.read_parquet(home.assets / "raw_prediction_logs" / f"{day.isoformat()}.parquet")
    assert frame.height == written["predictions"]
    assert frame["score"].null_count() == frame.height  # cold start: unscored


def test_the_first_partition_is_the_named_day_never_before_the_loop_can_partition() -> None:
    from lifecycle_assets.config import FIRST_DAY_ENV, PARTITIONS_START, ConfigError
    from lifecycle_assets.defs.partitions import first_partition_day

    assert first_partition_day({}) == PARTITIONS_START
    assert first_partition_day({FIRST_DAY_ENV: "2026-06-03"}) == "2026-06-03"
    assert first_partition_day({FIRST_DAY_ENV: "2025-06-03"}) == PARTITIONS_START
    with pytest.raises(ConfigError, match="LIFECYCLE_FIRST_DAY='June' is not a day"):
        first_partition_day({FIRST_DAY_ENV: "June"})
