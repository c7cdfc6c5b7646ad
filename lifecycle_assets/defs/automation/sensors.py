"""The label-refresh rule and the sensors that ingest the service's logs.

labeled_examples[D] joins the labels that arrived on D … D + maturity_days, records how
many it joined (`labels_joined`) and whether D had matured when it ran (`matured`). One
rule (`label_refresh_days`) says which past days to recompute — labeled_examples,
feature_table and live_quality (`LABEL_REFRESH`) — for the daemon's `late_labels` sensor
and the daily runner (`automation.loop.run_day`, the demo, the replay) alike:

* a day whose arrival window is complete (ground_truth[D + maturity_days] is materialised)
  but whose examples were computed before it matured: its pending labels are final now (a
  matured day's unlabeled rows become negatives, its rows enter the train and test windows,
  and its live quality counts for the staleness trigger);
* a matured day whose window received labels after its examples were computed (a
  chargeback backfill, a replayed label feed), when its joinable label count really changed.

Younger days are not recomputed as their labels trickle in: nothing reads them until they
mature. The rule reads the instance's storage ids and the stored partitions only.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.data.transforms import arrival_time, with_arrival
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.records import log_fingerprints
from lifecycle_assets.storage import AssetStore

LABELED = dg.AssetKey("labeled_examples")
GROUND_TRUTH = dg.AssetKey("ground_truth")
RAW = dg.AssetKey("raw_prediction_logs")
# Days further back than this are not re-examined (the partition mapping's label window).
LOOKBACK_DAYS = 60


def _stored(home: LifecycleHome, key: dg.AssetKey, partition: str) -> Path:
    return AssetStore.of(home).frame_path(key.to_user_string(), partition)


def joinable_labels(home: LifecycleHome, day: dt.date, config: LifecycleConfig) -> int:
    """Labels labeled_examples[D] would join now, from the stored upstream partitions."""
    raw = _stored(home, RAW, day.isoformat())
    if not raw.is_file():
        return 0
    maturity = config.labels.maturity_days
    arrivals = [
        p
        for i in range(maturity + 1)
        if (p := _stored(home, GROUND_TRUTH, (day + dt.timedelta(days=i)).isoformat())).is_file()
    ]
    if not arrivals:
        return 0
    window_end = dt.datetime.combine(day + dt.timedelta(days=maturity + 1), dt.time(), dt.UTC)
    labels = (
        with_arrival(pl.scan_parquet(arrivals))
        .filter(arrival_time() < window_end)
        .sort(arrival_time(), maintain_order=True)
        .unique("request_id", keep="first", maintain_order=True)
        .select("request_id", "observed_time")
    )
    predictions = pl.scan_parquet(raw).select("request_id", "event_time").unique("request_id")
    # the same rule as build_labeled_examples: a label before its prediction is leakage
    joined = predictions.join(labels, on="request_id").filter(
        pl.col("observed_time") >= pl.col("event_time")
    )
    return int(joined.select(pl.len()).collect().item())


# What a label refresh recomputes for a past day.
LABEL_REFRESH = ["labeled_examples", "feature_table", "live_quality"]


@dataclass(frozen=True)
class LabelRefresh:
    """A past day to recompute (`LABEL_REFRESH`), why (`matured` or `late_labels`), and a
    key naming this refresh: the same key for the same state, so a re-tick of the sensor
    before the run finishes does not queue it twice."""

    partition: str
    why: str
    key: str


def label_refresh_days(
    instance: dg.DagsterInstance, home: LifecycleHome, today: dt.date
) -> list[LabelRefresh]:
    """The past days whose labelled examples are stale (the module's rule), oldest first."""
    config = home.config()
    maturity = config.labels.maturity_days
    labeled = instance.get_latest_storage_id_by_partition(
        LABELED, dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    arrived = instance.get_latest_storage_id_by_partition(
        GROUND_TRUTH, dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    oldest = today - dt.timedelta(days=LOOKBACK_DAYS)
    refresh = []
    for partition, storage_id in sorted(labeled.items()):
        day = dt.date.fromisoformat(partition)
        if day < oldest:
            continue
        window = [(day + dt.timedelta(days=i)).isoformat() for i in range(maturity + 1)]
        newer = [arrived[a] for a in window if arrived.get(a, -1) > storage_id]
        if not newer or window[-1] not in arrived:
            continue  # nothing new, or a young day: refreshed once it matures
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=LABELED, asset_partitions=[partition]), limit=1
        ).records
        mat = record[0].asset_materialization if record else None
        meta = mat.metadata if mat is not None else {}
        if not _value(meta.get("matured")):
            refresh.append(LabelRefresh(partition, "matured", f"matured:{partition}"))
            continue
        recorded = _value(meta.get("labels_joined"))
        if recorded is not None and recorded == joinable_labels(home, day, config):
            continue  # the new arrivals hold no label for this day
        key = f"late-labels:{partition}:{max(newer)}"
        refresh.append(LabelRefresh(partition, "late_labels", key))
    return refresh


def _value(entry: object) -> object:
    return getattr(entry, "value", entry)


def late_label_requests(
    instance: dg.DagsterInstance, home: LifecycleHome, today: dt.date
) -> list[dg.RunRequest]:
    """Run requests for `label_refresh_days`."""
    return [
        dg.RunRequest(
            run_key=r.key,
            partition_key=r.partition,
            asset_selection=[dg.AssetKey(a) for a in LABEL_REFRESH],
            tags={"lifecycle/trigger": r.why},
        )
        for r in label_refresh_days(instance, home, today)
    ]


@dg.sensor(
    name="late_labels",
    job_name="lifecycle_loop",
    minimum_interval_seconds=300,
    description="Recompute labeled_examples, feature_table and live_quality for a past day "
    "once it matures, and for a matured day whose labels arrived after it was computed.",
)
def late_labels(
    context: dg.SensorEvaluationContext, home: LifecycleHomeResource
) -> dg.SensorResult | dg.SkipReason:
    h = home.get()
    requests = late_label_requests(context.instance, h, home.today())
    if not requests:
        return dg.SkipReason("no past day matured or received late labels")
    return dg.SensorResult(run_requests=requests)


# --- new log partitions ----------------------------------------------------------------------


def days_to_ingest(fingerprints: dict[str, str], seen: dict[str, str], today: dt.date) -> list[str]:
    """Closed days (before today) whose logs are new or changed since they were last requested."""
    return sorted(
        day for day, fp in fingerprints.items() if day < today.isoformat() and seen.get(day) != fp
    )


@dg.sensor(
    name="new_log_partitions",
    minimum_interval_seconds=60,
    description="Ingests each closed day of the service's logs (and re-ingests a day whose "
    "logs changed later), then recomputes that day's labelled examples and features.",
    asset_selection=[
        "raw_prediction_logs",
        "ground_truth",
        "prediction_drift",
        "labeled_examples",
        "feature_table",
        "live_quality",
    ],
)
def new_log_partitions(
    context: dg.SensorEvaluationContext, home: LifecycleHomeResource
) -> dg.SensorResult | dg.SkipReason:
    lc = home.get()
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    fingerprints = log_fingerprints(lc.logs)
    days = days_to_ingest(fingerprints, seen, home.today())
    if not days:
        return dg.SkipReason("no closed day with new or changed logs")
    seen.update({day: fingerprints[day] for day in days})
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"logs-{day}-{fingerprints[day]}", partition_key=day)
            for day in days
        ],
        cursor=json.dumps(seen, sort_keys=True),
    )
