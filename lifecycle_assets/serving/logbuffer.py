"""Prediction and label logging off the request path, in batches (docs/serving.md, No silent loss).

A request hands its records to `BatchedLog` (a list append) and returns. The first record of
a batch schedules a drain `flush_interval_s` later: on the worker's event loop when there is
one (the service: the drain runs between requests, after the responses went out, with no
thread switch — a writer thread contending for the GIL cost more latency than the writes),
else on a background thread (in-process use). A drain encodes the batch, appends it to the
day's segment (`LogWriter`) and hands it to the OS in one write; a background thread fsyncs
at most every `fsync_interval_s`, without blocking the writes.

A record that cannot be encoded is quarantined with its reason (`LogWriter.append`), never
retried; a write that fails (disk full) leaves its bytes pending in the writer, retried by
the next drain and by the background thread, never written twice. `error` and `backlog()`
tell the service to report itself unhealthy and, past a bound, to stop acknowledging.

Loss windows (measured by `benchmarks/soak.py --crash` and the SIGKILL test):

- graceful shutdown (SIGTERM): zero — `close()` drains, writes and fsyncs everything;
- the process killed (SIGKILL, OOM): what was acknowledged in the last `flush_interval_s`
  (and never more than `max_pending` records: past that, the request drains synchronously);
- the machine losing power: additionally what the OS had not written back, at most
  `fsync_interval_s` of traffic.

`flush_interval_s=0` writes on the request path instead: zero loss on SIGKILL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lifecycle_assets.records import GroundTruthRecord, LogWriter, PredictionRecord

logger = logging.getLogger("lifecycle.serving")

MAX_PENDING = 50_000


class BatchedLog:
    def __init__(
        self,
        writer: LogWriter,
        *,
        flush_interval_s: float = 0.005,
        fsync_interval_s: float = 1.0,
        max_pending: int = MAX_PENDING,
        on_written: Callable[[list[PredictionRecord]], None] | None = None,
        prepare: Callable[[list[PredictionRecord]], list[PredictionRecord]] | None = None,
    ) -> None:
        """`prepare`: applied to each drained batch of predictions before it is encoded (the
        shadow's scores, `serving/shadow.py`); it must not raise, and a batch it fails on
        is logged as it came."""
        self.writer = writer
        self.flush_interval_s = flush_interval_s
        self.fsync_interval_s = fsync_interval_s
        self.max_pending = max_pending
        self.on_written = on_written
        self.prepare = prepare
        self._lock = threading.Lock()  # the pending lists
        self._drain_lock = threading.Lock()  # one drain at a time: lines stay in order
        self._wake = threading.Event()
        self._predictions: list[PredictionRecord] = []
        self._labels: list[GroundTruthRecord] = []
        self._scheduled = False  # a drain is scheduled on the event loop
        self._on_loop = False  # records come from an event loop, which drains them itself
        self._closed = False
        self._thread: threading.Thread | None = None
        if flush_interval_s > 0 or fsync_interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
            self._thread.start()

    @property
    def inline(self) -> bool:
        return self.flush_interval_s <= 0

    def predictions(self, records: list[PredictionRecord]) -> None:
        self._submit(records, [])

    def ground_truth(self, records: list[GroundTruthRecord]) -> None:
        self._submit([], records)

    def _submit(self, predictions: list[PredictionRecord], labels: list[GroundTruthRecord]) -> None:
        if self._closed:
            raise RuntimeError("the prediction log is closed")
        with self._lock:
            self._predictions.extend(predictions)
            self._labels.extend(labels)
            full = len(self._predictions) + len(self._labels) >= self.max_pending
        if self.inline or full:
            # Inline mode, or backpressure: a stalled disk bounds the loss window instead
            # of growing it (this request waits for the drain in progress, then drains).
            self.drain()
            return
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._wake.set()  # no event loop here: the writer thread drains
            return
        self._scheduled = True
        self._on_loop = True
        loop.call_later(self.flush_interval_s, self._drain_on_loop)

    def _drain_on_loop(self) -> None:
        self._scheduled = False
        self.drain()

    def sync(self) -> None:
        """Write everything handed in so far (to the OS; fsync follows within its interval)."""
        self.drain()

    def drain(self) -> bool:
        """Encode and write the pending records; False while the log path fails.

        A record that cannot be encoded goes to the quarantine stream (`LogWriter.append`),
        so one bad record never holds the others back. Records are handed to the writer
        exactly once: after a failed write its unwritten bytes stay pending inside the
        writer and are retried as bytes, so nothing is written twice."""
        with self._drain_lock:
            with self._lock:
                predictions, self._predictions = self._predictions, []
                labels, self._labels = self._labels, []
            if predictions and self.prepare is not None:
                try:
                    predictions = self.prepare(predictions)
                except Exception:  # never lose a record to what prepares it
                    logger.exception("logging %d record(s) unprepared", len(predictions))
            try:
                if predictions or labels:
                    quarantined = self.writer.append(predictions, labels)
                    if quarantined:
                        logger.error(
                            "%d log record(s) could not be encoded; written to the quarantine "
                            "stream with the reason",
                            quarantined,
                        )
                elif self.writer.error is None:
                    return True
                self.writer.flush(durable=self.fsync_interval_s <= 0)
            except OSError as err:  # a full disk: the bytes stay pending in the writer
                logger.error("the prediction log cannot be written (%s); will retry", err)
                return False
        if predictions and self.on_written is not None:
            self.on_written(predictions)
        return True

    @property
    def error(self) -> str | None:
        """Why the log cannot be written now; None when it is healthy."""
        return self.writer.error

    def backlog(self) -> int:
        """Records acknowledged but not yet handed to the OS."""
        with self._lock:
            queued = len(self._predictions) + len(self._labels)
        return queued + (self.writer.pending_lines if self.writer.error else 0)

    def _run(self) -> None:
        """Drains for callers without an event loop; fsyncs in the background."""
        last_fsync = time.monotonic()
        while not self._closed:
            # On an event loop the thread only fsyncs: waking every flush interval would
            # contend for the GIL with the requests for nothing.
            interval = self.fsync_interval_s if self._on_loop else self.flush_interval_s
            woken = self._wake.wait(max(interval, 0.001))
            if woken:  # records from a caller without an event loop
                self._wake.clear()
                time.sleep(self.flush_interval_s)  # let a batch accumulate
            # A failed write is retried from here too: no new request may come to drain it.
            if not self.inline and (woken or not self._on_loop or self.writer.error):
                self.drain()
            now = time.monotonic()
            if self.fsync_interval_s > 0 and now - last_fsync >= self.fsync_interval_s:
                self.writer.sync_to_disk()
                last_fsync = now

    def close(self) -> None:
        """Drain, write and fsync everything; called on graceful shutdown."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        for _ in range(3):
            if self.drain():
                break
            time.sleep(0.1)
        try:
            self.writer.close()  # writes, fsyncs and closes
        except OSError as err:
            logger.error("%d log line(s) could not be written at shutdown: %s",
                         self.writer.pending_lines, err)  # fmt: skip


class NullLog(BatchedLog):
    """Logs nothing. Only for measuring what logging costs (`benchmarks/serving.py` sets
    `LIFECYCLE_BENCHMARK_NO_LOG=1`); the service warns loudly when it is used."""

    def __init__(self) -> None:
        super().__init__(
            LogWriter(Path(os.devnull), "null"), flush_interval_s=0, fsync_interval_s=0
        )

    def _submit(self, predictions: list[PredictionRecord], labels: list[GroundTruthRecord]) -> None:
        pass

    def close(self) -> None:
        pass
