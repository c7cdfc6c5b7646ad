"""The shadow gate through real Dagster runs on a real home (DVC repo and remote, git registry,
BentoML store): a challenger that passes the offline gate serves in shadow; once its window's
labels mature, the paired gate on the logged live rows promotes it (production moves, shadow
cleared, one commit), and a later one that is worse on live rows is rejected in shadow
(shadow cleared, a gate alert, production unchanged). The offline record shows the shadow
result beside its own, and `recheck` still reproduces the offline decision."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml

from lifecycle_assets.automation.loop import instance_for, materialize, run_day
from lifecycle_assets.config import example_config_path
from lifecycle_assets.defs.resources.alerts import read_alerts
from lifecycle_assets.home import LifecycleHome, set_simulated_today
from lifecycle_assets.registry.queries import shadow_in_flight
from lifecycle_assets.registry.registry import Registry, record_served, served_ledger
from lifecycle_assets.storage import AssetStore
from lifecycle_assets.validation.record import DecisionError, load_record, recheck
from lifecycle_assets.validation.shadow import decide_shadow
from lifecycle_assets.versioning.repo import VersionedRepo
from lifecycle_assets_tests.promotion.helpers import (
    fit_model,
    labelled_frame,
    register,
    stage_day,
)

pytestmark = pytest.mark.slow

SHADOW_DAYS, MATURITY = 2, 3
NOON = dt.datetime(2026, 6, 9, 12, tzinfo=dt.UTC)
FIRST = dt.date(2026, 6, 10)  # v2 passes offline → shadow on 06-11, 06-12
FIRST_DECIDES = FIRST + dt.timedelta(days=SHADOW_DAYS + MATURITY)  # 06-15
SECOND = dt.date(2026, 6, 16)  # v3 passes offline → shadow on 06-17, 06-18
SECOND_DECIDES = SECOND + dt.timedelta(days=SHADOW_DAYS + MATURITY)  # 06-21


def shadow_config(**release: Any) -> str:
    config = yaml.safe_load(example_config_path().read_text())
    config["release"] = {"shadow_days": SHADOW_DAYS, **release}
    config["labels"]["maturity_days"] = MATURITY
    return yaml.safe_dump(config)


def shadow_home(folder: Path, mp: pytest.MonkeyPatch) -> LifecycleHome:
    """A home under `folder` whose config serves passing challengers in shadow."""
    from lifecycle_assets.home_setup import init_home
    from lifecycle_assets_tests.conftest import _isolate

    root = folder / "home"
    _isolate(root, mp)
    config_file = folder / "lifecycle.yaml"
    config_file.write_text(shadow_config())
    return init_home(root, config_file)


def log_live_day(
    home: LifecycleHome,
    day: dt.date,
    production: str,
    shadow: str,
    *,
    rows: int = 1500,
    shadow_noise: float = 0.0,
) -> None:
    """Day D's labelled examples as the loop stores them once D matured: the service's logged
    production score and the shadow's score beside it (`shadow_noise`: the shadow's score
    degraded, a model worse on live traffic than it was offline)."""
    registry = Registry(home, home.config().problem.name)
    frame = labelled_frame(rows, seed=day.toordinal(), start=day.toordinal() * 100_000)
    shadow_score = registry.load(shadow).score(frame)
    if shadow_noise:
        rng = np.random.default_rng(day.toordinal())
        shadow_score = np.clip(shadow_score + rng.normal(0, shadow_noise, rows), 0, 1)
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    examples = frame.with_columns(
        pl.Series("event_time", [start + dt.timedelta(seconds=10 * i) for i in range(rows)]),
        pl.lit(production).alias("model_version"),
        pl.Series("score", registry.load(production).score(frame)),
        pl.lit(shadow).alias("shadow_version"),
        pl.Series("shadow_score", shadow_score),
        pl.lit("labeled").alias("label_status"),
        pl.lit(True).alias("label_matured"),
    )
    AssetStore.of(home).write("labeled_examples", day.isoformat(), examples)


def offline_pass(home: LifecycleHome, day: dt.date, candidate: str) -> None:
    """Day D's offline gate and release step, the challenger as good as production."""
    registry = Registry(home, home.config().problem.name)
    set_simulated_today(home, day)
    test = labelled_frame(3000, seed=day.day, start=day.day * 10_000)
    stage_day(home, day, test, registry.load(candidate))
    materialize(home, ["validation_report", "production_model"], day.isoformat())


def days(first: dt.date, count: int) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range(count)]


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    mp = pytest.MonkeyPatch()
    home = shadow_home(tmp_path_factory.mktemp("shadow"), mp)
    registry = Registry(home, home.config().problem.name)
    good = fit_model(home, labelled_frame(4000, seed=1), "v1")
    for version in ("v1", "v2", "v3"):  # the same weights: equally good offline
        register(home, good, version)
    registry.move_alias("production", "v1", actor="test", reason="setup", when=NOON)
    record_served(home, FIRST - dt.timedelta(days=1), "v1")
    out: dict[str, Any] = {"home": home, "registry": registry, "days": {}}

    offline_pass(home, FIRST, "v2")
    for day in days(FIRST + dt.timedelta(days=1), SHADOW_DAYS):
        log_live_day(home, day, "v1", "v2")
    # The daily runner, as the demo and the replay run a day (no training on these days):
    # its shadow stage runs while a shadow is in flight.
    for day in (FIRST_DECIDES - dt.timedelta(days=1), FIRST_DECIDES):
        set_simulated_today(home, day)
        out["days"][day] = run_day(home, day, should_train=lambda _: False)

    offline_pass(home, SECOND, "v3")
    for day in days(SECOND + dt.timedelta(days=1), SHADOW_DAYS):
        log_live_day(home, day, "v2", "v3", shadow_noise=0.4)
    set_simulated_today(home, SECOND_DECIDES)
    materialize(home, ["shadow_report"], SECOND_DECIDES.isoformat())
    try:
        yield out
    finally:
        mp.undo()


def shadow_record(home: LifecycleHome, day: dt.date) -> dict[str, Any] | None:
    return AssetStore.of(home).read_record("shadow_report", day.isoformat())


def test_nothing_is_decided_before_the_window_matures(gated) -> None:
    home = gated["home"]
    waiting, decided = (
        gated["days"][FIRST_DECIDES - dt.timedelta(days=1)],
        gated["days"][FIRST_DECIDES],
    )
    assert "shadow" in waiting.stage_seconds and waiting.shadow is None
    assert decided.shadow is not None and decided.shadow["decision"] == "PASS"
    assert shadow_record(home, FIRST_DECIDES - dt.timedelta(days=1)) is None
    assert load_record(home, FIRST.isoformat())["stage"] == "shadow"


def test_a_shadow_pass_promotes_and_clears_the_shadow_in_one_move(gated) -> None:
    home, registry = gated["home"], gated["registry"]
    record = shadow_record(home, FIRST_DECIDES)
    assert record is not None
    assert (record["decision"], record["action"], record["abandoned"]) == (
        "PASS",
        "promote",
        False,
    ), record["reason"]
    assert (record["challenger_version"], record["production_version"]) == ("v2", "v1")
    assert record["offline_day"] == FIRST.isoformat() and record["offline"]["decision"] == "PASS"
    assert record["window"] == [d.isoformat() for d in days(FIRST + dt.timedelta(days=1), 2)]
    assert record["n_rows"] == record["test_rows"] == 2 * 1500
    assert record["delta"] == 0.0 and record["seed"] == 0  # the same weights, the same seed
    # the promotion: production → v2 and shadow cleared, both stamped by the one write
    moves = [
        e for e in registry.history() if e["reason"] == f"shadow gate on {FIRST_DECIDES}: PASS"
    ]
    assert [(e["alias"], e["from"], e["to"]) for e in moves] == [
        ("production", "v1", "v2"),
        ("shadow", "v2", None),
    ]
    assert served_ledger(home)[FIRST_DECIDES.isoformat()] == "v2"
    messages = [c["message"] for c in VersionedRepo.of(home).log()]
    promoted = next(m for m in messages if m.startswith(f"shadow {FIRST_DECIDES}"))
    assert "registry: production v1 → v2" in promoted and "registry: shadow v2 → (none)" in promoted
    # the day's production model is the promoted shadow, in the run's lineage and in git
    (event,) = (
        instance_for(home)
        .fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("production_model"),
                asset_partitions=[FIRST_DECIDES.isoformat()],
            ),
            limit=1,
        )
        .records
    )
    assert event.run_id == gated["days"][FIRST_DECIDES].runs[-1].run_id
    assert event.asset_materialization is not None
    assert event.asset_materialization.metadata["model_version"].value == "v2"
    assert AssetStore.of(home).read("production_model", FIRST_DECIDES.isoformat()).version == "v2"
    # stored as a reference to the registered version, not a copy of its files
    stored = AssetStore.of(home).read("production_model", FIRST_DECIDES.isoformat())
    assert stored == registry.reference("v2")
    assert VersionedRepo.of(home).status() == {}
    # the offline record shows the shadow result beside its own
    offline = load_record(home, FIRST.isoformat())
    assert offline["shadow_gate"]["decision"] == "PASS"
    assert offline["shadow_gate"]["day"] == FIRST_DECIDES.isoformat()
    assert recheck(home, FIRST.isoformat())["matches"] is True


def test_a_shadow_worse_on_live_rows_is_rejected_and_alerted(gated) -> None:
    home, registry = gated["home"], gated["registry"]
    offline = load_record(home, SECOND.isoformat())
    assert (offline["decision"], offline["stage"], offline["production_version"]) == (
        "PASS",
        "shadow",
        "v2",
    )
    record = shadow_record(home, SECOND_DECIDES)
    assert record is not None
    assert (record["decision"], record["action"]) == ("FAIL", "clear"), record["reason"]
    assert record["delta_lower_bound"] < -record["margin"]
    assert registry.alias("production") == "v2" and registry.alias("shadow") is None
    last = registry.history()[-1]
    assert (last["alias"], last["from"], last["to"]) == ("shadow", "v3", None)
    alerts = [a for a in read_alerts(home.alerts_path) if a.get("stage") == "shadow"]
    assert len(alerts) == 1 and alerts[0]["challenger_version"] == "v3"
    assert alerts[0]["title"] == f"shadow v3 rejected on {SECOND_DECIDES}"
    assert load_record(home, SECOND.isoformat())["shadow_gate"]["decision"] == "FAIL"
    # and nothing in shadow any more: the gate has nothing left to decide
    assert shadow_in_flight(home, registry) is None


def test_a_shadow_decision_is_rechecked_from_its_windows_logged_rows(gated, capsys) -> None:
    """Both shadow decisions reproduce from the stored rows; a label changed since shows as
    a difference, through the CLI too (exit 1)."""
    from lifecycle_assets.cli import main
    from lifecycle_assets.validation.shadow import recheck_shadow

    home = gated["home"]
    for day, decision in ((FIRST_DECIDES, "PASS"), (SECOND_DECIDES, "FAIL")):
        result = recheck_shadow(home, day.isoformat())
        assert result["matches"] is True, result["differences"]
        assert result["recomputed_decision"] == decision
    assert main(["validation", "recheck", FIRST_DECIDES.isoformat(), "--shadow",
                 "--workdir", str(home.root)]) == 0  # fmt: skip
    assert "PASS reproduced from the window's logged scores" in capsys.readouterr().out
    store = AssetStore.of(home)
    path = store.frame_path("labeled_examples", (FIRST + dt.timedelta(days=1)).isoformat())
    original = path.read_bytes()
    try:
        frame = pl.read_parquet(path)
        label = home.config().problem.label
        store.write(
            "labeled_examples", path.stem, frame.with_columns((1 - pl.col(label)).alias(label))
        )
        changed = recheck_shadow(home, FIRST_DECIDES.isoformat())
        assert changed["matches"] is False
        assert any(d.startswith("test_rows_sha256") for d in changed["differences"])
        assert main(["validation", "recheck", FIRST_DECIDES.isoformat(), "--shadow",
                     "--workdir", str(home.root)]) == 1  # fmt: skip
        assert "does NOT match" in capsys.readouterr().out
    finally:
        path.write_bytes(original)
    with pytest.raises(DecisionError, match="no shadow decision is stored for 2026-06-12"):
        recheck_shadow(home, "2026-06-12")


def test_a_challenger_rejected_in_shadow_is_released_only_by_force(gated) -> None:
    """Its offline PASS no longer speaks for it: `models release` and `models approve`
    refuse it (naming the shadow gate's FAIL) unless forced, and nothing moves."""
    from lifecycle_assets.registry.release import ReleaseError, approve, release

    home, registry = gated["home"], gated["registry"]
    history = registry.history()
    with pytest.raises(
        ReleaseError, match=rf"v3 has FAIL in shadow \(the shadow gate on {SECOND_DECIDES}\)"
    ):
        release(home, "v3", actor="test", report=lambda *_: None)
    with pytest.raises(ReleaseError, match="v3 has FAIL in shadow"):
        approve(home, "v3", actor="test")
    assert registry.alias("production") == "v2" and registry.history() == history
    assert registry.approval("v3") is None


def test_too_few_shadow_rows_abandon_the_shadow(make_home) -> None:
    home = make_home(shadow_config())
    registry = Registry(home, home.config().problem.name)
    good = fit_model(home, labelled_frame(2000, seed=1), "v1", steps=50)
    register(home, good, "v1")
    register(home, good, "v2")
    registry.move_alias("production", "v1", actor="test", reason="setup", when=NOON)
    registry.move_alias("shadow", "v2", actor="test", reason="by hand", when=NOON)
    for day in days(NOON.date() + dt.timedelta(days=1), SHADOW_DAYS):
        log_live_day(home, day, "v1", "v2", rows=100)  # 200 rows < windows.min_test_rows
    decides = NOON.date() + dt.timedelta(days=SHADOW_DAYS + MATURITY)
    config = home.config()
    early = decide_shadow(home, decides - dt.timedelta(days=1), registry, config, actor="t")
    assert early is None
    record = decide_shadow(home, decides, registry, config, actor="test")
    assert record is not None and record["abandoned"] is True
    assert (record["decision"], record["action"]) == ("FAIL", "clear")
    assert "abandoned: 200 labelled rows" in record["reason"]


def test_manual_mode_asks_for_approval_after_the_shadow_pass(make_home) -> None:
    """With `registry.approval: manual` a shadow that passes is cleared and waits for a
    person; one released by hand while in shadow leaves the shadow in the same move."""
    from lifecycle_assets.registry.release import release
    from lifecycle_assets.validation.shadow import run_shadow_gate
    from lifecycle_assets_tests.promotion.kill_harness import stage_decided_day

    config = yaml.safe_load(shadow_config())
    config["registry"] = {"approval": "manual"}
    home = make_home(yaml.safe_dump(config))
    registry = Registry(home, home.config().problem.name)
    good = fit_model(home, labelled_frame(2000, seed=1), "v1", steps=50)
    for version in ("v1", "v2", "v3"):
        register(home, good, version)
    stage_decided_day(home, NOON.date(), labelled_frame(500, seed=4), good)
    registry.move_alias("production", "v1", actor="test", reason="setup", when=NOON)
    registry.move_alias("shadow", "v2", actor="test", reason="by hand", when=NOON)
    for day in days(NOON.date() + dt.timedelta(days=1), SHADOW_DAYS):
        log_live_day(home, day, "v1", "v2", rows=300)
    decides = NOON.date() + dt.timedelta(days=SHADOW_DAYS + MATURITY)
    set_simulated_today(home, decides)

    outcome = run_shadow_gate(home, decides, actor="test")
    assert outcome is not None
    assert (outcome.record["decision"], outcome.record["action"]) == ("PASS", "request_approval")
    assert registry.alias("production") == "v1" and registry.alias("shadow") is None
    approval = registry.approval("v2")
    assert approval is not None and approval["status"] == "awaiting_approval"
    assert approval["decision_day"] == decides.isoformat()
    messages = [c["message"] for c in VersionedRepo.of(home).log()]
    assert messages[0].startswith(f"shadow {decides}: v2 PASS, request_approval"), messages[0]

    registry.move_alias("shadow", "v3", actor="test", reason="by hand", when=NOON)
    release(home, "v3", actor="test", reason="by hand", force=True, report=lambda *_: None)
    assert registry.alias("production") == "v3" and registry.alias("shadow") is None
    last = registry.history()[-2:]
    assert [(e["alias"], e["from"], e["to"]) for e in last] == [
        ("production", "v1", "v3"),
        ("shadow", "v3", None),
    ]


def test_a_shadow_that_gains_nothing_is_replaced_by_a_better_challenger(make_home) -> None:
    """Offline PASSes while a version is in shadow (real Dagster runs of `validation_report`
    and `production_model`): v3, shown better than v2, a shadow no better than production
    on the first of its two window days, replaces it (a fresh window, the move in the
    history); v4, better still, is held while v3 is shown better than production (it
    finishes its window); v5, no better than the shadow, is held."""
    home = make_home(shadow_config())
    registry = Registry(home, home.config().problem.name)
    train = labelled_frame(4000, seed=1)
    weak = fit_model(home, train, "v1", steps=1)
    medium = fit_model(home, train, "v3", steps=8)
    good = fit_model(home, train, "v4")
    versions = (("v1", weak), ("v2", weak), ("v3", medium), ("v4", good), ("v5", weak))
    for version, artifact in versions:
        register(home, artifact, version)
    registry.move_alias("production", "v1", actor="test", reason="setup", when=NOON)
    record_served(home, FIRST - dt.timedelta(days=1), "v1")

    offline_pass(home, FIRST, "v2")  # as good as production: a PASS, into shadow
    assert registry.alias("shadow") == "v2"
    assert load_record(home, FIRST.isoformat()).get("versus_shadow") is None

    second = FIRST + dt.timedelta(days=1)
    offline_pass(home, second, "v3")
    record = load_record(home, second.isoformat())
    assert (record["decision"], record["stage"]) == ("PASS", "shadow"), record["versus_shadow"]
    versus = record["versus_shadow"]
    assert versus["shadow_version"] == "v2"
    assert (versus["better"], versus["shadow_gains"]) == (True, False)
    assert versus["delta_lower_bound"] > 0 and versus["shadow_delta"] == 0.0
    assert "it replaces v2 in shadow" in record["stage_reason"]
    assert registry.alias("shadow") == "v3" and registry.alias("production") == "v1"
    moved = registry.history()[-1]
    assert (moved["alias"], moved["from"], moved["to"]) == ("shadow", "v2", "v3")
    assert moved["reason"].endswith("replacing v2")
    flight = shadow_in_flight(home, registry)
    assert flight is not None and (flight.version, flight.offline_day) == ("v3", second)

    for day, candidate, gains in ((second, "v4", True), (second, "v5", True)):
        day += dt.timedelta(days=1 if candidate == "v4" else 2)
        offline_pass(home, day, candidate)
        record = load_record(home, day.isoformat())
        assert (record["decision"], record["stage"]) == ("PASS", "held"), record["versus_shadow"]
        versus = record["versus_shadow"]
        assert versus["shadow_gains"] is gains and versus["shadow_delta_lower_bound"] > 0
        assert versus["better"] is (candidate == "v4")
        reason = "finishes its window" if candidate == "v4" else "not shown better than it"
        assert reason in record["stage_reason"]
        assert registry.alias("shadow") == "v3"


def test_a_shadow_that_has_served_its_window_is_not_replaced(make_home) -> None:
    """On the shadow's last window day its verdict waits only for labels: a challenger shown
    better than it, though the shadow gains nothing over production, is held."""
    home = make_home(shadow_config())
    registry = Registry(home, home.config().problem.name)
    train = labelled_frame(4000, seed=1)
    weak = fit_model(home, train, "v1", steps=1)
    good = fit_model(home, train, "v3")
    for version, artifact in (("v1", weak), ("v2", weak), ("v3", good)):
        register(home, artifact, version)
    registry.move_alias("production", "v1", actor="test", reason="setup", when=NOON)
    record_served(home, FIRST - dt.timedelta(days=1), "v1")
    offline_pass(home, FIRST, "v2")
    last = FIRST + dt.timedelta(days=SHADOW_DAYS)  # v2 serves in shadow on FIRST+1, FIRST+2
    offline_pass(home, last, "v3")
    record = load_record(home, last.isoformat())
    assert (record["decision"], record["stage"]) == ("PASS", "held")
    versus = record["versus_shadow"]
    assert (versus["better"], versus["shadow_gains"], versus["window_served"]) == (
        True,
        False,
        True,
    )
    assert "v2 is in shadow and has served its window" in record["stage_reason"]
    assert registry.alias("shadow") == "v2"
