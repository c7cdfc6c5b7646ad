"""`offline_predictions` as Dagster materialises it: a real run against a real home, reading
the scheduled-items log and the `production_model` partition through the IO manager."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import dagster as dg

from lifecycle_assets.automation.loop import instance_for, materialize
from lifecycle_assets.home import LifecycleHome, set_simulated_today
from lifecycle_assets.records import LogWriter
from lifecycle_assets.serving.lookup import SqliteLookupStore
from lifecycle_assets.serving.offline import log_scheduled_payments
from lifecycle_assets.simulator.fraud import FraudSimulator
from lifecycle_assets.training.artifact import save_artifact
from lifecycle_assets_tests.serving.helpers import make_artifact

DAY = dt.date(2026, 6, 5)


def test_offline_predictions_materialises_into_the_lookup_store(
    make_home: Callable[..., LifecycleHome],
) -> None:
    home = make_home()
    set_simulated_today(home, DAY)
    config = home.config()
    sim = FraudSimulator(config)
    log_scheduled_payments(LogWriter(home.logs, "billing"), sim, sim.day_index(DAY))
    # What production_model's partition holds after day D (stored by the IO manager).
    save_artifact(make_artifact("v7"), home.assets / "production_model" / DAY.isoformat())

    run = materialize(home, ["offline_predictions"], DAY.isoformat())  # the loop's job
    event = instance_for(home).get_latest_materialization_event(dg.AssetKey("offline_predictions"))
    assert event is not None and event.run_id == run.run_id
    mat = event.asset_materialization
    assert mat is not None and mat.partition == DAY.isoformat()
    assert mat.metadata["scheduled_date"].value == "2026-06-06"
    assert mat.metadata["rows"].value == config.simulation.scheduled_payments_per_day
    assert mat.metadata["model_version"].value == "v7"

    store = SqliteLookupStore(home.lookup)
    info = store.info()
    assert info is not None and info["model_version"] == "v7"
    assert info["entries"] == config.simulation.scheduled_payments_per_day
    first = sim.scheduled_payments(sim.day_index(DAY))[0]
    entry = store.get(first.scheduled_payment_id)
    assert entry is not None and entry.model_version == "v7" and entry.score is not None
    assert entry.decision in ("approve", "review", "decline")
    assert (home.assets / "offline_predictions" / f"{DAY.isoformat()}.parquet").is_file()
