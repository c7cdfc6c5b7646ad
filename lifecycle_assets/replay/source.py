"""A replay file as application traffic: columns named by the config, periods of the data's
own time mapped onto days of the loop, and the arrival time of every label.

The mapping (docs/replay.md): period k of the data (a calendar day, ISO week or month) is
replayed as loop day `loop_start + k`; an instant at fraction f of its period lands at the
same fraction f of that loop day. The map is monotone, so a label never arrives before its
prediction, and the loop's day-counted windows (`labels.maturity_days`, `windows.*`) count
periods. With `period: day` and data from `PARTITIONS_START` on, it is the identity.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from lifecycle_assets.config import PARTITIONS_START, LifecycleConfig
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.serving.requests import ID_PATTERN, MAX_ID_LENGTH

Period = Literal["day", "week", "month"]
INTERVAL: dict[str, str] = {"day": "1d", "week": "1w", "month": "1mo"}
DAY_US = 86_400_000_000

# Internal column names of a prepared traffic frame (config names are mapped onto these).
REQUEST_ID, ENTITY_ID, EVENT_TIME, LABEL = "request_id", "entity_id", "event_time", "label"
DATA_TIME, LABEL_TIME, DATA_LABEL_TIME, PERIOD = (
    "data_time",
    "label_time",
    "data_label_time",
    "period",
)


class ReplayDataError(LifecycleError, ValueError):
    """A replay file that cannot be replayed with this config; the message says why."""


@dataclass(frozen=True)
class PeriodSpan:
    index: int
    loop_day: dt.date
    data_start: dt.datetime
    data_end: dt.datetime  # exclusive


@dataclass(frozen=True)
class Traffic:
    """Prepared rows (one per request, loop times) and the periods to replay, in order."""

    frame: pl.DataFrame
    periods: list[PeriodSpan]
    period: Period
    loop_start: dt.date
    rejected: dict[str, int]

    def requests(self, index: int) -> pl.DataFrame:
        return self.frame.filter(pl.col(PERIOD) == index).sort(EVENT_TIME, REQUEST_ID)

    def labels_arriving(self, loop_day: dt.date) -> pl.DataFrame:
        lo = dt.datetime.combine(loop_day, dt.time(), dt.UTC)
        return self.frame.filter(
            (pl.col(LABEL_TIME) >= lo) & (pl.col(LABEL_TIME) < lo + dt.timedelta(days=1))
        ).sort(LABEL_TIME, REQUEST_ID)


def load_table(path: str | Path) -> pl.DataFrame:
    """A Parquet or CSV file, by its suffix."""
    p = Path(path)
    if not p.is_file():
        raise ReplayDataError(f"{p}: no such file (give a Parquet or CSV file)")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(p)
        if suffix in (".csv", ".txt"):
            return pl.read_csv(p, try_parse_dates=True, infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise ReplayDataError(f"{p}: cannot read it: {str(err).splitlines()[0]}") from None
    raise ReplayDataError(f"{p}: unknown file type {suffix!r}; use .parquet or .csv")


def _as_utc(frame: pl.DataFrame, column: str, what: str) -> pl.Expr:
    """A column of instants in UTC: datetimes (naive ones are taken as UTC), dates, or ISO
    strings."""
    dtype = frame.schema[column]
    col = pl.col(column)
    if dtype == pl.String:
        try:
            frame.select(col.str.to_datetime(time_zone="UTC", strict=True))
        except pl.exceptions.PolarsError:
            raise ReplayDataError(
                f"{what} column {column!r} holds text that is not an ISO date-time"
            ) from None
        return col.str.to_datetime(time_zone="UTC").dt.cast_time_unit("us")
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(dtype, pl.Datetime):
        out = col.dt.cast_time_unit("us")
        if dtype.time_zone is None:
            return out.dt.replace_time_zone("UTC")
        return out.dt.convert_time_zone("UTC")
    raise ReplayDataError(f"{what} column {column!r} has type {dtype}, not a date-time")


def _require(frame: pl.DataFrame, columns: list[tuple[str, str]]) -> None:
    missing = [f"{what} {name!r}" for name, what in columns if name not in frame.columns]
    if missing:
        raise ReplayDataError(
            f"the file has no column for {', '.join(missing)} (columns: {frame.columns}); "
            "name them in the config's `problem` section"
        )


def prepare_traffic(
    raw: pl.DataFrame, config: LifecycleConfig, period: Period, last_loop_day: dt.date
) -> Traffic:
    """Map the file's columns, periods and label arrivals onto the loop (module docstring)."""
    p, r = config.problem, config.replay
    _require(
        raw,
        [(p.entity_id, "entity id"), (p.event_time, "event time"), (p.label, "label")]
        + [(f, "feature") for f in p.features]
        + ([(r.label_time_column, "label time")] if r.label_time_column else []),
    )
    if raw.height == 0:
        raise ReplayDataError("the file has no rows")
    request_id = (
        pl.col(p.request_id).cast(pl.String)
        if p.request_id in raw.columns
        else pl.format("r{}", pl.int_range(pl.len()).cast(pl.String).str.zfill(9))
    )
    frame = raw.select(
        request_id.alias(REQUEST_ID),
        pl.col(p.entity_id).cast(pl.String).alias(ENTITY_ID),
        _as_utc(raw, p.event_time, "event time").alias(DATA_TIME),
        pl.col(p.label).cast(pl.Float64).alias(LABEL),
        *[pl.col(c).cast(pl.Float64) for c in p.numeric_features],
        *[pl.col(c).cast(pl.String) for c in p.categorical_features],
        *(
            [_as_utc(raw, r.label_time_column, "label time").alias(DATA_LABEL_TIME)]
            if r.label_time_column
            else []
        ),
    )
    bad_ids = frame.filter(
        ~pl.col(REQUEST_ID).str.contains(ID_PATTERN)
        | (pl.col(REQUEST_ID).str.len_chars() > MAX_ID_LENGTH)
    )
    if bad_ids.height:
        raise ReplayDataError(
            f"request id {bad_ids[REQUEST_ID][0]!r} is not a valid id ({ID_PATTERN}, at most "
            f"{MAX_ID_LENGTH} characters); {bad_ids.height} such rows"
        )
    if frame[REQUEST_ID].is_duplicated().any():
        raise ReplayDataError(f"column {p.request_id!r} repeats request ids; they must be unique")

    # Rows the service would refuse (a 4xx): no event time or a missing feature value.
    unservable = pl.any_horizontal(
        pl.col(DATA_TIME).is_null(),
        pl.col(ENTITY_ID).is_null(),
        *[pl.col(c).is_null() | pl.col(c).is_nan() for c in p.numeric_features],
        *[pl.col(c).is_null() for c in p.categorical_features],
    )
    rejected = {"unservable_rows": int(frame.select(unservable.sum()).item())}
    frame = frame.filter(~unservable)
    if frame.height == 0:
        raise ReplayDataError("no row has an event time and every feature")

    if r.label_time_column is None:
        low, high = r.label_delay_days
        rng = np.random.default_rng(r.seed)
        delay_us = (rng.uniform(low, high, frame.height) * DAY_US).astype(np.int64)
        frame = frame.with_columns(
            (pl.col(DATA_TIME) + pl.Series(delay_us).cast(pl.Duration("us"))).alias(DATA_LABEL_TIME)
        )
    # A row without a label never gets one.
    frame = frame.with_columns(
        pl.when(pl.col(LABEL).is_not_null()).then(pl.col(DATA_LABEL_TIME)).alias(DATA_LABEL_TIME)
    )

    interval = INTERVAL[period]
    first = frame[DATA_TIME].min()
    last = frame[DATA_TIME].max()
    if not isinstance(first, dt.datetime) or not isinstance(last, dt.datetime):
        raise ReplayDataError("the file has no usable event times")
    starts = pl.datetime_range(
        pl.lit(first).dt.truncate(interval),
        pl.lit(last).dt.truncate(interval),
        interval=interval,
        eager=True,
        time_zone="UTC",
    )
    origin = starts[0]
    partitions_start = dt.date.fromisoformat(PARTITIONS_START)
    first_day = starts[0].date()
    loop_start = (
        first_day if period == "day" and first_day >= partitions_start else partitions_start
    )
    n = len(starts)
    if loop_start + dt.timedelta(days=n - 1) > last_loop_day:
        raise ReplayDataError(
            f"{n} {period}s from {loop_start} run past {last_loop_day}, the last day the loop "
            "can partition (daily partitions end at today's date): replay with a longer "
            "--period"
        )
    periods = [
        PeriodSpan(
            index=i,
            loop_day=loop_start + dt.timedelta(days=i),
            data_start=s,
            data_end=e,
        )
        for i, (s, e) in enumerate(
            zip(starts.to_list(), starts.dt.offset_by(interval).to_list(), strict=True)
        )
    ]
    frame = frame.with_columns(
        _compress(DATA_TIME, origin, interval, loop_start).alias(EVENT_TIME),
        _period_index(DATA_TIME, origin, interval).alias(PERIOD),
        _compress(DATA_LABEL_TIME, origin, interval, loop_start).alias(LABEL_TIME),
    )
    return Traffic(frame, periods, period, loop_start, rejected)


def _period_index(column: str, origin: dt.datetime, interval: str) -> pl.Expr:
    """The index of each instant's period, counted from the period starting at `origin`."""
    col = pl.col(column)
    if interval == "1mo":
        return (col.dt.year() - origin.year) * 12 + (col.dt.month() - origin.month)
    days = (col.dt.truncate(interval) - pl.lit(origin)).dt.total_days()
    return days // 7 if interval == "1w" else days


def _compress(column: str, origin: dt.datetime, interval: str, loop_start: dt.date) -> pl.Expr:
    """Loop time of each instant: its period's loop day plus the same fraction of a day."""
    col = pl.col(column)
    start = col.dt.truncate(interval)
    length = (start.dt.offset_by(interval) - start).dt.total_microseconds()
    fraction = (col - start).dt.total_microseconds() / length
    return (
        pl.lit(dt.datetime.combine(loop_start, dt.time(), dt.UTC))
        + pl.duration(days=_period_index(column, origin, interval))
        # Rounded (a day period maps exactly onto itself), kept inside the loop day.
        + pl.duration(microseconds=(fraction * DAY_US).round().cast(pl.Int64).clip(0, DAY_US - 1))
    )
