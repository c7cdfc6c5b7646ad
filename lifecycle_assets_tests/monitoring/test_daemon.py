"""`lifecycle ui` starts `dagster dev` (webserver + daemon) on the home: its GraphQL API
lists every asset, with the loop closed through the service's log store and daily partitions
from the home's first day of data, and the staleness sensor really fires and the run it
launches succeeds. One server for both: starting `dagster dev` is most of each check's
time."""

from __future__ import annotations

import dagster as dg
import pytest

from lifecycle_assets.automation.loop import instance_for, materialize
from lifecycle_assets.defs.automation.daily import INGEST, LABELS
from lifecycle_assets.home import set_simulated_today
from lifecycle_assets.records import LogWriter
from lifecycle_assets.simulator.fraud import FraudSimulator
from lifecycle_assets_tests.daemon import (
    asset_graph,
    asset_partitions,
    dagster_dev,
    latest_run_tagged,
    start_sensor,
    wait_for_run,
)
from lifecycle_assets_tests.test_definitions import EXPECTED_ASSETS

pytestmark = pytest.mark.slow


def test_ui_serves_every_asset_and_the_daemon_fires_the_staleness_sensor(make_home) -> None:
    # The drop is reported on the day itself: without catch-up it fires at once (with it,
    # the sensor would wait for a train window holding the drop; test_sensors covers that).
    home = make_home("monitoring:\n  catch_up: false\n")
    sim = FraudSimulator(home.config())
    day = sim.date(0)
    set_simulated_today(home, day)
    writer = LogWriter(home.logs, "simulator")
    sim.write_day(writer, 0, None)
    writer.close()
    # the day's ingest, whole: the sensor reads a day's signals once it is done (day_wait)
    materialize(home, INGEST + LABELS, day.isoformat())
    instance = instance_for(home)
    # A served model whose matured live quality fell well below what it was validated with.
    for key, meta in (
        ("validation_report", {"challenger_version": "v1", "challenger_metric": 0.92}),
        ("live_quality", {"matured": True, "quality": 0.61, "model_version": "v1"}),
    ):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=key, partition=day.isoformat(), metadata=meta)
        )
    with dagster_dev(home) as port:
        upstream = asset_graph(port)
        assert set(upstream) == EXPECTED_ASSETS | {"prediction_log_store"}
        # the graph closes the loop: the service's log store feeds both ingest assets
        assert (
            upstream["raw_prediction_logs"] == upstream["ground_truth"] == {"prediction_log_store"}
        )
        # the UI's days begin with the home's data: one day stored, none missing before it
        logs = asset_partitions(port, "raw_prediction_logs")
        assert logs["keys"][0] == day.isoformat()
        assert logs["numMaterialized"] == 1 and logs["numPartitions"] == len(logs["keys"])
        start_sensor(port, "staleness_retrain")
        run = wait_for_run(
            instance,
            latest_run_tagged("lifecycle/trigger", "staleness"),
        )
    # (a success needs the first partition's train window read as a window of one day)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == day.isoformat()
    assert "live quality" in run.tags["lifecycle/reasons"]
