"""A day of the loop, in its order, for the daemon and the daily runner alike.

A day's stages (each a Dagster run of one partition) run in the order of their data:

1. **ingest** D (`INGEST` + `LABELS`): D's predictions and the labels that arrived on D —
   the daemon's `new_log_partitions` sensor;
2. **label refresh** of the past days `label_refresh_days` names (the day that matured with
   D's labels, a matured day with a backfill) — the `late_labels` sensor;
3. **training** D (`TRAINING`): train/test splits, challenger, gate, release; with the
   shadow gate (`SHADOW`) in the same run when a shadow is in flight — the
   `daily_retraining` sensor (every day, with the day's serving outputs, `SERVING`) or the
   `staleness_retrain` sensor (when stale).

`day_wait` says which earlier stage day D still waits for, or None once training may run:
the daemon's training sensors ask it before they request a run, and the daily runner
(`automation.loop.run_day`: the demo, the replay) runs the stages in this order itself, so
both train D on the same rows. A day with no logs in the store has nothing to ingest.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from lifecycle_assets.defs.automation.sensors import LABEL_REFRESH, label_refresh_days
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.records import has_segments
from lifecycle_assets.registry.registry import Registry
from lifecycle_assets.validation.shadow import load_shadow_record

# The stages of a day, in order (the demo and the CLI run them by name).
INGEST = ["raw_prediction_logs", "ground_truth", "prediction_drift"]
LABELS = LABEL_REFRESH  # also what a past day's label refresh recomputes
TRAINING = ["train_split", "test_split", "candidate_model", "validation_report", "production_model"]
# The shadow gate: every day a shadow is in flight, trained that day or not.
SHADOW = ["shadow_report"]
# The deployable Bento of the day's production model (built once per new version).
BENTO = ["production_bento"]
# What the day's production model serves from: tomorrow's lookup store and its Bento.
SERVING = ["offline_predictions", *BENTO]


def _materialised(instance: dg.DagsterInstance, asset: str, partition: str) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]),
        limit=1,
    ).records
    return bool(records)


def day_wait(instance: dg.DagsterInstance, home: LifecycleHome, day: dt.date) -> str | None:
    """The earlier stage day `day`'s training still waits for (one line, for a sensor's skip
    reason), or None when it may run: D's logs ingested, and no past day left to refresh."""
    key = day.isoformat()
    if has_segments(home.logs, day):
        missing = [a for a in INGEST + LABELS if not _materialised(instance, a, key)]
        if missing:
            return f"{key}: waiting for its ingest ({', '.join(missing)} not materialised)"
    refresh = label_refresh_days(instance, home, day)
    if refresh:
        days = ", ".join(f"{r.partition} ({r.why})" for r in refresh)
        return f"{key}: waiting for the label refresh of {days}"
    return None


def shadow_due(home: LifecycleHome, key: str) -> bool:
    """Whether day `key` runs the shadow gate: a shadow in flight, or its decision stored by
    a run that crashed before finishing it."""
    return Registry(home, home.config().problem.name).alias("shadow") is not None or (
        load_shadow_record(home, key) is not None
    )


def _in_flight(instance: dg.DagsterInstance, key: str) -> bool:
    """Whether a run of the loop for partition `key` is queued or running."""
    runs = instance.get_run_records(
        dg.RunsFilter(
            job_name="lifecycle_loop",
            tags={"dagster/partition": key},
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
        ),
        limit=1,
    )
    return bool(runs)


def daily_requests(
    instance: dg.DagsterInstance, home: LifecycleHome, day: dt.date
) -> list[dg.RunRequest] | str:
    """Day D's runs for the `daily_retraining` sensor, or why none is due (one line).

    Once `day_wait` allows and no run of D is in flight: the training run (run key
    `train-D`) with the day's serving outputs (`SERVING`) and, while a shadow is in flight,
    the shadow gate. A day trained already (its `test_split` is stored: by this sensor, or
    by a staleness retrain that ran the training stage alone) gets what it still lacks in
    one run after it (`finish-D`): its serving outputs, and the shadow gate of a shadow
    that D's own release step sent into shadow, as the daily runner runs it."""
    key = day.isoformat()
    wait = day_wait(instance, home, day)
    if wait is not None:
        return wait
    if _in_flight(instance, key):
        return f"{key}: a run of this day is in flight"
    gated = shadow_due(home, key)
    if not _materialised(instance, "test_split", key):
        return [_request(f"train-{key}", key, TRAINING + SERVING + (SHADOW if gated else []))]
    missing = [
        a for a in SERVING + (SHADOW if gated else []) if not _materialised(instance, a, key)
    ]
    if missing:
        return [_request(f"finish-{key}", key, missing)]
    return f"{key}: trained"


def _request(run_key: str, key: str, assets: list[str]) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        partition_key=key,
        asset_selection=[dg.AssetKey(a) for a in assets],
        tags={"lifecycle/trigger": "daily"},
    )


@dg.sensor(
    name="daily_retraining",
    job_name="lifecycle_loop",
    minimum_interval_seconds=300,
    description="Trains, validates and releases yesterday's partition once a day, after its "
    "logs are ingested (new_log_partitions) and the day that matured with them is refreshed "
    "(late_labels); runs the shadow gate while a shadow is in flight.",
)
def daily_retraining(
    context: dg.SensorEvaluationContext, home: LifecycleHomeResource
) -> dg.SensorResult | dg.SkipReason:
    h = home.get()
    day = home.today() - dt.timedelta(days=1)
    requests = daily_requests(context.instance, h, day)
    if isinstance(requests, str):
        return dg.SkipReason(requests)
    return dg.SensorResult(run_requests=requests)
