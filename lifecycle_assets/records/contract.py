"""The log records' contract: the record types, their streams and folders, their Parquet
schemas and their JSON encoding (one line per record). See `lifecycle_assets.records`."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

PREDICTIONS = "predictions"
GROUND_TRUTH = "ground_truth"
SCHEDULED = "scheduled"
QUARANTINE = "quarantine"

FeatureValue = float | int | str | None


@dataclass(frozen=True)
class PredictionRecord:
    request_id: str
    entity_id: str
    event_time: dt.datetime
    features: dict[str, FeatureValue]
    # None before the first model exists (cold start): logged, unscored.
    model_version: str | None
    score: float | None
    decision: str | None
    logged_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # The post-processing rule that changed the model's decision (None: the model's own).
    rule: str | None = None
    # Numeric features beyond the serving model's training range: served, flagged here so
    # monitoring counts the drift the service did not refuse (None: none).
    out_of_range: tuple[str, ...] | None = None
    # The challenger in shadow (`release.shadow_days`) and its score for these features,
    # both set or both None: it never changed the answer. Records written before the
    # shadow stage have neither field.
    shadow_version: str | None = None
    shadow_score: float | None = None


@dataclass(frozen=True)
class GroundTruthRecord:
    request_id: str
    label: float
    observed_time: dt.datetime
    # When the service received the label, by the loop's clock (simulated in the demo and in
    # replay): the label is filed under this day and labels for one request are resolved in
    # arrival order (first wins), never by the client-supplied `observed_time`, which is
    # kept as information. None for labels landed by other writers (bulk files, the
    # simulator): those are filed and ordered by `observed_time`.
    received_at: dt.datetime | None = None


@dataclass(frozen=True)
class ScheduledRecord:
    """An item known ahead of time (a recurring payment), to be scored offline.

    Written to `logs/scheduled/date=D/` by its scheduled date D, by whatever system knows
    the schedule (the simulator here); `offline_predictions` reads it from there."""

    item_id: str
    entity_id: str
    scheduled_time: dt.datetime
    features: dict[str, FeatureValue]


PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "entity_id": pl.String(),
    "event_time": pl.Datetime("us", "UTC"),
    "model_version": pl.String(),
    "score": pl.Float64(),
    "decision": pl.String(),
    "logged_at": pl.Datetime("us", "UTC"),
    "out_of_range": pl.List(pl.String()),
    "shadow_version": pl.String(),
    "shadow_score": pl.Float64(),
}

GROUND_TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "label": pl.Float64(),
    "observed_time": pl.Datetime("us", "UTC"),
    "received_at": pl.Datetime("us", "UTC"),
}


def utc(ts: dt.datetime) -> dt.datetime:
    if ts.tzinfo is None:
        raise ValueError("timestamps in log records must be timezone-aware")
    return ts.astimezone(dt.UTC)


def encode(record: PredictionRecord | GroundTruthRecord | ScheduledRecord) -> str:
    out: dict[str, Any] = {}
    # A shallow field walk, not `asdict`: its deep copy was most of the encoding cost, and
    # the one nested value (the features dict) holds only scalars.
    for key in record.__dataclass_fields__:
        value = getattr(record, key)
        if isinstance(value, dt.datetime):
            value = utc(value).isoformat()
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key} must be finite")
        out[key] = value
    return json.dumps(out, separators=(",", ":"), allow_nan=False)


def day_dir(root: Path, stream: str, day: dt.date) -> Path:
    return root / stream / f"date={day.isoformat()}"


# How much of a refused record or line its quarantine entry keeps (characters).
RAW_CAP = 2000
