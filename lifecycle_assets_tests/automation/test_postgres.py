"""Dagster on a real PostgreSQL server (started here, on a free port): `lifecycle init
--instance` writes the instance config or refuses a server it cannot use, and a day of the
loop runs through the daemon (QueuedRunCoordinator, multiprocess executor) with the
late-label sensor firing, as on the embedded SQLite instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from lifecycle_assets.automation.loop import decision_for, instance_for, run_day
from lifecycle_assets.defs.automation.daily import INGEST, LABELS, TRAINING
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.instance import instance_yaml
from lifecycle_assets.registry.registry import Registry, served_ledger
from lifecycle_assets_tests.automation.test_loop import simulate_day
from lifecycle_assets_tests.conftest import _isolate
from lifecycle_assets_tests.daemon import (
    dagster_dev,
    latest_run_tagged,
    launch,
    run_by_id,
    start_sensor,
    wait_for_run,
)
from lifecycle_assets_tests.data.test_pipeline_home import CONFIG, cli
from lifecycle_assets_tests.servers import postgres_server

pytestmark = pytest.mark.slow

# The pipeline tests' small days: the first challenger is decided on the fourth.
FIRST_DECISION = 3


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def test_init_writes_the_postgres_instance_or_refuses_the_url(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "home"
    _isolate(root, monkeypatch)
    port = postgres_url.split(":")[2].split("/")[0]
    # Nothing listens there, a role that does not exist, a database that does not exist, not
    # a PostgreSQL URL: one line naming the URL (password masked), and no home.
    closed = f"postgresql://lifecycle:s3cret@127.0.0.1:{int(port) + 1}/dagster"
    for bad, reason in (
        (closed, "Connection refused"),
        (f"postgresql://nobody:s3cret@127.0.0.1:{port}/dagster", 'role "nobody" does not exist'),
        (f"postgresql://lifecycle@127.0.0.1:{port}/nodb", 'database "nodb" does not exist'),
        ("mysql://lifecycle@127.0.0.1/dagster", "not a PostgreSQL URL"),
    ):
        refused = cli(LifecycleHome(root), "init", "--instance", bad)
        err = refused.stderr
        assert refused.returncode == 2
        assert len(err.strip().splitlines()) == 1, err
        assert reason in err and "s3cret" not in err
        assert bad.replace("s3cret", "***").split("@")[-1] in err
        assert not root.exists(), "a refused instance left a half-made home"

    done = cli(LifecycleHome(root), "init", "--instance", postgres_url)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((root / "dagster" / "dagster.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_url"].startswith("postgresql+psycopg2://")
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    home = LifecycleHome(root)
    instance = instance_for(home)
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    # Init again without --instance keeps it; the embedded default stays SQLite.
    before = (root / "dagster" / "dagster.yaml").read_text()
    assert cli(LifecycleHome(root), "init").returncode == 0
    assert (root / "dagster" / "dagster.yaml").read_text() == before
    other = tmp_path / "embedded"
    _isolate(other, monkeypatch)
    assert cli(LifecycleHome(other), "init").returncode == 0
    assert "storage" not in yaml.safe_load((other / "dagster" / "dagster.yaml").read_text())
    # A server gone later: a command that opens the instance says so in one line.
    (other / "dagster" / "dagster.yaml").write_text(instance_yaml(closed))
    gone = cli(LifecycleHome(other), "materialize", "--select", "ground_truth",
               "--partition", "2026-06-01")  # fmt: skip
    assert gone.returncode == 2 and len(gone.stderr.strip().splitlines()) == 1, gone.stderr
    assert "Connection refused" in gone.stderr and "s3cret" not in gone.stderr


def test_a_day_of_the_loop_through_the_daemon_on_postgres(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lifecycle_assets.home_setup import init_home

    root = tmp_path / "home"
    _isolate(root, monkeypatch)
    (tmp_path / "lifecycle.yaml").write_text(CONFIG)
    home = init_home(root, tmp_path / "lifecycle.yaml", postgres_url)
    with dagster_dev(home) as port:  # it starts while the first days run
        # The days before the first decision, in process (their runs land in PostgreSQL too).
        for index in range(FIRST_DECISION):
            previous = run_day(home, simulate_day(home, index)).day.isoformat()
        day = simulate_day(home, FIRST_DECISION).isoformat()
        instance = instance_for(home)
        registry = Registry(home, home.config().problem.name)
        assert registry.alias("production") is None

        # Ingest through the daemon: queued, then launched in the multiprocess executor.
        ingest = wait_for_run(instance, run_by_id(launch(port, INGEST + LABELS, day)))
        assert ingest.status == dg.DagsterRunStatus.SUCCESS
        # The ground truth of `day` completes the previous day's label window: the late-label
        # sensor, evaluated by the daemon against PostgreSQL, recomputes that day.
        start_sensor(port, "late_labels")
        refresh = wait_for_run(
            instance,
            latest_run_tagged("lifecycle/trigger", "matured"),
        )
        assert refresh.status == dg.DagsterRunStatus.SUCCESS
        assert refresh.tags["dagster/partition"] == previous
        training = wait_for_run(instance, run_by_id(launch(port, TRAINING, day)))
        assert training.status == dg.DagsterRunStatus.SUCCESS

    for run in (ingest, refresh, training):
        events = instance.all_logs(run.run_id)
        kinds = {e.dagster_event.event_type for e in events if e.dagster_event is not None}
        assert dg.DagsterEventType.RUN_ENQUEUED in kinds, "the run did not pass the queue"
        assert any("multiprocess executor" in e.message for e in events), run.run_id
    # The same outcome as the embedded path: the decision recorded, the alias moved, and the
    # lineage (the decision and the promotion as materialisations of the run) in the instance.
    decision = decision_for(home, training.run_id)
    assert decision is not None and decision["decision"] == "FIRST_MODEL"
    assert registry.alias("production") == "v1"
    assert served_ledger(home)[day] == "v1"
    promoted = instance.get_latest_materialization_event(dg.AssetKey("production_model"))
    assert promoted is not None and promoted.run_id == training.run_id
    assert promoted.asset_materialization is not None
    assert promoted.asset_materialization.partition == day
    labeled = instance.get_latest_materialization_event(dg.AssetKey("labeled_examples"))
    assert labeled is not None and labeled.run_id == refresh.run_id
