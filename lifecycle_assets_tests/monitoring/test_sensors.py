"""The staleness trigger and the broken-run alert, evaluated with Dagster's test contexts
against a real instance in a temp home."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from lifecycle_assets.automation.loop import RunFailed, instance_for, materialize
from lifecycle_assets.config import MonitoringConfig
from lifecycle_assets.definitions import defs
from lifecycle_assets.monitoring.sensors import (
    EpisodeState,
    broken_run_alert,
    staleness_reasons,
    step_episode,
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
    reasons = staleness_reasons(psi, live, validated, low, high, CFG)
    assert [r.split(":")[0].split(" ")[0:2] for r in reasons] == [e.split(" ")[0:2] for e in expect]


def test_fires_once_per_episode_with_cooldown() -> None:
    state = EpisodeState()
    fired = []
    # Days 1-3 stale (one episode), 4 healthy, 5-6 stale again within the cooldown, 7
    # healthy, 9 stale after the cooldown.
    plan = {1: True, 2: True, 3: True, 4: False, 5: True, 6: True, 7: False, 9: True}
    for day, stale in plan.items():
        fire, state = step_episode(state, f"2026-06-{day:02d}", ["x"] if stale else [], 5)
        if fire:
            fired.append(day)
    assert fired == [1, 9]


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
