"""The staleness trigger and the broken-run alert, evaluated with Dagster's test contexts
against a real instance in a temp home."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from lifecycle_assets.automation.loop import RunFailed, instance_for, materialize
from lifecycle_assets.config import MonitoringConfig, parse_config
from lifecycle_assets.definitions import defs
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.monitoring.metrics import quality_drop
from lifecycle_assets.monitoring.sensors import (
    EpisodeState,
    broken_run_alert,
    staleness_reasons,
    step_episode,
    trained_through,
)
from lifecycle_assets.resources.alerts import AlertSinkResource
from lifecycle_assets.resources.home import LifecycleHomeResource

CFG = MonitoringConfig()


@pytest.mark.parametrize(
    ("psi", "live", "validated", "low", "high", "expect"),
    [
        (0.05, 0.90, 0.91, -0.01, 0.01, []),
        (0.40, 0.90, 0.91, -0.01, 0.01, ["feature drift"]),
        (0.05, 0.60, 0.91, -0.01, 0.01, ["live quality"]),
        (0.05, 0.90, 0.91, 0.03, 0.05, ["prediction bias"]),
        (0.05, 0.90, 0.91, -0.05, -0.03, ["prediction bias"]),
        (None, None, 0.91, None, None, []),
        (float("nan"), 0.5, None, None, None, []),
    ],
)
def test_staleness_reasons(psi, live, validated, low, high, expect) -> None:
    reasons = staleness_reasons(psi, live, validated, low, high, CFG, metric="roc_auc")
    assert [r.split(":")[0].split(" ")[0:2] for r in reasons] == [e.split(" ")[0:2] for e in expect]


@pytest.mark.parametrize("name", ["log_loss", "rmse", "mae"])
def test_a_quality_drop_on_a_lower_is_better_metric_is_a_rise(name: str) -> None:
    """The sensor used to call this without the orientation, so for log_loss, rmse and mae
    a worse live value read as an improvement and an improvement as a drop."""
    validated = 0.30
    assert quality_drop(0.45, validated, name) == pytest.approx(0.15)
    assert quality_drop(0.20, validated, name) == pytest.approx(-0.10)
    worse = staleness_reasons(None, 0.45, validated, None, None, CFG, metric=name)
    better = staleness_reasons(None, 0.20, validated, None, None, CFG, metric=name)
    assert len(worse) == 1 and worse[0].startswith(f"live quality: {name} 0.450 is 0.150 worse")
    assert better == []
    assert quality_drop(0.80, 0.90, "roc_auc") == pytest.approx(0.10)
    assert quality_drop(None, validated, name) is None
    assert quality_drop(float("nan"), validated, name) is None


def test_staleness_reasons_needs_the_metric() -> None:
    with pytest.raises(TypeError):
        staleness_reasons(0.1, 0.5, 0.4, None, None, CFG)  # type: ignore[call-arg]


def days(start: int, stop: int) -> list[str]:
    return [f"2026-06-{d:02d}" for d in range(start, stop)]


def test_an_episode_fires_when_it_opens_and_after_each_cooldown() -> None:
    """No model information (the registry does not say what the serving model saw): the
    episode is never closed by a retrain, so it fires again whenever the cooldown has
    passed while the signal persists."""
    state = EpisodeState()
    fired = []
    # Days 1-3 stale (one episode), 4 healthy, 5-6 stale again (opens within the cooldown),
    # 7 healthy, 9 stale within the cooldown of day 6.
    plan = {1: True, 2: True, 3: True, 4: False, 5: True, 6: True, 7: False, 9: True}
    for day, stale in plan.items():
        fire, state = step_episode(state, f"2026-06-{day:02d}", ["x"] if stale else [], 5)
        if fire:
            fired.append(day)
    # Day 6: the second episode outlasted the cooldown (before, an episode that opened
    # within the cooldown never fired; this expectation was [1, 9]).
    assert fired == [1, 6]


def test_a_persistent_drift_retriggers_until_a_post_onset_model_serves() -> None:
    """The replay's finding: PSI ≈ 1.8 from day 10 on; the first retrain learns from a window
    that predates the drift (labels mature late), so the trigger fires again after the
    cooldown; once a model trained on data from the onset on serves, the episode closes."""
    # cooldown 3; the model serving each day and the last day of data it was trained on
    serving = {d: "2026-05-27" for d in days(10, 11)}  # v1
    serving |= {d: "2026-06-05" for d in days(11, 17)}  # v2, retrained day 10, pre-drift
    serving |= {d: "2026-06-11" for d in days(17, 26)}  # v4 (v3 of day 13 was rejected)
    state, fired, onsets = EpisodeState(), [], set()
    for day in days(10, 26):
        fire, state = step_episode(state, day, ["feature drift: max PSI 1.8"], 3, serving[day])
        if fire:
            fired.append(day)
        onsets.add(state.onset)
    assert fired == ["2026-06-10", "2026-06-13", "2026-06-16"]
    assert onsets == {"2026-06-10"} and state.closed is True
    # The signal clears and comes back: a new episode, which fires (the cooldown has passed).
    fire, state = step_episode(state, "2026-06-26", [], 3, "2026-06-11")
    assert not fire and not state.in_episode
    fire, state = step_episode(state, "2026-06-27", ["x"], 3, "2026-06-11")
    assert fire and state.onset == "2026-06-27" and not state.closed


def test_an_old_cursor_still_parses() -> None:
    old = json.dumps({"last_day": "2026-06-03", "in_episode": True, "last_fired": "2026-06-01"})
    state = EpisodeState.parse(old)
    assert (state.onset, state.closed) == (None, False)
    # the open episode keeps going; its onset is taken as the first day seen with it
    fire, state = step_episode(state, "2026-06-04", ["x"], 3, "2026-05-20")
    assert fire and state.onset == "2026-06-04"
    assert EpisodeState.parse(state.dump()) == state


def test_trained_through_is_the_end_of_the_train_window() -> None:
    config = parse_config({})  # maturity 3 days, test window 2 days
    assert trained_through({"day": "2026-06-16"}, config) == "2026-06-11"
    assert trained_through({"train_split_tag": "train_split/2026-06-16"}, config) == "2026-06-11"
    assert trained_through({}, config) is None
    assert trained_through(None, config) is None


def report(instance: dg.DagsterInstance, key: str, day: str, **meta) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=key, partition=day, metadata=meta)
    )


def test_sensor_requests_one_retrain_per_episode(make_home) -> None:
    home = make_home()
    instance = instance_for(home)
    sensor = defs.resolve_sensor_def("staleness_retrain")
    resources = {"home": LifecycleHomeResource(workdir=str(home.root))}
    report(
        instance, "validation_report", "2026-06-05", challenger_version="v1", challenger_metric=0.9
    )
    cursor = None
    requested = []
    for day, quality in [("2026-06-10", 0.89), ("2026-06-11", 0.70), ("2026-06-12", 0.65),
                         ("2026-06-13", 0.66)]:  # fmt: skip
        report(instance, "prediction_drift", day, max_psi=0.01)
        report(instance, "live_quality", day, matured=True, quality=quality, model_version="v1",
               prediction_bias_low=-0.01, prediction_bias_high=0.01)  # fmt: skip
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
            result = sensor(ctx)
            cursor = ctx.cursor
        if isinstance(result, dg.RunRequest):
            requested.append((day, result.partition_key, result.tags["lifecycle/trigger"]))
        # The same day again is not a new evaluation.
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
            assert isinstance(sensor(ctx), dg.SkipReason)
    assert requested == [("2026-06-11", "2026-06-11", "staleness")]


def register_versions(home: LifecycleHome, trained: dict[str, str]) -> None:
    """The registry's lineage of each version (only `day` matters to the trigger)."""
    path = Path(home.repo) / "registry" / "versions.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({v: {"day": d} for v, d in trained.items()}))


def run_sensor(home: LifecycleHome, plan: list[tuple[str, dict]]) -> list[str]:
    """Evaluate the sensor once per planned day after reporting that day's monitoring."""
    instance = instance_for(home)
    sensor = defs.resolve_sensor_def("staleness_retrain")
    resources = {"home": LifecycleHomeResource(workdir=str(home.root))}
    cursor, requested = None, []
    for day, assets in plan:
        for key, meta in assets.items():
            report(instance, key, day, **meta)
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
            result = sensor(ctx)
            cursor = ctx.cursor
        if isinstance(result, dg.RunRequest):
            requested.append(result.partition_key)
    return requested


def test_sensor_retriggers_a_persistent_drift_until_a_post_onset_model_serves(make_home) -> None:
    """The replay's pattern through the daemon's sensor: PSI stays ≈ 1.8 from 06-10; the
    retrain of 06-10 (v2) learned from data through 06-05, so it fires again on 06-13; v3
    (06-13, data through 06-08) is rejected and v2 keeps serving, so again on 06-16; v4 of
    06-16 (data through 06-11) serves from 06-17 and closes the episode."""
    home = make_home()
    register_versions(
        home, {"v1": "2026-06-01", "v2": "2026-06-10", "v3": "2026-06-13", "v4": "2026-06-16"}
    )
    serving = {d: "v1" for d in days(8, 11)} | {d: "v2" for d in days(11, 17)}
    serving |= {d: "v4" for d in days(17, 22)}
    plan = [
        (
            day,
            {
                "prediction_drift": {
                    "max_psi": 0.05 if day < "2026-06-10" else 1.8,
                    "model_version": serving[day],
                }
            },
        )
        for day in days(8, 22)
    ]
    assert run_sensor(home, plan) == ["2026-06-10", "2026-06-13", "2026-06-16"]


def test_sensor_quality_drop_on_log_loss(make_home) -> None:
    """For a lower-is-better gate metric the sensor fires on a rise of live log-loss, and
    not on a fall (it used to do the opposite)."""
    home = make_home("validation:\n  metric: log_loss\n")
    register_versions(home, {"v1": "2026-06-01"})
    report(
        instance_for(home),
        "validation_report",
        "2026-06-05",
        challenger_version="v1",
        challenger_metric=0.30,
    )

    def day(d: str, live: float) -> tuple[str, dict]:
        return d, {
            "prediction_drift": {"max_psi": 0.01, "model_version": "v1"},
            "live_quality": {"matured": True, "quality": live, "model_version": "v1"},
        }

    # better (lower) for two days, then worse by 0.15 > quality_drop 0.05
    plan = [day("2026-06-10", 0.20), day("2026-06-11", 0.21), day("2026-06-12", 0.45)]
    assert run_sensor(home, plan) == ["2026-06-12"]


def test_broken_run_alert_reaches_the_sink(make_home) -> None:
    home = make_home()
    instance = instance_for(home)
    # labeled_examples without its upstream logs: a broken run, not a gate decision.
    with pytest.raises(RunFailed):
        materialize(home, ["labeled_examples"], "2026-06-03")
    run = instance.get_runs(limit=1)[0]
    failure = next(
        e.dagster_event
        for e in instance.all_logs(run.run_id)
        if e.dagster_event is not None
        and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
    )
    alerts = AlertSinkResource(home=LifecycleHomeResource(workdir=str(home.root)))
    with dg.build_run_status_sensor_context(
        sensor_name="broken_run_alert", dagster_event=failure, dagster_instance=instance,
        dagster_run=run, resources={"alerts": alerts},
    ) as status_context:  # fmt: skip
        broken_run_alert(status_context.for_run_failure())
    lines = [json.loads(x) for x in home.alerts_path.read_text().splitlines()]
    assert lines[-1]["kind"] == "broken_run" and lines[-1]["run_id"] == run.run_id
