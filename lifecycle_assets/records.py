"""The log-record contract (DESIGN §3): what the service writes and the data pipeline reads.

Prediction and ground-truth records are JSON lines in append-only segments under the log
store, one folder per day::

    logs/predictions/date=YYYY-MM-DD/<writer>.jsonl     by the prediction's event date
    logs/ground_truth/date=YYYY-MM-DD/<writer>.jsonl    by the label's arrival date

Each writer (a service worker, the simulator) owns its segment files, so concurrent
writers never interleave lines.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

PREDICTIONS = "predictions"
GROUND_TRUTH = "ground_truth"

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


@dataclass(frozen=True)
class GroundTruthRecord:
    request_id: str
    label: float
    observed_time: dt.datetime


PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "entity_id": pl.String(),
    "event_time": pl.Datetime("us", "UTC"),
    "model_version": pl.String(),
    "score": pl.Float64(),
    "decision": pl.String(),
    "logged_at": pl.Datetime("us", "UTC"),
}

GROUND_TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "label": pl.Float64(),
    "observed_time": pl.Datetime("us", "UTC"),
}


def _utc(ts: dt.datetime) -> dt.datetime:
    if ts.tzinfo is None:
        raise ValueError("timestamps in log records must be timezone-aware")
    return ts.astimezone(dt.UTC)


def _encode(record: PredictionRecord | GroundTruthRecord) -> str:
    out: dict[str, Any] = {}
    for key, value in asdict(record).items():
        if isinstance(value, dt.datetime):
            value = _utc(value).isoformat()
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key} must be finite")
        out[key] = value
    return json.dumps(out, separators=(",", ":"), allow_nan=False)


def day_dir(root: Path, stream: str, day: dt.date) -> Path:
    return root / stream / f"date={day.isoformat()}"


class LogWriter:
    """Appends records to this writer's own segment per day; thread-safe.

    `flush()` makes everything appended so far durable (fsync) before returning.
    """

    def __init__(self, root: Path, writer_id: str | None = None) -> None:
        self.root = Path(root)
        self.writer_id = writer_id or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._files: dict[tuple[str, dt.date], Any] = {}

    def _file(self, stream: str, day: dt.date):
        key = (stream, day)
        fh = self._files.get(key)
        if fh is None:
            folder = day_dir(self.root, stream, day)
            folder.mkdir(parents=True, exist_ok=True)
            fh = open(folder / f"{self.writer_id}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            self._files[key] = fh
        return fh

    def write_predictions(self, records: list[PredictionRecord]) -> None:
        with self._lock:
            for rec in records:
                self._file(PREDICTIONS, _utc(rec.event_time).date()).write(_encode(rec) + "\n")

    def write_ground_truth(self, records: list[GroundTruthRecord]) -> None:
        with self._lock:
            for rec in records:
                day = _utc(rec.observed_time).date()
                self._file(GROUND_TRUTH, day).write(_encode(rec) + "\n")

    def flush(self, *, durable: bool = True) -> None:
        """Hand buffered lines to the OS; `durable` (the default) also fsyncs them.

        The service flushes with `durable=False` per request: a killed process then loses
        nothing, and only a machine crash can lose what the OS had not yet written back.
        """
        with self._lock:
            for fh in self._files.values():
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())

    def close(self) -> None:
        self.flush()
        with self._lock:
            for fh in self._files.values():
                fh.close()
            self._files.clear()


def _segments(root: Path, stream: str, day: dt.date) -> list[Path]:
    folder = day_dir(root, stream, day)
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts.astimezone(dt.UTC) if ts.tzinfo else None


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "reason": pl.String(),
    "raw": pl.String(),
}


def read_predictions(
    root: Path, day: dt.date, numeric: tuple[str, ...], categorical: tuple[str, ...]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One day's prediction records with features unnested into typed columns.

    Returns (rows, quarantine): a row that breaks the contract is never dropped silently; it
    goes to the quarantine frame with a reason.
    """
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for path in _segments(root, PREDICTIONS, day):
        for raw, row in _iter_lines(path):
            reason = None
            if row is None:
                reason = "corrupt_line"
            elif not isinstance(row.get("request_id"), str) or not row["request_id"]:
                reason = "missing_request_id"
            elif _parse_time(row.get("event_time")) is None:
                reason = "bad_event_time"
            elif not isinstance(row.get("features"), dict):
                reason = "missing_features"
            # a non-string here would make the frame constructor fail the whole day
            elif not isinstance(row.get("model_version"), str | None):
                reason = "bad_model_version"
            elif not isinstance(row.get("decision"), str | None):
                reason = "bad_decision"
            if reason is None and row is not None:
                feats = row["features"]
                if any(not _is_number(feats.get(n)) for n in numeric):
                    reason = "bad_numeric_feature"
                elif any(not isinstance(feats.get(c), str) for c in categorical):
                    reason = "bad_categorical_feature"
            if reason is not None or row is None:
                bad.append({"source": path.name, "reason": reason, "raw": raw[:2000]})
                continue
            feats = row["features"]
            score = row.get("score")
            good.append(
                {
                    "request_id": row["request_id"],
                    "entity_id": str(row.get("entity_id") or ""),
                    "event_time": _parse_time(row["event_time"]),
                    "model_version": row.get("model_version"),
                    "score": float(score) if _is_number(score) else None,
                    "decision": row.get("decision"),
                    "logged_at": _parse_time(row.get("logged_at")),
                    **{n: float(feats[n]) for n in numeric},
                    **{c: feats[c] for c in categorical},
                }
            )
    schema = {
        **PREDICTION_SCHEMA,
        **{n: pl.Float64() for n in numeric},
        **{c: pl.String() for c in categorical},
    }
    return pl.DataFrame(good, schema=schema), pl.DataFrame(bad, schema=QUARANTINE_SCHEMA)


def read_ground_truth(root: Path, day: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Label events that arrived on `day`, and the quarantined ones with reasons."""
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for path in _segments(root, GROUND_TRUTH, day):
        for raw, row in _iter_lines(path):
            reason = None
            if row is None:
                reason = "corrupt_line"
            elif not isinstance(row.get("request_id"), str) or not row["request_id"]:
                reason = "missing_request_id"
            elif not _is_number(row.get("label")):
                reason = "bad_label"
            elif _parse_time(row.get("observed_time")) is None:
                reason = "bad_observed_time"
            if reason is not None or row is None:
                bad.append({"source": path.name, "reason": reason, "raw": raw[:2000]})
                continue
            good.append(
                {
                    "request_id": row["request_id"],
                    "label": float(row["label"]),
                    "observed_time": _parse_time(row["observed_time"]),
                }
            )
    return (
        pl.DataFrame(good, schema=GROUND_TRUTH_SCHEMA),
        pl.DataFrame(bad, schema=QUARANTINE_SCHEMA),
    )


def _iter_lines(path: Path):
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                # A torn last line from a crashed writer: quarantined, not lost.
                yield line, None
                continue
            yield line, row if isinstance(row, dict) else None


def count_records(root: Path, stream: str, day: dt.date) -> int:
    """Lines written for a day (good or bad), for reconciling served against logged."""
    return sum(1 for path in _segments(root, stream, day) for _ in _iter_lines(path))
