"""The embedded instance's event log: Dagster's SQLite event log, with one engine per shard.

Dagster's `SqliteEventLogStorage` builds a new SQLAlchemy engine for every connection it
opens, and it opens one for every event it stores (the run's shard, and the index shard again
for an asset event): a run of the loop stores a few hundred events, so building engines was
a fifth of a run's time (docs/profiles/README.md). This subclass keeps each shard's engine
(the most recently used `KEPT_ENGINES` of them: a long-lived UI reads many runs' shards);
connections are still opened and closed per operation
(`NullPool`), under the storage's own lock, exactly as before, so the files, their schema and
the locking between processes (the UI, the daemon, a run) are Dagster's own.

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
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.pool import NullPool

KEPT_ENGINES = 32


class EngineKeepingSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` that builds each shard's SQLAlchemy engine once."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # Before Dagster's own setup, which already connects (to create the index shard).
        self._engines: OrderedDict[str, Engine] = OrderedDict()
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
                engine = create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=NullPool,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
                self._engines[shard] = engine
                if len(self._engines) > KEPT_ENGINES:
                    # No connection of another shard is open: the lock is held while one is.
                    self._engines.popitem(last=False)[1].dispose()
            else:
                self._engines.move_to_end(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
