"""The offline lookup store: precomputed scores for scheduled items, read at serve time.

`LookupStore` is the interface a key-value store offers (get one key; publish a whole new
generation atomically; describe the live generation). `SqliteLookupStore` is the embedded
default: each generation is a fresh SQLite file built beside the live one and swapped in with
`os.replace` (`files.replacing`, durable), so a reader sees the old generation or the new one, never a mix. Readers open
the file read-only and `immutable` (it never changes in place, only gets replaced), which
skips SQLite's locking on every read, and notice a swap by `stat`-ing the path at most every
`check_interval_s`. A Redis store would implement the same three methods with a generation
prefix per key and one pointer key swapped by `SET`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.files import Signature, replacing, signature

STORE_FILE = "lookup.sqlite"
CHECK_INTERVAL_S = 0.5

_COLUMNS = (
    "item_id",
    "entity_id",
    "scheduled_time",
    "features",
    "score",
    "probability",
    "decision",
    "rule",
    "model_version",
    "computed_at",
)


class LookupError_(LifecycleError, RuntimeError):
    """The lookup store cannot be written or read."""


@dataclass(frozen=True)
class LookupEntry:
    """One scheduled item's precomputed answer. `features` is the raw JSON the item was
    scored from (kept so it can be rescored online); `score` None means not scored yet."""

    item_id: str
    entity_id: str
    scheduled_time: str
    features: str | None
    score: float | None
    probability: float | None
    decision: str | None
    rule: str | None
    model_version: str | None
    computed_at: str

    def feature_dict(self) -> dict[str, Any] | None:
        return json.loads(self.features) if self.features else None


class LookupStore(ABC):
    @abstractmethod
    def get(self, item_id: str) -> LookupEntry | None: ...

    @abstractmethod
    def publish(self, entries: Iterable[LookupEntry], info: dict[str, Any]) -> dict[str, Any]:
        """Replace the whole store with these entries, atomically; returns the generation."""

    @abstractmethod
    def info(self) -> dict[str, Any] | None:
        """The live generation's description (None before the first publish)."""

    def close(self) -> None:  # noqa: B027 - optional for stores without connections
        pass


class SqliteLookupStore(LookupStore):
    def __init__(self, directory: str | Path, check_interval_s: float = CHECK_INTERVAL_S) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STORE_FILE
        self.check_interval_s = check_interval_s
        self._conn: sqlite3.Connection | None = None
        self._sig: Signature = None
        self._next_check = 0.0
        self._lock = threading.Lock()

    # --- reading (the serving path) ---------------------------------------------------

    def _reader(self) -> sqlite3.Connection | None:
        t = time.monotonic()
        if t >= self._next_check:
            self._next_check = t + self.check_interval_s
            sig = signature(self.path)
            if sig != self._sig:
                with self._lock:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    if sig is not None:
                        uri = f"file:{self.path}?mode=ro&immutable=1"
                        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                    self._sig = sig
        return self._conn

    def get(self, item_id: str) -> LookupEntry | None:
        conn = self._reader()
        if conn is None:
            return None
        row = conn.execute("SELECT * FROM entries WHERE item_id = ?", (item_id,)).fetchone()
        return None if row is None else LookupEntry(*row)

    def info(self) -> dict[str, Any] | None:
        conn = self._reader()
        if conn is None:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return json.loads(row[0]) if row else None

    # --- writing (the offline_predictions asset) ----------------------------------------

    def publish(self, entries: Iterable[LookupEntry], info: dict[str, Any]) -> dict[str, Any]:
        self.directory.mkdir(parents=True, exist_ok=True)
        generation_id = uuid.uuid4().hex
        try:
            # written beside the store and swapped in whole, flushed to disk first
            with replacing(self.path, durable=True) as tmp:
                conn = sqlite3.connect(tmp)
                try:
                    conn.execute("PRAGMA journal_mode=OFF")  # a fresh file: all or nothing
                    conn.execute(
                        "CREATE TABLE entries (item_id TEXT PRIMARY KEY, entity_id TEXT NOT "
                        "NULL, scheduled_time TEXT NOT NULL, features TEXT, score REAL, "
                        "probability REAL, decision TEXT, rule TEXT, model_version TEXT, "
                        "computed_at TEXT NOT NULL) WITHOUT ROWID"
                    )
                    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                    placeholders = ", ".join("?" * len(_COLUMNS))
                    cursor = conn.executemany(
                        f"INSERT INTO entries VALUES ({placeholders})",
                        (
                            (
                                e.item_id,
                                e.entity_id,
                                e.scheduled_time,
                                e.features,
                                e.score,
                                e.probability,
                                e.decision,
                                e.rule,
                                e.model_version,
                                e.computed_at,
                            )
                            for e in entries
                        ),
                    )
                    generation = {**info, "entries": cursor.rowcount, "generation": generation_id}
                    conn.execute(
                        "INSERT INTO meta VALUES ('generation', ?)", (json.dumps(generation),)
                    )
                    conn.commit()
                finally:
                    conn.close()
        except (sqlite3.Error, OSError) as err:
            raise LookupError_(f"cannot publish the lookup store at {self.path}: {err}") from err
        return generation

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._sig = None
