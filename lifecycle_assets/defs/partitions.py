"""The daily partitioning of the loop and the windows that map partitions onto each other."""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg

from lifecycle_assets.config import (
    FIRST_DAY_ENV,
    MAX_LOOKBACK_DAYS,
    PARTITIONS_START,
    ConfigError,
)


def first_partition_day(environ: Mapping[str, str] = os.environ) -> str:
    """The first daily partition (ISO): `$LIFECYCLE_FIRST_DAY`, not before PARTITIONS_START."""
    value = environ.get(FIRST_DAY_ENV)
    if not value:
        return PARTITIONS_START
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{FIRST_DAY_ENV}={value!r} is not a day (YYYY-MM-DD)") from None
    return max(day, dt.date.fromisoformat(PARTITIONS_START)).isoformat()


daily = dg.DailyPartitionsDefinition(start_date=first_partition_day())

# labeled_examples[D] reads the labels that arrived on D … D+30 (the longest maturity window
# the config allows); the config's own window is applied to the rows at run time.
# `allow_nonexistent_upstream_partitions` is marked beta; it is what lets day D read
# D … D+30 while the later days do not exist yet.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    LABEL_ARRIVAL_WINDOW = dg.TimeWindowPartitionMapping(
        start_offset=0, end_offset=30, allow_nonexistent_upstream_partitions=True
    )

# train_split[D] / test_split[D] read the trailing feature partitions that can hold their
# windows; the config's windows select the days inside it at run time.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    TRAILING_FEATURES = dg.TimeWindowPartitionMapping(
        start_offset=-(MAX_LOOKBACK_DAYS - 1),
        end_offset=0,
        allow_nonexistent_upstream_partitions=True,
    )


# live_quality[D] (regression) fits its residual model on the matured rows of the feature
# partitions of the days before D: at most this many of them.
RESIDUAL_DAYS = 14
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    DAYS_BEFORE = dg.TimeWindowPartitionMapping(
        start_offset=-RESIDUAL_DAYS, end_offset=-1, allow_nonexistent_upstream_partitions=True
    )


# Input metadata that marks a window of upstream partitions (`window_input`): the IO manager
# reads the days of it that exist, and no day at all is no rows, not a missing input.
WINDOW_INPUT = "lifecycle/partition_window"


def window_input(
    mapping: dg.PartitionMapping, key: str | None = None, *, records: bool = False
) -> dg.AssetIn:
    """An input that reads a window of an upstream asset's daily partitions (`mapping`),
    however many of its days exist yet: at the first partition a window of days reaching
    back before it is that one day, and still a window. Rows (DataFrames) are read as one
    frame; `records` (an asset whose partitions are records) as a list of them, oldest
    day first."""
    kind = "records" if records else "rows"
    return dg.AssetIn(key, partition_mapping=mapping, metadata={WINDOW_INPUT: kind})


def partition_day(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)


def daily_check(name: str, asset: str, **kwargs: Any) -> dg.AssetCheckSpec:
    """A check of one day of a daily asset: each result carries its partition, so the UI
    says which day failed (partitioned asset checks are a preview in Dagster 1.13)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=asset, partitions_def=daily, **kwargs)
