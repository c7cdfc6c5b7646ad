"""The lifecycle's Dagster definitions: the asset graph, its checks, job, sensors and
resources. Nothing here reads the home: resources find it at run time (the daily
partitions' first day may be named by the environment, `defs.partitions.first_partition_day`)."""

from __future__ import annotations

import dagster as dg

from lifecycle_assets.defs.automation.daily import TRAINING, daily_retraining
from lifecycle_assets.defs.automation.sensors import late_labels, new_log_partitions
from lifecycle_assets.defs.data.assets import (
    feature_table,
    ground_truth,
    labeled_examples,
    raw_prediction_logs,
    test_split,
    train_split,
)
from lifecycle_assets.defs.monitoring.assets import live_quality, prediction_drift
from lifecycle_assets.defs.monitoring.sensors import broken_run_alert, build_staleness_sensor
from lifecycle_assets.defs.partitions import daily
from lifecycle_assets.defs.registry.assets import production_model
from lifecycle_assets.defs.registry.jobs import approve_model
from lifecycle_assets.defs.resources.alerts import AlertSinkResource
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.defs.resources.io_manager import LifecycleIOManager
from lifecycle_assets.defs.resources.lookup import LookupStoreResource
from lifecycle_assets.defs.resources.registry import RegistryResource
from lifecycle_assets.defs.resources.versioning import VersioningResource
from lifecycle_assets.defs.serving.assets import (
    offline_predictions,
    prediction_log_store,
    production_bento,
)
from lifecycle_assets.defs.training.assets import candidate_model
from lifecycle_assets.defs.validation.assets import shadow_report, validation_report

ASSETS = [
    raw_prediction_logs,
    ground_truth,
    labeled_examples,
    feature_table,
    train_split,
    test_split,
    candidate_model,
    validation_report,
    production_model,
    shadow_report,
    prediction_drift,
    live_quality,
    offline_predictions,
    production_bento,
]

lifecycle_loop = dg.define_asset_job(
    "lifecycle_loop",
    selection=dg.AssetSelection.assets(*ASSETS),
    partitions_def=daily,
    description="One day of the loop: logs → datasets → challenger → gate → production; "
    "the shadow gate.",
)

staleness_retrain = build_staleness_sensor(lifecycle_loop, TRAINING)
SENSORS = [daily_retraining, staleness_retrain, broken_run_alert, late_labels, new_log_partitions]


# Runs the daemon launches (the sensors, the UI) execute each step in its own
# process, forked from a server that imported the project once: a spawned step would import
# torch, Dagster, DVC and BentoML again, seconds per step. `materialize` runs in process.
LOOP_EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["lifecycle_assets.definitions"]}}},
    name="lifecycle_multiprocess",
)


def build_resources(workdir: str | None = None) -> dict[str, object]:
    home = LifecycleHomeResource(workdir=workdir)
    return {
        "home": home,
        "io_manager": LifecycleIOManager(home=home),
        "versioning": VersioningResource(home=home),
        "registry": RegistryResource(home=home),
        "alerts": AlertSinkResource(home=home),
        "lookup_store": LookupStoreResource(home=home),
    }


defs = dg.Definitions(
    assets=[*ASSETS, prediction_log_store],
    jobs=[lifecycle_loop, approve_model],
    sensors=SENSORS,
    resources=build_resources(),
    executor=LOOP_EXECUTOR,
)
