"""Which request ids the service has logged, for `serving.unknown_request_id: reject`.

A small SQLite table in the log store (WAL, shared by every worker), filled by the log
writer thread after each batch is written, so it costs the request path nothing. Kept only
when the policy is `reject`; with `accept` (the default) labels for unknown ids are logged and
the data pipeline joins them if the prediction ever shows up.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from lifecycle_assets.records import PredictionRecord

INDEX_FILE = "request_index.sqlite"


class RequestIndex:
    def __init__(self, logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.path = logs / INDEX_FILE
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS requests (request_id TEXT PRIMARY KEY) WITHOUT ROWID"
        )
        self._conn.commit()

    def add(self, records: Sequence[PredictionRecord]) -> None:
        with self._lock:
            self._conn.executemany(
                "INSERT OR IGNORE INTO requests VALUES (?)", ((r.request_id,) for r in records)
            )
            self._conn.commit()

    def known(self, request_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(request_ids))
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT request_id FROM requests WHERE request_id IN ({marks})", chunk
                ).fetchall()
                found.update(r[0] for r in rows)
        return found

    def close(self) -> None:
        with self._lock:
            self._conn.close()
