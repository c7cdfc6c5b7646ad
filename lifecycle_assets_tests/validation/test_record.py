"""The gate in the graph, through real Dagster runs on a real home (DVC repo and remote, git
registry, BentoML store): a routine FAIL succeeds as a run, fails its check visibly, raises a
gate alert and carries production over; a PASS promotes. `lifecycle validation show` and
`recheck` then read and reproduce the decisions from the versioned data and models. With
`release.shadow_days` > 0 a PASS moves the `shadow` alias instead, and a later PASS is held
while that shadow runs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
import yaml

from lifecycle_assets.automation.loop import instance_for, materialize
from lifecycle_assets.cli import main
from lifecycle_assets.config import example_config_path
from lifecycle_assets.defs.resources.alerts import read_alerts
from lifecycle_assets.home import LifecycleHome, set_simulated_today
from lifecycle_assets.registry.registry import Registry, record_served, served_ledger
from lifecycle_assets.validation.record import record_path, recorded_decision
from lifecycle_assets.versioning.repo import VersionedRepo
from lifecycle_assets_tests.promotion.helpers import (
    fit_model,
    labelled_frame,
    register,
    stage_day,
)

pytestmark = pytest.mark.slow

BEFORE = dt.date(2026, 6, 9)
FAIL_DAY = dt.date(2026, 6, 10)
PASS_DAY = dt.date(2026, 6, 11)
NOON = dt.datetime(2026, 6, 9, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def decided(module_home: LifecycleHome) -> Iterator[dict[str, Any]]:
    home = module_home
    registry = Registry(home, home.config().problem.name)
    good = fit_model(home, labelled_frame(4000, seed=1), "v1")
    register(home, good, "v1")
    register(home, fit_model(home, labelled_frame(4000, seed=1), "v2", steps=0), "v2")
    register(home, good, "v3")  # the same weights again: an equally good challenger
    registry.move_alias("production", "v1", actor="test", reason="setup", when=NOON)
    record_served(home, BEFORE, "v1")
    runs = {}
    for day, candidate in ((FAIL_DAY, "v2"), (PASS_DAY, "v3")):
        set_simulated_today(home, day)
        test = labelled_frame(3000, seed=day.day, start=day.day * 10_000)
        stage_day(home, day, test, registry.load(candidate))
        runs[day] = materialize(home, ["validation_report", "production_model"], day.isoformat())
    yield {"home": home, "registry": registry, "runs": runs}


def record(home: LifecycleHome, day: dt.date) -> dict[str, Any]:
    return json.loads(record_path(home, day.isoformat()).read_text())


def check_evaluation(home: LifecycleHome, run_id: str) -> dg.AssetCheckEvaluation:
    records = (
        instance_for(home)
        .get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        .records
    )
    (evaluation,) = [r.event_log_entry.dagster_event.event_specific_data for r in records]  # type: ignore[union-attr]
    return evaluation  # type: ignore[return-value]


def test_a_routine_fail_carries_production_over_and_alerts_the_gate(decided) -> None:
    home = decided["home"]
    rec = record(home, FAIL_DAY)
    assert rec["decision"] == "FAIL"
    assert (rec["challenger_version"], rec["production_version"]) == ("v2", "v1")
    assert rec["delta_upper_bound"] < -rec["margin"]
    evaluation = check_evaluation(home, decided["runs"][FAIL_DAY].run_id)
    assert evaluation.check_name == "challenger_not_worse" and evaluation.passed is False
    assert served_ledger(home)[FAIL_DAY.isoformat()] == "v1"
    assert decided["registry"].alias("production") in ("v1", "v3")
    alerts = read_alerts(home.alerts_path)
    assert [a["kind"] for a in alerts] == ["gate"]  # one gate alert, no broken-run alert
    assert alerts[0]["challenger_version"] == "v2" and alerts[0]["day"] == FAIL_DAY.isoformat()


def test_a_pass_promotes_after_verification(decided) -> None:
    home = decided["home"]
    rec = record(home, PASS_DAY)
    assert rec["decision"] == "PASS", rec["reason"]
    assert rec["production_version"] == "v1"  # FAIL day carried v1 over
    assert rec["delta"] == 0.0 and rec["delta_lower_bound"] == 0.0
    assert check_evaluation(home, decided["runs"][PASS_DAY].run_id).passed is True
    assert decided["registry"].alias("production") == "v3"
    assert served_ledger(home)[PASS_DAY.isoformat()] == "v3"
    moves = [e for e in decided["registry"].history() if e["alias"] == "production"]
    assert (moves[-1]["from"], moves[-1]["to"]) == ("v1", "v3")
    assert moves[-1]["reason"] == f"PASS on {PASS_DAY}"


def test_the_record_pins_models_data_code_and_guards(decided) -> None:
    rec = record(decided["home"], FAIL_DAY)
    versions = decided["registry"].versions()
    assert rec["challenger_weights_sha256"] == versions["v2"]["weights_sha256"]
    assert rec["production_weights_sha256"] == versions["v1"]["weights_sha256"]
    assert rec["test_split_tag"] == f"test_split/{FAIL_DAY}"
    assert rec["test_split_dvc_hash"].endswith(".dir")
    assert rec["n_rows"] == rec["test_rows"] == 3000
    assert len(rec["test_rows_sha256"]) == 64
    assert {"code_commit", "code_dirty", "lockfile_sha256"} <= set(rec)
    # The bootstrap seed is fixed (`validation.bootstrap_seed`, 0); `recheck` reuses it.
    assert rec["validation"]["metric"] == "roc_auc" and rec["seed"] == 0
    assert set(rec["guards"]) == {"calibration", "slices"}
    assert (
        rec["challenger_interval"][0] <= rec["challenger_metric"] <= rec["challenger_interval"][1]
    )
    assert rec["decided_at"].startswith(FAIL_DAY.isoformat())


def test_a_rerun_of_a_decided_day_finds_its_recorded_decision(decided) -> None:
    """What the day's tag recorded, for the same challenger against the same incumbent on
    the same test split: a rerun publishes it again rather than deciding under a new run id.
    Another challenger is a new decision."""
    home, registry = decided["home"], decided["registry"]
    repo = VersionedRepo.of(home)
    found = recorded_decision(home, repo, registry, PASS_DAY, registry.load("v3"))
    assert found is not None and found["run_id"] == decided["runs"][PASS_DAY].run_id
    assert recorded_decision(home, repo, registry, PASS_DAY, registry.load("v2")) is None
    assert recorded_decision(home, repo, registry, PASS_DAY + dt.timedelta(days=1),
                             registry.load("v3")) is None  # fmt: skip


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_show_prints_the_record(decided, capsys) -> None:
    home = decided["home"]
    code, out = run_cli(capsys, "validation", "show", str(FAIL_DAY), "--workdir", str(home.root))
    assert code == 0
    assert f"decision {FAIL_DAY}: FAIL" in out and "guard       slices" in out
    code, out = run_cli(
        capsys, "validation", "show", str(FAIL_DAY), "--workdir", str(home.root), "--json"
    )
    assert json.loads(out) == record(home, FAIL_DAY)


@pytest.mark.parametrize("day", [FAIL_DAY, PASS_DAY])
def test_recheck_reproduces_the_decision(decided, capsys, day: dt.date) -> None:
    home = decided["home"]
    code, out = run_cli(
        capsys, "validation", "recheck", str(day), "--workdir", str(home.root), "--json"
    )
    result = json.loads(out)
    assert code == 0, result["differences"]
    assert result["matches"] is True
    assert result["recomputed_decision"] == record(home, day)["decision"]
    assert result["recomputed"]["delta_lower_bound"] == pytest.approx(
        record(home, day)["delta_lower_bound"], abs=1e-12
    )


def test_recheck_finds_a_tampered_record(decided, capsys) -> None:
    home = decided["home"]
    path = record_path(home, FAIL_DAY.isoformat())
    original = path.read_text()
    tampered = json.loads(original)
    tampered.update(decision="PASS", delta_lower_bound=0.5)
    path.write_text(json.dumps(tampered))
    try:
        code, out = run_cli(
            capsys, "validation", "recheck", str(FAIL_DAY), "--workdir", str(home.root)
        )
    finally:
        path.write_text(original)
    assert code == 1
    assert "does NOT match" in out and "decision: stored 'PASS', recomputed 'FAIL'" in out


def test_show_displays_a_forced_release(decided, capsys) -> None:
    home = decided["home"]
    day = "2026-06-12"
    forced = {
        "decision": "FORCED",
        "reason": "hotfix for a broken feature",
        "actor": "alice",
        "challenger_version": "v2",
        "production_version": "v3",
        "day": day,
        "decided_at": "2026-06-12T09:00:00+00:00",
    }
    record_path(home, day).write_text(json.dumps(forced))
    try:
        code, out = run_cli(capsys, "validation", "show", day, "--workdir", str(home.root))
        assert code == 0
        assert f"decision {day}: FORCED" in out and "hotfix for a broken feature" in out
        assert "by alice" in out
        code, out = run_cli(capsys, "validation", "recheck", day, "--workdir", str(home.root))
        assert code == 0 and "person's decision" in out and "no gate result" in out
        # a release forced over a gate FAIL keeps that record, and recheck reproduces it
        record_path(home, day).write_text(
            json.dumps({**forced, "superseded": record(home, FAIL_DAY)})
        )
        code, out = run_cli(capsys, "validation", "show", day, "--workdir", str(home.root))
        assert "overrides   gate decision FAIL" in out
        code, out = run_cli(capsys, "validation", "recheck", day, "--workdir", str(home.root))
        assert code == 0 and out.strip().endswith("was rechecked — matches")
    finally:
        record_path(home, day).unlink()


def test_unknown_day_is_a_one_line_error(decided, capsys) -> None:
    home = decided["home"]
    code = main(["validation", "show", "2026-07-01", "--workdir", str(home.root)])
    err = capsys.readouterr().err
    assert code == 2
    assert "no decision recorded for 2026-07-01" in err and len(err.strip().splitlines()) == 1


def test_a_stored_file_that_is_not_a_decision_is_a_one_line_error(decided, capsys) -> None:
    home = decided["home"]
    path = record_path(home, "2026-07-02")
    path.write_text('{"decision": "MAYBE", "day": "2026-07-02"}')
    try:
        code = main(["validation", "show", "2026-07-02", "--workdir", str(home.root)])
    finally:
        path.unlink()
    err = capsys.readouterr().err
    assert code == 2
    assert "the decision stored for 2026-07-02 cannot be read: decision record: decision" in err
    assert len(err.strip().splitlines()) == 1


# --- the release step with `release.shadow_days` > 0 ---------------------------------------

SHADOWED, HELD = FAIL_DAY, PASS_DAY


def test_a_pass_serves_in_shadow_and_a_later_pass_is_held(make_home) -> None:
    config = yaml.safe_load(example_config_path().read_text())
    config["release"] = {"shadow_days": 2}
    home = make_home(yaml.safe_dump(config))  # a home of its own, not the module's
    registry = Registry(home, home.config().problem.name)
    good = fit_model(home, labelled_frame(4000, seed=1), "v1")
    for version in ("v1", "v2", "v3"):  # the same weights: equally good challengers
        register(home, good, version)
    registry.move_alias("production", "v1", actor="test", reason="setup", when=NOON)
    record_served(home, BEFORE, "v1")
    for day, candidate in ((SHADOWED, "v2"), (HELD, "v3")):
        set_simulated_today(home, day)
        test = labelled_frame(3000, seed=day.day, start=day.day * 10_000)
        stage_day(home, day, test, registry.load(candidate))
        materialize(home, ["validation_report", "production_model"], day.isoformat())

    first = record(home, SHADOWED)
    assert (first["decision"], first["stage"], first["shadow_days"]) == ("PASS", "shadow", 2)
    assert "in shadow beside v1" in first["stage_reason"]
    second = record(home, HELD)
    assert (second["decision"], second["stage"]) == ("PASS", "held")
    assert second["stage_reason"] == (
        "v2 is in shadow and v3 is not shown better than it; v3 is not promoted"
    )
    # the same weights: Δ is 0 against the shadow, so it is not replaced
    assert second["versus_shadow"]["shadow_version"] == "v2"
    assert (second["versus_shadow"]["delta"], second["versus_shadow"]["better"]) == (0.0, False)
    # production carried over on both days; the shadow alias moved once, to v2
    assert registry.alias("production") == "v1" and registry.alias("shadow") == "v2"
    ledger = served_ledger(home)
    assert (ledger[SHADOWED.isoformat()], ledger[HELD.isoformat()]) == ("v1", "v1")
    moves = [(e["alias"], e["from"], e["to"]) for e in registry.history()]
    assert moves[-1] == ("shadow", None, "v2")
    assert [m for m in moves if m[0] == "production"] == [("production", None, "v1")]
    assert registry.history()[-1]["reason"] == f"PASS on {SHADOWED}: shadow for 2 day(s)"
    messages = [c["message"] for c in VersionedRepo.of(home).log()]
    assert any("registry: shadow (none) → v2" in m for m in messages), messages
    assert read_alerts(home.alerts_path) == []  # a pass is no alert, in shadow or held
