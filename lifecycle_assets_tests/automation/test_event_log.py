"""The embedded instance's event log keeps one SQLAlchemy engine per shard, and its run storage
one engine, in Dagster's own files: what they store, Dagster's stock SQLite storage reads back
the same."""

import sqlite3
from pathlib import Path
from types import ModuleType

import dagster as dg
import pytest
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage

from lifecycle_assets.automation import event_log
from lifecycle_assets.automation.event_log import EngineKeepingSqliteEventLogStorage
from lifecycle_assets.automation.run_storage import ConnectionKeepingSqliteRunStorage
from lifecycle_assets.instance import instance_yaml


@dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2026-06-01"))
def counted(context: dg.AssetExecutionContext) -> int:
    return len(context.partition_key)


def _instance(home: Path, monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.from_config(str(home))


def _engines_built(module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URL of each SQLAlchemy engine `module` builds from now on."""
    built: list[str] = []
    real = module.create_engine

    def counting(url: str, **kwargs: object):  # type: ignore[no-untyped-def]
        built.append(url)
        return real(url, **kwargs)

    monkeypatch.setattr(module, "create_engine", counting)
    return built


def test_runs_store_through_kept_engines_in_dagsters_own_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster"
    instance = _instance(home, monkeypatch)
    storage = instance.event_log_storage
    assert isinstance(storage, EngineKeepingSqliteEventLogStorage)

    built = _engines_built(event_log, monkeypatch)
    days = ["2026-06-01", "2026-06-02", "2026-06-03"]
    runs = [dg.materialize([counted], instance=instance, partition_key=day).run_id for day in days]
    # Dozens of events per run, one engine per shard: each run's own (the index shard's was
    # built when the instance opened).
    assert sorted(built) == sorted(storage.conn_string_for_shard(run) for run in runs), built
    assert "index" in storage._engines

    # Dagster's stock storage, on the same directory, reads what was stored.
    stock = SqliteEventLogStorage(str(home / "history" / "runs"))
    for run_id in runs:
        kinds = {e.dagster_event_type for e in stock.get_logs_for_run(run_id) if e.dagster_event}
        assert dg.DagsterEventType.ASSET_MATERIALIZATION in kinds
        assert dg.DagsterEventType.RUN_SUCCESS in kinds
    latest = stock.get_latest_materialization_events([dg.AssetKey("counted")])
    assert latest[dg.AssetKey("counted")] is not None
    partitions = instance.get_materialized_partitions(dg.AssetKey("counted"))
    assert partitions == set(days)
    instance.dispose()


def test_the_kept_engines_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = _instance(tmp_path / "dagster", monkeypatch)
    storage = instance.event_log_storage
    assert isinstance(storage, EngineKeepingSqliteEventLogStorage)
    monkeypatch.setattr(event_log, "KEPT_ENGINES", 2)
    runs = [
        dg.materialize([counted], instance=instance, partition_key=day).run_id
        for day in ("2026-06-01", "2026-06-02", "2026-06-03")
    ]
    assert len(storage._engines) == 2
    # The least recently used went; a read of its run builds its engine again.
    assert storage.get_logs_for_run(runs[0])
    assert len(storage._engines) == 2 and runs[0] in storage._engines
    instance.dispose()


def _schema(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        stamp = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        mode = conn.execute("PRAGMA journal_mode").fetchall()
    conn.close()
    return [*rows, ("alembic", "version", str(stamp)), ("journal_mode", "", str(mode))]


def test_new_run_shards_are_dagsters_own_set_up_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run's shard is Dagster's own empty shard: the first one set up by Dagster's
    `_initdb`, each later one a copy of it; the kept connections close for a wipe."""
    instance = _instance(tmp_path / "dagster", monkeypatch)
    storage = instance.event_log_storage
    assert isinstance(storage, EngineKeepingSqliteEventLogStorage)
    set_up: list[str] = []
    real = EngineKeepingSqliteEventLogStorage._initdb

    def counting(self, engine, for_index_shard=False):  # type: ignore[no-untyped-def]
        set_up.append(str(engine.url))
        return real(self, engine, for_index_shard=for_index_shard)

    monkeypatch.setattr(EngineKeepingSqliteEventLogStorage, "_initdb", counting)
    runs = [
        dg.materialize([counted], instance=instance, partition_key=day).run_id
        for day in ("2026-06-01", "2026-06-02", "2026-06-03")
    ]
    assert set_up == [storage.conn_string_for_shard(runs[0])], set_up

    # Dagster's stock storage sets up a shard of its own: the copies are the same database.
    stock = SqliteEventLogStorage(str(tmp_path / "stock"))
    with stock.run_connection("fresh"):
        pass
    expected = _schema(Path(stock.path_for_shard("fresh")))
    for run_id in runs:
        assert _schema(Path(storage.path_for_shard(run_id))) == expected
    assert not list(Path(storage._base_dir).glob("*.new")), "a staging copy left behind"

    storage.wipe()
    assert not any(Path(storage.path_for_shard(r)).exists() for r in runs)
    again = dg.materialize([counted], instance=instance, partition_key="2026-06-04")
    assert again.success
    assert {e.dagster_event_type for e in storage.get_logs_for_run(again.run_id) if e.dagster_event}
    instance.dispose()


def test_runs_are_stored_through_one_kept_connection_in_dagsters_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run storage builds its engine once; Dagster's stock SQLite run storage reads the
    runs it stored, from the default place."""
    home = tmp_path / "dagster"
    instance = _instance(home, monkeypatch)
    storage = instance.run_storage
    assert isinstance(storage, ConnectionKeepingSqliteRunStorage)
    # Both storages build their engines through `event_log.kept_engine`; the event log's
    # new shards are built there too, so the run storage's are picked out by their file.
    built = _engines_built(event_log, monkeypatch)
    runs = [
        dg.materialize([counted], instance=instance, partition_key=day).run_id
        for day in ("2026-06-01", "2026-06-02")
    ]
    assert built and [url for url in built if url.endswith("/runs.db")] == []
    stock = SqliteRunStorage.from_local(str(home / "history"))
    assert {r.run_id: r.status for r in stock.get_runs()} == dict.fromkeys(
        runs, dg.DagsterRunStatus.SUCCESS
    )
    instance.dispose()
