"""The log reader: a day's segments (JSON lines or Parquet) into typed frames, every bad line
or segment quarantined with a reason, never dropped. See `lifecycle_assets.records`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import polars as pl

from lifecycle_assets.records.contract import (
    GROUND_TRUTH,
    GROUND_TRUTH_SCHEMA,
    PREDICTION_SCHEMA,
    PREDICTIONS,
    QUARANTINE,
    RAW_CAP,
    day_dir,
)
from lifecycle_assets.worktime import work

SEGMENT_PATTERNS = ("*.jsonl", "*.parquet")
# Lines decoded per vectorised batch; a batch with a line that breaks the contract falls back
# to the per-line rules for that batch only, so clean data never pays for the rare bad line.
_BATCH_LINES = 65_536
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%:z"


def _segments(root: Path, stream: str, day: dt.date) -> list[Path]:
    """The day's segment files: JSONL (what the service writes) and Parquet (bulk landings)."""
    folder = day_dir(root, stream, day)
    if not folder.is_dir():
        return []
    return sorted(p for pattern in SEGMENT_PATTERNS for p in folder.glob(pattern))


def has_segments(root: Path, day: dt.date) -> bool:
    """Whether the log store holds a segment of `day` in either stream (what ingest reads)."""
    return any(_segments(root, stream, day) for stream in (PREDICTIONS, GROUND_TRUTH))


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO-8601 string with a timezone, as UTC; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        ts = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts.astimezone(dt.UTC) if ts.tzinfo else None


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what a numeric field of a record may hold."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _is_non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "reason": pl.String(),
    "raw": pl.String(),
}

# Reason codes of the reader (the data pipeline adds its own: see data/validation.py).
CORRUPT_LINE = "corrupt_line"
CORRUPT_SEGMENT = "corrupt_segment"
EMPTY_SEGMENT = "empty_segment"
MISSING_REQUEST_ID = "missing_request_id"
BAD_EVENT_TIME = "bad_event_time"
EVENT_OUTSIDE_PARTITION = "event_time_outside_partition"
MISSING_FEATURES = "missing_features"
BAD_MODEL_VERSION = "bad_model_version"
BAD_DECISION = "bad_decision"
BAD_NUMERIC = "bad_numeric_feature"
NON_FINITE_NUMERIC = "non_finite_numeric"
BAD_CATEGORICAL = "bad_categorical_feature"
BAD_PII = "bad_pii_column"
BAD_LABEL = "bad_label"
BAD_OBSERVED_TIME = "bad_observed_time"
BAD_RECEIVED_AT = "bad_received_at"


@dataclass(frozen=True)
class _Stream:
    """What one stream's rows look like: its typed output and the per-line contract."""

    schema: dict[str, pl.DataType]
    decode: pl.Struct  # the JSON shape of a line, decoded strictly
    good: pl.Expr  # over the decoded fields: True where the row is certainly valid
    select: list[pl.Expr]  # decoded fields → output columns
    classify: Any  # per-line rules: dict → (reason | None, output row | None)
    # {JSON key: kind}: polars' decoder coerces (7 → "7", true → 1.0), so the raw text is
    # checked for the JSON type of each value ("str", "num", "str?"/"num?": or null/absent).
    kinds: dict[str, str] = field(default_factory=dict)


def _time_field(parsed: bool) -> pl.DataType:
    return pl.Datetime("us", "UTC") if parsed else pl.String()


def _time(name: str, parsed: bool) -> pl.Expr:
    """A timestamp column: ISO text (JSON) parsed strictly, or a typed UTC column (Parquet)."""
    if parsed:
        return pl.col(name)
    return pl.col(name).str.to_datetime(_ISO_FORMAT, strict=False, time_unit="us", time_zone="UTC")


def _prediction_stream(
    numeric: tuple[str, ...],
    categorical: tuple[str, ...],
    pii: tuple[str, ...],
    parsed: bool = False,
) -> _Stream:
    feature_fields = {
        **{n: pl.Float64() for n in numeric},
        **{c: pl.String() for c in categorical},
        **{p: pl.String() for p in pii},
    }
    decode = pl.Struct(
        {
            "request_id": pl.String(),
            "entity_id": pl.String(),
            "event_time": _time_field(parsed),
            "features": pl.Struct(feature_fields),
            "model_version": pl.String(),
            "score": pl.Float64(),
            "decision": pl.String(),
            "logged_at": _time_field(parsed),
            "out_of_range": pl.List(pl.String()),
            "shadow_version": pl.String(),
            "shadow_score": pl.Float64(),
            **{p: pl.String() for p in pii},
        }
    )
    event = _time("event_time", parsed)
    logged = _time("logged_at", parsed)
    feats = pl.col("features")
    good = (
        (pl.col("request_id").str.len_bytes() > 0)
        & event.is_not_null()
        & feats.is_not_null()
        # a timestamp the fast parser does not know goes to the per-line rules, never to None
        & (pl.col("logged_at").is_null() | logged.is_not_null())
    )
    for n in numeric:
        good &= feats.struct.field(n).is_finite().fill_null(False)
    for c in categorical:
        good &= feats.struct.field(c).is_not_null()
    score = pl.col("score")
    shadow_score = pl.col("shadow_score")
    shadowed = pl.col("shadow_version").is_not_null() & shadow_score.is_finite().fill_null(False)
    select = [
        pl.col("request_id"),
        pl.col("entity_id").fill_null(""),
        event.alias("event_time"),
        pl.col("model_version"),
        pl.when(score.is_finite()).then(score).otherwise(None).alias("score"),
        pl.col("decision"),
        logged.alias("logged_at"),
        pl.col("out_of_range"),
        # the shadow's pair, both or neither: a half is no paired row for the shadow gate
        pl.when(shadowed).then(pl.col("shadow_version")).alias("shadow_version"),
        pl.when(shadowed).then(shadow_score).alias("shadow_score"),
        *[feats.struct.field(n).alias(n) for n in numeric],
        *[feats.struct.field(c).alias(c) for c in categorical],
        # an identifying field may sit at the top level or among the features
        *[pl.coalesce(pl.col(p), feats.struct.field(p)).alias(p) for p in pii],
    ]

    def classify(row: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        if not isinstance(row.get("request_id"), str) or not row["request_id"]:
            return MISSING_REQUEST_ID, None
        if parse_time(row.get("event_time")) is None:
            return BAD_EVENT_TIME, None
        if not isinstance(row.get("features"), dict):
            return MISSING_FEATURES, None
        # a non-string here would make the frame constructor fail the whole day
        if not isinstance(row.get("model_version"), str | None):
            return BAD_MODEL_VERSION, None
        if not isinstance(row.get("decision"), str | None):
            return BAD_DECISION, None
        f = row["features"]
        if any(_is_non_finite(f.get(n)) for n in numeric):
            return NON_FINITE_NUMERIC, None
        if any(not is_number(f.get(n)) for n in numeric):
            return BAD_NUMERIC, None
        if any(not isinstance(f.get(c), str) for c in categorical):
            return BAD_CATEGORICAL, None
        pii_values = {p: row.get(p, f.get(p)) for p in pii}
        if any(
            not isinstance(v, str | int | None) or isinstance(v, bool) for v in pii_values.values()
        ):
            return BAD_PII, None
        score = row.get("score")
        flagged = row.get("out_of_range")
        if not isinstance(flagged, list) or not all(isinstance(n, str) for n in flagged):
            flagged = None
        shadow, shadow_score = row.get("shadow_version"), row.get("shadow_score")
        if not isinstance(shadow, str) or not is_number(shadow_score):
            # a broken shadow pair costs the row its shadow score, never the row itself
            shadow, shadow_score = None, None
        return None, {
            "request_id": row["request_id"],
            "entity_id": str(row.get("entity_id") or ""),
            "event_time": parse_time(row["event_time"]),
            "model_version": row.get("model_version"),
            "score": float(score) if is_number(score) else None,  # type: ignore[arg-type]
            "decision": row.get("decision"),
            "logged_at": parse_time(row.get("logged_at")),
            "out_of_range": flagged,
            "shadow_version": shadow,
            "shadow_score": None if shadow_score is None else float(shadow_score),
            **{n: float(f[n]) for n in numeric},
            **{c: f[c] for c in categorical},
            **{p: (None if v is None else str(v)) for p, v in pii_values.items()},
        }

    schema = {
        **PREDICTION_SCHEMA,
        **{n: pl.Float64() for n in numeric},
        **{c: pl.String() for c in categorical},
        **{p: pl.String() for p in pii},
    }
    kinds = {
        "request_id": "str",
        "event_time": "str",
        "entity_id": "str?",
        "model_version": "str?",
        "decision": "str?",
        "score": "num?",
        "logged_at": "str?",
        "shadow_version": "str?",
        "shadow_score": "num?",
        **{n: "num" for n in numeric},
        **{c: "str" for c in categorical},
        **{p: "str?" for p in pii},
    }
    return _Stream(schema, decode, good, select, classify, kinds)


def _ground_truth_stream(parsed: bool = False) -> _Stream:
    decode = pl.Struct(
        {
            "request_id": pl.String(),
            "label": pl.Float64(),
            "observed_time": _time_field(parsed),
            "received_at": _time_field(parsed),
        }
    )
    observed = _time("observed_time", parsed)
    received = _time("received_at", parsed)
    good = (
        (pl.col("request_id").str.len_bytes() > 0)
        & pl.col("label").is_finite().fill_null(False)
        & observed.is_not_null()
        & (pl.col("received_at").is_null() | received.is_not_null())
    )
    select = [
        pl.col("request_id"),
        pl.col("label"),
        observed.alias("observed_time"),
        received.alias("received_at"),
    ]

    def classify(row: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        if not isinstance(row.get("request_id"), str) or not row["request_id"]:
            return MISSING_REQUEST_ID, None
        if not is_number(row.get("label")):
            return BAD_LABEL, None
        observed = parse_time(row.get("observed_time"))
        if observed is None:
            return BAD_OBSERVED_TIME, None
        received = parse_time(row.get("received_at"))
        if row.get("received_at") is not None and received is None:
            return BAD_RECEIVED_AT, None
        return None, {
            "request_id": row["request_id"],
            "label": float(row["label"]),
            "observed_time": observed,
            "received_at": received,
        }

    kinds = {"request_id": "str", "label": "num", "observed_time": "str", "received_at": "str?"}
    return _Stream(dict(GROUND_TRUTH_SCHEMA), decode, good, select, classify, kinds)


def _typed(lines: pl.Series, kinds: dict[str, str]) -> pl.Series:
    """True where every listed key's value has its JSON type (by the raw text)."""
    frame = lines.alias("raw").to_frame()
    exprs = []
    for key, kind in kinds.items():
        head = '"' + re.escape(key) + r'"\s*:\s*'
        value = '"' if kind.startswith("str") else "-?[0-9]"
        if kind.endswith("?"):
            exprs.append(
                pl.col("raw").str.contains(head + "(?:" + value + "|null)")
                | ~pl.col("raw").str.contains(head)
            )
        else:
            exprs.append(pl.col("raw").str.contains(head + value))
    return frame.select(pl.all_horizontal(exprs).alias("typed"))["typed"]


def _bad(source: str, reason: str | list[str], raw: list[str]) -> pl.DataFrame:
    reasons = reason if isinstance(reason, list) else [reason] * len(raw)
    return pl.DataFrame(
        {"source": [source] * len(raw), "reason": reasons, "raw": raw}, schema=QUARANTINE_SCHEMA
    ).with_columns(pl.col("raw").str.slice(0, RAW_CAP))


def _per_row(
    stream: _Stream, source: str, rows: list[Any], raws: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame, list[bool]]:
    """The contract's rules row by row (rows already parsed; None: not JSON)."""
    good: list[dict[str, Any]] = []
    bad_reason: list[str] = []
    bad_raw: list[str] = []
    accepted: list[bool] = []
    for row, raw in zip(rows, raws, strict=True):
        reason, out = (CORRUPT_LINE, None) if not isinstance(row, dict) else stream.classify(row)
        accepted.append(out is not None)
        if out is None:
            bad_reason.append(reason or CORRUPT_LINE)
            bad_raw.append(raw)
        else:
            good.append(out)
    return pl.DataFrame(good, schema=stream.schema), _bad(source, bad_reason, bad_raw), accepted


def _json_rows(lines: list[str]) -> list[Any]:
    rows: list[Any] = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            rows.append(None)  # e.g. a torn last line from a crashed writer: quarantined
    return rows


def _vet(
    stream: _Stream,
    source: str,
    decoded: pl.DataFrame,
    slow: Any,
    typed: pl.Series | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Vectorised acceptance; rows it cannot vouch for get the exact per-row verdict.

    `slow(mask)` returns (parsed rows, raw texts) of the rows selected by `mask`.
    """
    flags = decoded.select(stream.good.fill_null(False).alias("_good"))["_good"]
    if typed is not None:
        flags = flags & typed
    rows = decoded.filter(flags).select(stream.select).cast(stream.schema)  # type: ignore[arg-type]
    if flags.all():
        return rows, pl.DataFrame(schema=QUARANTINE_SCHEMA)
    parsed, raws = slow(~flags)
    more, quarantine, accepted = _per_row(stream, source, parsed, raws)
    if more.height:
        # Keep file order: the vetted rows and the rescued ones interleaved as written.
        index = pl.Series("_i", range(decoded.height))
        rescued = index.filter(~flags).filter(pl.Series(accepted, dtype=pl.Boolean()))
        order = pl.concat([index.filter(flags), rescued])
        rows = pl.concat([rows, more]).with_columns(order).sort("_i").drop("_i")
    return rows, quarantine


def _decode_batch(
    stream: _Stream, source: str, lines: pl.Series
) -> tuple[pl.DataFrame, pl.DataFrame]:
    try:
        decoded = lines.str.json_decode(stream.decode).struct.unnest()
    except pl.exceptions.PolarsError:
        # A line that is not JSON, or breaks a field's type: the per-line rules say which.
        texts = lines.to_list()
        rows, quarantine, _ = _per_row(stream, source, _json_rows(texts), texts)
        return rows, quarantine

    def slow(mask: pl.Series) -> tuple[list[Any], list[str]]:
        texts = lines.filter(mask).to_list()
        return _json_rows(texts), texts

    return _vet(stream, source, decoded, slow, _typed(lines, stream.kinds))


def _read_jsonl(stream: _Stream, path: Path) -> tuple[list[pl.DataFrame], list[pl.DataFrame]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [_bad(path.name, CORRUPT_SEGMENT, [f"{type(exc).__name__}: {exc}"])]
    lines = pl.Series("raw", data.decode("utf-8", errors="replace").split("\n"))
    lines = lines.str.strip_chars()
    lines = lines.filter(lines.str.len_bytes() > 0)
    if lines.len() == 0:
        return [], [_bad(path.name, EMPTY_SEGMENT, [""])]
    goods, bads = [], []
    for start in range(0, lines.len(), _BATCH_LINES):
        rows, quarantine = _decode_batch(stream, path.name, lines.slice(start, _BATCH_LINES))
        goods.append(rows)
        bads.append(quarantine)
    return goods, bads


def _as_json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _as_json_value(v) for k, v in value.items()}
    return value


def _parquet_rows(frame: pl.DataFrame, features: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of a Parquet segment as the JSON contract sees them (times as ISO text)."""
    rows = []
    for row in frame.to_dicts():
        row = {k: _as_json_value(v) for k, v in row.items()}
        if not isinstance(row.get("features"), dict):
            row["features"] = {f: row.pop(f) for f in features if f in row}
        rows.append(row)
    return rows


def _shape_parquet(frame: pl.DataFrame, stream: _Stream) -> pl.DataFrame:
    """A Parquet segment in the decoded-JSON shape; strict casts (a contract break raises).

    Columns are matched by name, so reordered and extra (new optional) columns are fine.
    """
    if isinstance(frame.schema.get("features"), pl.Struct):
        # nested features: the same contract as flat feature columns
        frame = frame.with_columns(pl.col("features").struct.unnest()).drop("features")
    exprs = []
    for name, dtype in stream.decode.to_schema().items():
        dtype = cast(pl.DataType, dtype)
        if name == "features":
            fields = cast(pl.Struct, dtype).to_schema()
            # flat feature columns: the same fields, one column each
            inner = [
                _strict(frame, f, t).alias(f) if f in frame.columns else pl.lit(None, t).alias(f)
                for f, t in fields.items()
            ]
            exprs.append(pl.struct(inner).alias(name))
            continue
        if name not in frame.columns:
            exprs.append(pl.lit(None, dtype).alias(name))
        elif isinstance(dtype, pl.Datetime):
            source = frame.schema[name]
            if not isinstance(source, pl.Datetime) or source.time_zone is None:
                # naive or textual times: the per-row rules decide (naive ones are bad)
                raise pl.exceptions.SchemaError(f"{name} is {source}, not a UTC timestamp")
            exprs.append(
                pl.col(name).dt.convert_time_zone("UTC").dt.cast_time_unit("us").alias(name)
            )
        else:
            exprs.append(_strict(frame, name, dtype).alias(name))
    return frame.select(exprs)


def _strict(frame: pl.DataFrame, name: str, dtype: Any) -> pl.Expr:
    """A column cast to its contract type, refusing what JSON would also refuse."""
    source = frame.schema[name]
    if dtype == pl.String() and source not in (pl.String(), pl.Categorical(), pl.Null()):
        raise pl.exceptions.SchemaError(f"{name} is {source}, not a string")
    if dtype.is_numeric() and not (source.is_numeric() or source == pl.Null()):
        raise pl.exceptions.SchemaError(f"{name} is {source}, not a number")
    return pl.col(name).cast(dtype, strict=True)


def _read_parquet(
    stream: _Stream, path: Path, features: tuple[str, ...]
) -> tuple[list[pl.DataFrame], list[pl.DataFrame]]:
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        return [], [_bad(path.name, CORRUPT_SEGMENT, [f"{type(exc).__name__}: {exc}"])]
    if frame.height == 0:
        return [], [_bad(path.name, EMPTY_SEGMENT, [""])]

    def slow(mask: pl.Series | None) -> tuple[list[Any], list[str]]:
        part = frame if mask is None else frame.filter(mask)
        rows = _parquet_rows(part, features)
        return rows, [json.dumps(r, default=str) for r in rows]

    try:
        decoded = _shape_parquet(frame, stream)
    except (pl.exceptions.PolarsError, TypeError):
        # A column of the wrong type breaks the contract for the whole segment: every row
        # gets the per-row verdict (and its reason), none is silently coerced.
        rows, raws = slow(None)
        good, quarantine, _ = _per_row(stream, path.name, rows, raws)
        return [good], [quarantine]
    good, quarantine = _vet(stream, path.name, decoded, slow)
    return [good], [quarantine]


def _read(
    root: Path, stream_name: str, day: dt.date, make: Any, features: tuple[str, ...]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """All segments of a day; `make(parsed)` builds the stream for text or typed times."""
    stream = make(False)
    goods: list[pl.DataFrame] = [pl.DataFrame(schema=stream.schema)]
    bads: list[pl.DataFrame] = [pl.DataFrame(schema=QUARANTINE_SCHEMA)]
    for path in _segments(root, stream_name, day):
        if path.suffix == ".parquet":
            g, b = _read_parquet(make(True), path, features)
        else:
            g, b = _read_jsonl(stream, path)
        goods += g
        bads += b
    return pl.concat(goods, how="vertical"), pl.concat(bads, how="vertical")


@work("transforms")
def read_predictions(
    root: Path,
    day: dt.date,
    numeric: tuple[str, ...],
    categorical: tuple[str, ...],
    pii: tuple[str, ...] = (),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One day's prediction records with features unnested into typed columns.

    Returns (rows, quarantine): a row that breaks the contract is never dropped silently; it
    goes to the quarantine frame with a reason. `pii` columns (top level or among the
    features) are read as strings so the pipeline can drop or hash them; nothing else
    outside the config is unnested. Rows dated outside `day` are quarantined.
    """
    rows, quarantine = _read(
        root,
        PREDICTIONS,
        day,
        lambda parsed: _prediction_stream(tuple(numeric), tuple(categorical), tuple(pii), parsed),
        (*numeric, *categorical, *pii),
    )
    lo = dt.datetime.combine(day, dt.time(), dt.UTC)
    hi = lo + dt.timedelta(days=1)
    # a mask first: the (rare) rows outside the day cost a filter only when there are some
    inside = rows.select(
        ((pl.col("event_time") >= lo) & (pl.col("event_time") < hi)).alias("_inside")
    )["_inside"]
    if not inside.all():
        outside = rows.filter(~inside)
        rows = rows.filter(inside)
        moved = outside.select(
            pl.lit("partition").alias("source"),
            pl.lit(EVENT_OUTSIDE_PARTITION).alias("reason"),
            pl.struct(pl.all()).struct.json_encode().str.slice(0, RAW_CAP).alias("raw"),
        )
        quarantine = pl.concat([quarantine, moved])
    return rows, quarantine


@work("transforms")
def read_ground_truth(root: Path, day: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Label events that arrived on `day`, and the quarantined ones with reasons."""
    return _read(root, GROUND_TRUTH, day, _ground_truth_stream, ())


def _iter_lines(path: Path):
    """(raw line, parsed dict or None) of a JSONL segment, blank lines skipped."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                yield line, None
                continue
            yield line, row if isinstance(row, dict) else None


def count_records(root: Path, stream: str, day: dt.date) -> int:
    """Records written for a day (good or bad), for reconciling served against logged."""
    total = 0
    for path in _segments(root, stream, day):
        if path.suffix == ".parquet":
            try:
                total += pl.scan_parquet(path).select(pl.len()).collect().item()
            except (OSError, pl.exceptions.PolarsError):
                continue
        else:
            total += sum(1 for _ in _iter_lines(path))
    return total


def read_log_quarantine(root: Path, day: dt.date) -> list[dict[str, Any]]:
    """The records the service refused to log on `day`, with their reasons."""
    out: list[dict[str, Any]] = []
    for path in _segments(root, QUARANTINE, day):
        out += [row for _, row in _iter_lines(path) if row is not None]
    return out


def log_fingerprints(logs: Path) -> dict[str, str]:
    """Per day (ISO), a fingerprint of every segment the service wrote for it, in both
    streams (name, size, mtime): it changes whenever a day's logs do. The log store's data
    version per day, and what the sensor that ingests new logs compares."""
    days: dict[str, list[str]] = {}
    for stream in (PREDICTIONS, GROUND_TRUTH):
        root = logs / stream
        if not root.is_dir():
            continue
        for folder in sorted(root.glob("date=*")):
            day = folder.name.removeprefix("date=")
            for seg in sorted(folder.iterdir()):
                if seg.is_file():
                    st = seg.stat()
                    days.setdefault(day, []).append(
                        f"{stream}/{seg.name}:{st.st_size}:{st.st_mtime_ns}"
                    )
    # A stable digest (not hash(), which is salted per process): a cursor outlives processes.
    return {
        day: hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
        for day, parts in days.items()
    }
