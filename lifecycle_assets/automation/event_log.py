"""The embedded instance's event log: Dagster's SQLite event log, with one open connection
per shard.

Dagster's `SqliteEventLogStorage` builds a new SQLAlchemy engine and opens a new connection
for every operation, and it makes one for every event it stores (the run's shard, and the
index shard again for an asset event): a run of the loop stores a few dozen events. Each
connection it closes is the last one open on its shard, so SQLite checkpoints the shard's
write-ahead log (Dagster puts every shard in WAL mode) and deletes it, again per event. This
subclass keeps each shard's engine and one connection of it open (the most recently used
`KEPT_ENGINES` shards: a long-lived UI reads many runs' shards), so an event is one commit to
the log; SQLite checkpoints it as it fills and when the connection closes. A run's new shard
is set up once per process by Dagster's own `_initdb` (its schema, WAL mode, the alembic
stamp); each later new shard starts as a copy of that empty one (`_from_template`), not a
second set-up of a few dozen statements and an alembic stamp that reads every migration script.

Every use of a connection is under the storage's own lock, exactly as before, and commits are
as durable as Dagster's (SQLite's default synchronous mode); the files, their schema and the
locking between processes (the UI, the daemon, a run) are Dagster's own.

The home's `dagster.yaml` names it (`lifecycle_assets.instance.instance_yaml`) with the
instance directory taken from `DAGSTER_HOME`, so a home moved or copied elsewhere keeps
working, and the event logs stay where Dagster's default puts them (`history/runs/`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._config import StringSource
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.pool import QueuePool

KEPT_ENGINES = 32


def kept_engine(conn_string: str, **connect_args: Any) -> Engine:
    """A SQLite engine that keeps one connection open; a use while it is taken gets a
    connection of its own, closed when returned (SQLAlchemy's `QueuePool`)."""
    return create_engine(
        conn_string,
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=-1,
        connect_args={"check_same_thread": False, **connect_args},
    )


class EngineKeepingSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` that keeps each shard's SQLAlchemy engine and connection."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # Before Dagster's own setup, which already connects (to create the index shard).
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._template: bytes | None = None  # a new run shard as Dagster's `_initdb` left it
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        # The instance directory; the event logs are in its `history/runs/`, as by default.
        return {"dagster_home": StringSource}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> EngineKeepingSqliteEventLogStorage:
        base_dir = os.path.join(config_value["dagster_home"], "history", "runs", "")
        os.makedirs(base_dir, exist_ok=True)
        return cls(base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engines.get(shard)
            if engine is None:
                # Every use of its connection is under the lock; Dagster's set-up of a shard
                # opens a few more at once.
                engine = kept_engine(
                    self.conn_string_for_shard(shard), timeout=SQLITE_BUSY_TIMEOUT_SECONDS
                )
                self._engines[shard] = engine
                if len(self._engines) > KEPT_ENGINES:
                    # No connection of another shard is in use: the lock is held while one is.
                    self._engines.popitem(last=False)[1].dispose()
            else:
                self._engines.move_to_end(shard)
            if shard not in self._initialized_dbs:
                self._setup(shard, engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _setup(self, shard: str, engine: Engine) -> None:
        """Dagster's own set-up of a shard; a run's new shard is a copy of the first one this
        process set up, taken while it was empty."""
        path = self.path_for_shard(shard)
        new = shard != INDEX_SHARD_NAME and not os.path.exists(path)
        if new and self._template is not None and self._from_template(path):
            return
        self._initdb(engine)
        if new and self._template is None:
            engine.dispose()  # its connections closed: the shard's log is checkpointed
            if not os.path.exists(path + "-wal"):
                with open(path, "rb") as f:
                    self._template = f.read()

    def _from_template(self, path: str) -> bool:
        """Create the shard at `path` from the template, atomically: False when that cannot
        be done (another process created it first: Dagster's `_initdb` then finds it set up)."""
        assert self._template is not None
        staging = f"{path}.{os.getpid()}.new"
        with open(staging, "wb") as f:
            f.write(self._template)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(staging, path)  # fails if the shard exists: never over another's file
        except OSError:  # created by another process first, or a file system without links
            return False
        finally:
            os.unlink(staging)
        return True

    def wipe(self) -> None:
        # Dagster's wipe deletes the run shards' files: no connection may stay open on them.
        with self._db_lock:
            self._dispose_engines()
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            self._dispose_engines()

    def _dispose_engines(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
