"""The whole graph, materialised day by day against a real Dagster instance, DVC repo and
remote, and BentoML model store in a temp home; traffic written by the simulator."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import dagster as dg
import pytest
import yaml

from lifecycle_assets.automation.loop import DayOutcome, build_day_bento, instance_for, run_day
from lifecycle_assets.home import LifecycleHome, set_simulated_today
from lifecycle_assets.records import LogWriter
from lifecycle_assets.registry.registry import Registry, served_ledger
from lifecycle_assets.simulator.fraud import FraudSimulator
from lifecycle_assets.versioning.repo import VersionedRepo
from lifecycle_assets_tests.conftest import bentoml_json

pytestmark = pytest.mark.slow


def simulate_day(home: LifecycleHome, index: int) -> dt.date:
    """Day `index` of the simulator's traffic, scored by the production model, in the logs;
    the clock set to that day."""
    config = home.config()
    sim = FraudSimulator(config)
    registry = Registry(home, config.problem.name)
    day = sim.date(index)
    set_simulated_today(home, day)
    production = registry.alias("production")
    writer = LogWriter(home.logs, "simulator")
    sim.write_day(writer, index, registry.load(production) if production else None)
    writer.close()
    return day


def simulate_and_run(home: LifecycleHome, index: int) -> DayOutcome:
    return run_day(home, simulate_day(home, index))


@pytest.fixture(scope="module")
def history(module_home: LifecycleHome) -> list[DayOutcome]:
    # Day 5 is the first with a full matured training day (maturity 3, test 2 days).
    return [simulate_and_run(module_home, i) for i in range(8)]


def test_first_model_then_promotion_over_existing(
    module_home: LifecycleHome, history: list[DayOutcome]
) -> None:
    decisions = [d.decision["decision"] if d.decision else None for d in history]
    assert decisions[:5] == [None] * 5, "no challenger before matured labels exist"
    assert decisions[5] == "FIRST_MODEL"
    assert "PASS" in decisions[6:], decisions
    registry = Registry(module_home, module_home.config().problem.name)
    assert sorted(registry.versions()) == ["v1", "v2", "v3"]
    moves = [e for e in registry.history() if e["alias"] == "production"]
    assert moves[0]["to"] == "v1" and moves[0]["from"] is None
    assert moves[0]["reason"].startswith("FIRST_MODEL")
    # Each later decision compared against what served the day before, on identical rows.
    for outcome in history[6:]:
        assert outcome.decision is not None
        assert (
            outcome.decision["production_version"]
            == served_ledger(module_home)[
                (outcome.day.replace(day=outcome.day.day - 1)).isoformat()
            ]
        )
        assert outcome.decision["n_rows"] == outcome.decision["test_rows"]


def test_versions_are_dvc_native_and_status_clean(
    module_home: LifecycleHome, history: list[DayOutcome]
) -> None:
    repo = VersionedRepo(module_home.repo, env=module_home.tool_env())
    assert repo.status() == {}
    tags = repo.tags()
    assert {"model/v1", "model/v2", "model/v3"} <= set(tags)
    assert "train_split/2026-06-08" in tags and "test_split/2026-06-08" in tags
    log = subprocess.run(
        ["git", "-C", str(module_home.repo), "log", "--format=%s"],
        capture_output=True, text=True, check=True, env=module_home.tool_env() | {"PATH": "/usr/bin:/bin"},
    ).stdout  # fmt: skip
    assert "model v1: trained on train_split/2026-06-06" in log
    # Nothing the loop wrote is left outside a version: the decision record (a metric DVC
    # does not cache) is in git at its tag.
    git = ["git", "-C", str(module_home.repo)]
    assert (
        subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout == ""
    )
    day = history[-1].day.isoformat()
    record = subprocess.run(
        [*git, "show", f"validation/{day}:reports/validation.json"], capture_output=True, text=True
    )
    assert record.returncode == 0 and f'"day": "{day}"' in record.stdout
    assert "production 2026-06-06: v1 (promoted, FIRST_MODEL)" in log
    # The materialisation metadata carries the DVC hash and tag of each version.
    instance = instance_for(module_home)
    event = instance.get_latest_materialization_event(dg.AssetKey("train_split"))
    assert event is not None and event.asset_materialization is not None
    meta = event.asset_materialization.metadata
    assert meta["git_tag"].value == f"train_split/{history[-1].day.isoformat()}"
    assert meta["dvc_hash"].value == repo.out_hash("datasets/train_split")


def test_a_promotion_gets_its_bento_and_its_production_stage(
    module_home: LifecycleHome, history: list[DayOutcome]
) -> None:
    """`build_day_bento` (the demo's step after a day's runs) builds the Bento of the version
    that serves after the day, announcing the build; the same version again reuses it."""
    from lifecycle_assets.registry.registry import recorded_digest

    day = history[-1].day
    version = served_ledger(module_home)[day.isoformat()]
    said: list[str] = []
    run = build_day_bento(module_home, day, echo=said.append)
    assert run is not None and run.assets == ["production_bento"]
    assert len(said) == 2, said
    assert said[0].startswith(f"{day}: building Bento lifecycle:{version} of model card-fraud:")
    assert said[1].startswith(f"{day}: built Bento lifecycle:{version} in ")
    bento = bentoml_json(module_home, "get", f"lifecycle:{version}")
    assert bento["labels"]["model_version"] == version
    assert [b["tag"] for b in bentoml_json(module_home, "list")] == [f"lifecycle:{version}"]
    # The build exported the model it packs, with the digest its registration recorded.
    model = bentoml_json(module_home, "models", "get", f"card-fraud:{version}")
    assert model["metadata"]["artifact_sha256"] == recorded_digest(module_home, version)
    materialised = instance_for(module_home).get_latest_materialization_event(
        dg.AssetKey("production_bento")
    )
    assert materialised is not None and materialised.asset_materialization is not None
    assert materialised.asset_materialization.partition == day.isoformat()
    assert materialised.asset_materialization.metadata["built"].value is True

    # A day served by the same version: its Bento is reused, without a build to announce.
    said.clear()
    again = build_day_bento(module_home, day, echo=said.append)
    assert again is not None and said == []
    materialised = instance_for(module_home).get_latest_materialization_event(
        dg.AssetKey("production_bento")
    )
    assert materialised is not None and materialised.asset_materialization is not None
    assert materialised.asset_materialization.metadata["built"].value is False

    # The registry's stages say which version serves.
    registry = Registry(module_home, module_home.config().problem.name)
    stages = {v: registry.stage(v) for v in registry.versions()}
    assert stages[version] == "production"
    assert list(stages.values()).count("production") == 1
    promoted = {e["to"] for e in registry.history() if e["alias"] == "production"}
    assert {v for v, s in stages.items() if s == "archived"} == promoted - {version}


def test_fail_day_carries_production_over_and_next_day_runs(
    module_home: LifecycleHome, history: list[DayOutcome]
) -> None:
    registry = Registry(module_home, module_home.config().problem.name)
    before = registry.alias("production")
    original = module_home.config_path.read_text()
    broken = yaml.safe_load(original)
    # A challenger that cannot learn: its weights barely move from initialisation.
    broken["training"]["learning_rate"] = 1e-9
    module_home.config_path.write_text(yaml.safe_dump(broken))
    try:
        fail_day = simulate_and_run(module_home, len(history))
    finally:
        module_home.config_path.write_text(original)
    assert fail_day.decision is not None
    assert fail_day.decision["decision"] == "FAIL"
    assert registry.alias("production") == before
    assert served_ledger(module_home)[fail_day.day.isoformat()] == before
    alerts = [json.loads(x) for x in module_home.alerts_path.read_text().splitlines()]
    assert alerts[-1]["kind"] == "gate" and fail_day.day.isoformat() in alerts[-1]["title"]
    # The check on the decision failed visibly; the run itself succeeded.
    instance = instance_for(module_home)
    run_id = fail_day.runs[-1].run_id
    assert instance.get_run_by_id(run_id).is_success  # type: ignore[union-attr]
    checks = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    gate = [
        c.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        for c in checks
        if c.event_log_entry.dagster_event.event_specific_data.check_name  # type: ignore[union-attr]
        == "challenger_not_worse"
    ]
    assert len(gate) == 1 and gate[0].passed is False  # type: ignore[union-attr]
    # The check's result is the failing day's: the UI's checks view says which day failed.
    assert gate[0].partition == fail_day.day.isoformat()  # type: ignore[union-attr]
    history_of_gate = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("validation_report"), "challenger_not_worse"), limit=100
    )
    results = [
        r.event.dagster_event.event_specific_data  # type: ignore[union-attr]
        for r in history_of_gate
        if r.status.value in ("SUCCEEDED", "FAILED")
    ]
    assert len(results) >= 2
    assert all(e.partition for e in results), "a check result without its day"  # type: ignore[union-attr]

    next_day = simulate_and_run(module_home, len(history) + 1)
    assert next_day.decision is not None
    assert next_day.decision["production_version"] == before
