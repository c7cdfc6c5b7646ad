"""The embedded instance's run storage: Dagster's SQLite run storage, with its connection kept.

Dagster's `SqliteRunStorage` builds a new SQLAlchemy engine and opens a new connection for
every operation (a run's creation, each status change, each look-up of the run), and each
connection it closes is the last one open on `runs.db`, so SQLite checkpoints the file's
write-ahead log (Dagster puts it in WAL mode) and deletes it, again per operation. This
subclass builds the engine once and keeps one connection of it open; a thread that asks while
it is in use gets a connection of its own, closed when returned (SQLAlchemy's `QueuePool`).
Commits are as durable as Dagster's (SQLite's default synchronous mode); the file, its schema
and the locking between processes (the UI, the daemon, a run) are Dagster's own.

The home's `dagster.yaml` names it (`lifecycle_assets.instance.instance_yaml`) with the
instance directory taken from `DAGSTER_HOME`; `runs.db` stays where Dagster's default puts it
(`history/`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._config import StringSource
from dagster._core.storage.runs import SqliteRunStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy import Connection

from lifecycle_assets.automation.event_log import kept_engine


class ConnectionKeepingSqliteRunStorage(SqliteRunStorage):
    """`SqliteRunStorage` that builds its SQLAlchemy engine once and keeps a connection."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engine = kept_engine(conn_string)
        super().__init__(conn_string, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        # The instance directory; `runs.db` is in its `history/`, as by default.
        return {"dagster_home": StringSource}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> ConnectionKeepingSqliteRunStorage:
        return cls.from_local(os.path.join(config_value["dagster_home"], "history", ""), inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()
