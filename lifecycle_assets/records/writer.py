"""The log writer: append-only JSON-line segments per writer and day, a record that cannot be
encoded quarantined with its reason. See `lifecycle_assets.records`."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lifecycle_assets.records.contract import (
    GROUND_TRUTH,
    PREDICTIONS,
    QUARANTINE,
    RAW_CAP,
    SCHEDULED,
    GroundTruthRecord,
    PredictionRecord,
    ScheduledRecord,
    day_dir,
    encode,
    utc,
)

_Key = tuple[str, dt.date]


class LogWriter:
    """Appends records to this writer's own segment per (stream, day); thread-safe.

    Lines are encoded first and written with `os.write` on `O_APPEND` descriptors, so the
    writer always knows exactly which bytes reached the OS: after a failed write (disk
    full) the unwritten remainder stays pending and is written by the next call — nothing
    twice, nothing re-encoded. At most `max_open` descriptors are open; the least recently
    used is closed past that (and fsynced later, off the request path). `flush()` writes
    what is pending and fsyncs.
    """

    def __init__(self, root: Path, writer_id: str | None = None, *, max_open: int = 16) -> None:
        if max_open < 1:
            raise ValueError("max_open must be at least 1")
        self.root = Path(root)
        self.writer_id = writer_id or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.max_open = max_open
        self._lock = threading.Lock()
        self._fds: OrderedDict[_Key, int] = OrderedDict()
        self._pending: dict[_Key, bytearray] = {}
        self._unsynced: set[Path] = set()  # closed by the LRU, not yet fsynced
        self.quarantined = 0
        # The last write error while bytes are still pending; None when everything is out.
        self.error: str | None = None

    # --- encoding ----------------------------------------------------------------------------

    def write_predictions(self, records: list[PredictionRecord]) -> None:
        """Write records; one that breaks the contract raises before anything is written."""
        self._write_all([(PREDICTIONS, _prediction_day(r), encode(r)) for r in records])

    def write_ground_truth(self, records: list[GroundTruthRecord]) -> None:
        self._write_all([(GROUND_TRUTH, _label_day(r), encode(r)) for r in records])

    def write_scheduled(self, records: list[ScheduledRecord]) -> None:
        self._write_all([(SCHEDULED, utc(r.scheduled_time).date(), encode(r)) for r in records])

    def append(
        self, predictions: Sequence[PredictionRecord], labels: Sequence[GroundTruthRecord] = ()
    ) -> int:
        """The service's path: every record that cannot be encoded goes to the quarantine
        stream with its reason instead of failing the batch; returns how many did."""
        lines: list[tuple[str, dt.date, str]] = []
        rejected = 0
        streams: tuple[tuple[str, Sequence[Any], Any], ...] = (
            (PREDICTIONS, predictions, _prediction_day),
            (GROUND_TRUTH, labels, _label_day),
        )
        for stream, records, day_of in streams:
            for rec in records:
                try:
                    lines.append((stream, day_of(rec), encode(rec)))
                except (ValueError, TypeError, OverflowError) as err:
                    lines.append(_quarantine_line(stream, rec, err))
                    rejected += 1
        with self._lock:
            self.quarantined += rejected
        self._write_all(lines)
        return rejected

    # --- writing -----------------------------------------------------------------------------

    def _write_all(self, lines: list[tuple[str, dt.date, str]]) -> None:
        with self._lock:
            for stream, day, line in lines:
                buf = self._pending.get((stream, day))
                if buf is None:
                    buf = self._pending[(stream, day)] = bytearray()
                buf += line.encode("utf-8")
                buf += b"\n"
            self._write_pending()

    def _write_pending(self) -> None:
        """Hand every pending byte to the OS (the lock is held); raises OSError and keeps
        the unwritten rest when a write fails."""
        for key in list(self._pending):
            buf = self._pending[key]
            try:
                fd = self._fd(key)
                while buf:
                    written = os.write(fd, buf)
                    del buf[:written]
            except OSError as err:
                self.error = f"{type(err).__name__}: {err}"
                raise
            del self._pending[key]
        self.error = None

    def _fd(self, key: _Key) -> int:
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
            return fd
        while len(self._fds) >= self.max_open:
            old_key, old = self._fds.popitem(last=False)
            # Closed without an fsync: this runs on the request path (the service's event
            # loop), and a process crash loses nothing the OS has. `sync_to_disk` (the
            # background thread) fsyncs the file by its path, within the fsync interval.
            os.close(old)
            self._unsynced.add(self._segment(old_key))
        path = self._segment(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._fds[key] = fd
        return fd

    def _segment(self, key: _Key) -> Path:
        return day_dir(self.root, *key) / f"{self.writer_id}.jsonl"

    def _sync_closed(self) -> None:
        """fsync segments closed by the LRU since the last sync (by path: fsync through any
        descriptor of a file writes back all of its data)."""
        with self._lock:
            paths, self._unsynced = self._unsynced, set()
        for path in paths:
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    @property
    def pending_lines(self) -> int:
        """Lines encoded but not yet written (only after a failed write)."""
        with self._lock:
            return sum(buf.count(b"\n") for buf in self._pending.values())

    @property
    def open_files(self) -> int:
        return len(self._fds)

    def flush(self, *, durable: bool = True) -> None:
        """Write what is pending; `durable` (the default) also fsyncs the open segments.

        The service flushes with `durable=False`: a killed process then loses nothing that
        was flushed, and only a machine crash can lose what the OS had not yet written back.
        """
        with self._lock:
            self._write_pending()
            if durable:
                for fd in self._fds.values():
                    os.fsync(fd)
        if durable:
            self._sync_closed()

    def sync_to_disk(self) -> None:
        """fsync what was already written to the OS, without holding the lock during the
        fsyncs: a background thread calls this while the request thread keeps writing."""
        with self._lock:
            fds = list(self._fds.values())
        for fd in fds:
            # OSError: closed meanwhile (by the LRU, which leaves it to `_sync_closed`, or by
            # close(), which fsyncs before closing).
            with contextlib.suppress(OSError):
                os.fsync(fd)
        self._sync_closed()

    def close(self) -> None:
        """Write, fsync and close everything; raises OSError if pending bytes cannot be
        written (they stay pending: a later `flush` may still succeed)."""
        self.flush()
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


def _prediction_day(rec: PredictionRecord) -> dt.date:
    return utc(rec.event_time).date()


def _label_day(rec: GroundTruthRecord) -> dt.date:
    """Labels are filed by arrival: the service's `received_at` (its loop clock), or the
    observed time for labels landed by other writers. A client-chosen `observed_time` never
    files a label outside the days the label join reads."""
    return utc(rec.received_at or rec.observed_time).date()


def _quarantine_line(
    stream: str, record: PredictionRecord | GroundTruthRecord, err: Exception
) -> tuple[str, dt.date, str]:
    """A refused record as a quarantine line: the stream, the reason and the record's text
    (repr, cut to `RAW_CAP`: it may hold values JSON cannot)."""
    when = dt.datetime.now(dt.UTC)
    line = json.dumps(
        {
            "stream": stream,
            "request_id": str(getattr(record, "request_id", ""))[:200],
            "reason": f"{type(err).__name__}: {err}"[:500],
            "raw": repr(record)[:RAW_CAP],
            "quarantined_at": when.isoformat(),
        },
        separators=(",", ":"),
    )
    return QUARANTINE, when.date(), line
