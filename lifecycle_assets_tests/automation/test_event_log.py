"""The embedded instance's event log keeps one SQLAlchemy engine per shard, in Dagster's own
files: what it stores, Dagster's stock SQLite event log reads back the same."""

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log import SqliteEventLogStorage

from lifecycle_assets.automation import event_log
from lifecycle_assets.automation.event_log import EngineKeepingSqliteEventLogStorage
from lifecycle_assets.instance import instance_yaml


@dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2026-06-01"))
def counted(context: dg.AssetExecutionContext) -> int:
    return len(context.partition_key)


def _instance(home: Path, monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.from_config(str(home))


def test_runs_store_through_kept_engines_in_dagsters_own_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster"
    instance = _instance(home, monkeypatch)
    storage = instance.event_log_storage
    assert isinstance(storage, EngineKeepingSqliteEventLogStorage)

    built: list[str] = []
    real = event_log.create_engine

    def counting(url: str, **kwargs: object):  # type: ignore[no-untyped-def]
        built.append(url)
        return real(url, **kwargs)

    monkeypatch.setattr(event_log, "create_engine", counting)
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
