"""Row-level validation of the data pipeline beyond the log contract (plain polars, no Dagster).

The reader (`lifecycle_assets.records`) quarantines rows that break the record contract. The
rules here need more than one row or the loop's clock: duplicate and replayed request ids,
event times in the future or implausibly old, labels from the future, categories outside the
configured vocabulary (kept, mapped to the OOV bucket, counted) and identifying columns
(dropped or keyed-hashed before anything is stored or versioned).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import polars as pl

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.home import time_horizon
from lifecycle_assets.records import QUARANTINE_SCHEMA
from lifecycle_assets.training.features import OOV_TOKEN

DUPLICATE_REQUEST_ID = "duplicate_request_id"
REPLAYED_REQUEST_ID = "replayed_request_id"
FUTURE_EVENT_TIME = "future_event_time"
STALE_EVENT_TIME = "stale_event_time"
FUTURE_OBSERVED_TIME = "future_observed_time"
LABEL_BEFORE_PREDICTION = "label_before_prediction"
UNKNOWN_CATEGORY = "unknown_category"  # counted, never quarantined
RAW_CAP = 2000


class PiiKeyError(LifecycleError, RuntimeError):
    """The PII hashing key is missing or unusable; the message says how to fix it."""


def quarantine_rows(frame: pl.DataFrame, reason: str, source: str) -> pl.DataFrame:
    """Rows as quarantine entries: the reason and the row itself as JSON."""
    if frame.height == 0:
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    return frame.select(
        pl.lit(source).alias("source"),
        pl.lit(reason).alias("reason"),
        pl.struct(pl.all()).struct.json_encode().str.slice(0, RAW_CAP).alias("raw"),
    )


def validate_predictions(
    frame: pl.DataFrame,
    now: dt.datetime,
    config: LifecycleConfig,
    *,
    simulated_clock: bool = False,
    pii_key: bytes | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """(rows, quarantine, counts) for one day of prediction records read by the reader.

    Quarantines replayed/duplicate request ids (the first occurrence stays) and implausible
    event times; maps unknown categories to `OOV_TOKEN` (counted per feature); protects the
    identifying columns. Good rows are untouched otherwise.
    """
    quarantined = []
    horizon = time_horizon(now, simulated_clock, config)
    oldest = now - dt.timedelta(days=config.data.max_event_age_days)
    # One pass computes every flag; the (rare) bad rows are split off afterwards.
    future = pl.col("event_time") > horizon
    stale = pl.col("event_time") < oldest
    repeat = ~pl.col("request_id").is_first_distinct()
    flags = frame.select(future.alias("future"), stale.alias("stale"), repeat.alias("repeat"))
    bad = flags["future"] | flags["stale"] | flags["repeat"]
    if bad.any():
        cols = frame.columns
        flagged = frame.with_columns(flags)
        quarantined.append(
            quarantine_rows(flagged.filter("future").select(cols), FUTURE_EVENT_TIME, "clock")
        )
        quarantined.append(
            quarantine_rows(
                flagged.filter(~pl.col("future") & pl.col("stale")).select(cols),
                STALE_EVENT_TIME,
                "clock",
            )
        )
        # A second row under a request id: an exact copy of an earlier one is a replay (a
        # retried write), a different row under the same id is a conflict. The first row
        # written is kept either way. Only the ids that repeat are compared.
        repeats = flagged.filter(pl.col("repeat") & ~pl.col("future") & ~pl.col("stale"))
        if repeats.height:
            ids = repeats["request_id"].unique().implode()
            group = flagged.filter(pl.col("request_id").is_in(ids)).with_columns(
                pl.struct(cols).is_first_distinct().not_().alias("copy")
            )
            live = pl.col("repeat") & ~pl.col("future") & ~pl.col("stale")
            exact = group.filter(live & pl.col("copy")).select(cols)
            conflict = group.filter(live & ~pl.col("copy")).select(cols)
            quarantined.append(quarantine_rows(exact, REPLAYED_REQUEST_ID, "dedup"))
            quarantined.append(quarantine_rows(conflict, DUPLICATE_REQUEST_ID, "dedup"))

    # The good rows leave through one streaming query: identifying columns dropped first (in
    # `drop` mode nothing is copied that is thrown away), the bad rows filtered, unknown
    # categories mapped, without an intermediate copy of the day per step.
    lazy = frame.lazy()
    if config.data.pii_mode == "drop":
        lazy = lazy.drop([c for c in config.problem.pii_columns if c in frame.columns])
    if bad.any():
        lazy = lazy.filter(~bad)
    counts: dict[str, int] = {}
    checks = {
        col: ~pl.col(col).is_in(list(known)) & pl.col(col).is_not_null()
        for col, known in config.data.categories.items()
        if col in frame.columns
    }
    if checks:
        sums = lazy.select([e.sum().alias(c) for c, e in checks.items()])
        unknown = sums.collect(engine="streaming").row(0, named=True)
        counts = {f"{UNKNOWN_CATEGORY}:{c}": int(n) for c, n in unknown.items() if n}
        mapped = [
            pl.when(checks[c]).then(pl.lit(OOV_TOKEN)).otherwise(pl.col(c)).alias(c)
            for c, n in unknown.items()
            if n
        ]
        if mapped:
            lazy = lazy.with_columns(mapped)
    counts[UNKNOWN_CATEGORY] = sum(counts.values())

    frame = protect_pii(lazy.collect(engine="streaming"), config, pii_key)
    quarantine = pl.concat(quarantined) if quarantined else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    # The raw text of a quarantined row may hold PII: it stays in the home's quarantine
    # table (owner-only), never in the versioned repository.
    return frame, quarantine, counts


def validate_ground_truth(
    frame: pl.DataFrame, now: dt.datetime, config: LifecycleConfig, *, simulated_clock: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Labels observed after the loop's clock are quarantined (their time cannot be trusted)."""
    future = pl.col("observed_time") > time_horizon(now, simulated_clock, config)
    bad = quarantine_rows(frame.filter(future), FUTURE_OBSERVED_TIME, "clock")
    return frame.filter(~future), bad


# --- PII -------------------------------------------------------------------------------------


def default_key_path(home_root: Path) -> Path:
    return home_root / "secrets" / "pii_hmac.key"


def pii_key_path(home_root: Path, config: LifecycleConfig) -> Path:
    custom = config.data.pii_key_file
    return Path(custom).expanduser() if custom else default_key_path(home_root)


def ensure_pii_key(home_root: Path, config: LifecycleConfig) -> Path:
    """Create the default key (32 random bytes, owner-only) if it does not exist yet.

    A custom `data.pii_key_file` is the user's to provide: it is never created here.
    """
    path = pii_key_path(home_root, config)
    if config.data.pii_key_file or path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(32))
    return path


def load_pii_key(home_root: Path, config: LifecycleConfig) -> bytes | None:
    """The HMAC key when `data.pii_mode` is `hash`, else None."""
    if config.data.pii_mode != "hash":
        return None
    path = pii_key_path(home_root, config)
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise PiiKeyError(
            f"cannot read the PII hashing key {path}: {exc.strerror or exc}; run `lifecycle "
            "init` (it creates the default key) or fix data.pii_key_file in lifecycle.yaml"
        ) from None
    if len(key) < 16:
        raise PiiKeyError(
            f"the PII hashing key {path} is shorter than 16 bytes: use 32 random bytes"
        )
    return key


def keyed_hash(values: pl.Series, key: bytes) -> pl.Series:
    """HMAC-SHA256 (hex) of each value; computed once per distinct value."""
    distinct = values.drop_nulls().unique().to_list()
    mapping = {
        v: hmac.new(key, str(v).encode("utf-8"), hashlib.sha256).hexdigest() for v in distinct
    }
    return values.cast(pl.String).replace_strict(mapping, default=None, return_dtype=pl.String)


def protect_pii(frame: pl.DataFrame, config: LifecycleConfig, key: bytes | None) -> pl.DataFrame:
    """Identifying columns dropped (`drop`) or replaced by their keyed hash (`hash`)."""
    present = [c for c in config.problem.pii_columns if c in frame.columns]
    if not present:
        return frame
    if config.data.pii_mode == "drop":
        return frame.drop(present)
    if key is None:
        raise PiiKeyError("data.pii_mode is hash but no key was loaded: run `lifecycle init`")
    return frame.with_columns(keyed_hash(frame[c], key).alias(c) for c in present)


def pii_handling(config: LifecycleConfig) -> str:
    cols = list(config.problem.pii_columns)
    if config.data.pii_mode == "drop":
        return f"dropped at ingestion, before storage or versioning: {cols}"
    return f"HMAC-SHA256 with the home's secret key at ingestion (raw values never stored): {cols}"
