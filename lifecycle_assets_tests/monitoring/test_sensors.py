"""The staleness trigger and the broken-run alert, evaluated with Dagster's test contexts
against a real instance in a temp home."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from lifecycle_assets.automation.loop import RunFailed, instance_for, materialize
from lifecycle_assets.config import MonitoringConfig, parse_config
from lifecycle_assets.definitions import defs
from lifecycle_assets.defs.monitoring.sensors import broken_run_alert
from lifecycle_assets.defs.resources.alerts import AlertSinkResource
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.monitoring.metrics import quality_drop
from lifecycle_assets.monitoring.staleness import (
    Episode,
    EpisodeState,
    Reason,
    days_with_data,
    partial_window_reason,
    post_onset_share,
    staleness_reasons,
    step_episode,
    train_window,
    window_reasons,
)

CFG = MonitoringConfig()
SHARE = 0.5  # the rule at half a window (the default, 1.0, is checked below)
# The sensor tests' homes close episodes at half a window too, as their stories are told.
HALF = f"monitoring:\n  episode_close_share: {SHARE}\n"
# Stories of a quality episode told with the cooldown alone: their live quality matures the
# day it is served, so a catching-up episode (the default, tested on its own below) would
# wait for train windows these stories never reach.
COOLDOWN_ONLY = HALF + "  catch_up: false\n"
DRIFT = Reason("feature_drift", "feature drift: max PSI 1.800 > 0.25")
QUALITY = Reason("quality_drop", "live quality: roc_auc 0.700 is 0.200 worse ...")
BIAS = Reason("prediction_bias", "prediction bias interval [+0.030, +0.050] excludes ±0.02")


@pytest.mark.parametrize(
    ("psi", "live", "validated", "low", "high", "expect"),
    [
        (0.05, 0.90, 0.91, -0.01, 0.01, []),
        (0.40, 0.90, 0.91, -0.01, 0.01, [("feature_drift", "feature drift")]),
        (0.05, 0.60, 0.91, -0.01, 0.01, [("quality_drop", "live quality")]),
        (0.05, 0.90, 0.91, 0.03, 0.05, [("prediction_bias", "prediction bias")]),
        (0.05, 0.90, 0.91, -0.05, -0.03, [("prediction_bias", "prediction bias")]),
        (
            0.40,
            0.60,
            0.91,
            0.03,
            0.05,
            [
                ("feature_drift", "feature drift"),
                ("quality_drop", "live quality"),
                ("prediction_bias", "prediction bias"),
            ],
        ),
        (None, None, 0.91, None, None, []),
        (float("nan"), 0.5, None, None, None, []),
    ],
)
def test_staleness_reasons(psi, live, validated, low, high, expect) -> None:
    """Each reason carries its kind explicitly, and the human text for alerts and tags."""
    reasons = staleness_reasons(psi, live, validated, low, high, CFG, metric="roc_auc")
    assert [(r.kind, " ".join(r.text.split(":")[0].split(" ")[0:2])) for r in reasons] == expect


@pytest.mark.parametrize("name", ["log_loss", "rmse", "mae"])
def test_a_quality_drop_on_a_lower_is_better_metric_is_a_rise(name: str) -> None:
    """The sensor used to call this without the orientation, so for log_loss, rmse and mae
    a worse live value read as an improvement and an improvement as a drop."""
    validated = 0.30
    assert quality_drop(0.45, validated, name) == pytest.approx(0.15)
    assert quality_drop(0.20, validated, name) == pytest.approx(-0.10)
    worse = staleness_reasons(None, 0.45, validated, None, None, CFG, metric=name)
    better = staleness_reasons(None, 0.20, validated, None, None, CFG, metric=name)
    assert len(worse) == 1 and worse[0].kind == "quality_drop"
    assert worse[0].text.startswith(f"live quality: {name} 0.450 is 0.150 worse")
    assert better == []
    assert quality_drop(0.80, 0.90, "roc_auc") == pytest.approx(0.10)
    assert quality_drop(None, validated, name) is None
    assert quality_drop(float("nan"), validated, name) is None


def test_traffic_served_beyond_the_training_range_is_a_signal_of_its_own() -> None:
    """Drift the service serves instead of refusing reaches the trigger: past
    `monitoring.out_of_range_share` of a day's requests it is a reason of its own kind."""
    quiet = staleness_reasons(None, None, None, None, None, CFG, metric="roc_auc")
    within = staleness_reasons(
        None, None, None, None, None, CFG, metric="roc_auc", out_of_range_share=0.01
    )
    beyond = staleness_reasons(
        None, None, None, None, None, CFG, metric="roc_auc", out_of_range_share=0.30
    )
    assert quiet == within == []
    assert [r.kind for r in beyond] == ["out_of_range"]
    assert beyond[0].text.startswith("out of range: 30.0% of requests")


def test_staleness_reasons_needs_the_metric() -> None:
    with pytest.raises(TypeError):
        staleness_reasons(0.1, 0.5, 0.4, None, None, CFG)  # type: ignore[call-arg]


def days(start: int, stop: int) -> list[str]:
    return [f"2026-06-{d:02d}" for d in range(start, stop)]


def window(trained: str) -> tuple[str, str] | None:
    """The train window of a model trained on `trained` with the default settings
    (maturity 3, test window 2, train window 8: [D − 12, D − 5])."""
    return train_window({"day": trained}, parse_config({}))


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
        fire, state = step_episode(
            state, f"2026-06-{day:02d}", [DRIFT] if stale else [], 5, close_share=SHARE
        )
        if fire:
            fired.append(day)
    # Day 6: the second episode outlasted the cooldown (before, an episode that opened
    # within the cooldown never fired; this expectation was [1, 9]).
    assert fired == [1, 6]


def test_a_persistent_drift_retriggers_until_a_post_onset_model_serves() -> None:
    """The replay's finding: PSI ≈ 1.8 from day 10 on; the first retrain learns from a window
    that predates the drift (labels mature late), so the trigger fires again after the
    cooldown; a retrain with two post-onset days of eight does not end it either; once a
    model trained mostly on data from the onset on serves, the episode closes."""
    # cooldown 3; the model serving each day, by the day it was trained
    serving = {d: "2026-06-01" for d in days(10, 11)}  # v1: 05-20..05-27
    serving |= {d: "2026-06-10" for d in days(11, 17)}  # v2: 05-29..06-05, pre-drift
    serving |= {d: "2026-06-16" for d in days(17, 20)}  # v4: 06-04..06-11 (v3 rejected)
    serving |= {d: "2026-06-19" for d in days(20, 26)}  # v5: 06-07..06-14, 5 of 8 post-onset
    state, fired, onsets = EpisodeState(), [], set()
    for day in days(10, 26):
        fire, state = step_episode(state, day, [DRIFT], 3, window(serving[day]), close_share=SHARE)
        if fire:
            fired.append(day)
        onsets.add(state.onset)
    assert fired == ["2026-06-10", "2026-06-13", "2026-06-16", "2026-06-19"]
    assert onsets == {"2026-06-10"} and state.closed is True
    # The signal clears and comes back: a new episode, which fires (the cooldown has passed).
    fire, state = step_episode(state, "2026-06-26", [], 3, window("2026-06-19"), close_share=SHARE)
    assert not fire and state.episodes == {} and state.onset is None
    fire, state = step_episode(
        state, "2026-06-27", [DRIFT], 3, window("2026-06-19"), close_share=SHARE
    )
    assert fire and state.onset == "2026-06-27" and not state.closed


def test_one_post_onset_day_does_not_close_an_episode_half_a_window_does() -> None:
    """A retrain whose train window ends on the onset (one post-onset day of eight) has
    barely seen the change: the episode stays open and fires again after the cooldown. A
    retrain with half its window from the onset on closes it (`episode_close_share` 0.5)."""
    one_day = ("2026-06-03", "2026-06-10")  # 1 of 8 days on or after the onset
    three = ("2026-06-05", "2026-06-12")  # 3 of 8
    half = ("2026-06-06", "2026-06-13")  # 4 of 8
    serving: dict[str, tuple[str, str] | None] = {d: window("2026-06-01") for d in days(10, 11)}
    serving |= {d: one_day for d in days(11, 14)}
    serving |= {d: three for d in days(14, 17)}
    serving |= {d: half for d in days(17, 24)}
    state, fired = EpisodeState(), []
    for day in days(10, 24):
        fire, state = step_episode(state, day, [DRIFT], 3, serving[day], close_share=SHARE)
        if fire:
            fired.append(day)
        assert state.closed is (day >= "2026-06-17"), day
    # 06-13: the one-day retrain serves and the cooldown has passed; 06-16: so does the
    # three-day one; the half-window one closes it on 06-17 and nothing fires after.
    assert fired == ["2026-06-10", "2026-06-13", "2026-06-16"]
    assert state.episodes == {"feature_drift": Episode("2026-06-10", True)}
    # The share is the configured one: with 1.0 only a window wholly from the onset closes.
    _, strict = step_episode(
        EpisodeState(episodes={"feature_drift": Episode("2026-06-10")}, last_fired="2026-06-16"),
        "2026-06-17",
        [DRIFT],
        3,
        half,
        close_share=1.0,
    )
    assert not strict.closed
    _, strict = step_episode(
        strict, "2026-06-18", [DRIFT], 3, window("2026-06-27"), close_share=1.0
    )
    assert strict.closed  # 06-15..06-22: every day on or after the onset


@pytest.mark.parametrize(
    ("window_", "onset", "share"),
    [
        (("2026-06-03", "2026-06-10"), "2026-06-10", 1 / 8),
        (("2026-06-06", "2026-06-13"), "2026-06-10", 0.5),
        (("2026-06-10", "2026-06-17"), "2026-06-10", 1.0),
        (("2026-06-10", "2026-06-17"), "2026-06-01", 1.0),
        (("2026-06-01", "2026-06-09"), "2026-06-10", 0.0),
        (("2026-06-10", "2026-06-10"), "2026-06-10", 1.0),
    ],
)
def test_post_onset_share(window_: tuple[str, str], onset: str, share: float) -> None:
    assert post_onset_share(window_, onset) == pytest.approx(share)


def test_a_new_kind_of_signal_opens_its_own_episode() -> None:
    """Seasonal drift persists and its episode closed (a model trained mostly after its
    onset serves); then the concept changes and live quality drops. It used to join the
    closed drift episode and never fire. Now it opens its own episode and fires; when it
    clears, the drift episode is as it was; a third kind within the cooldown waits for it
    (the cooldown is shared)."""
    pre = ("2026-05-20", "2026-05-27")
    post = ("2026-05-30", "2026-06-06")  # 6 of 8 days from the drift's onset (06-01) on
    state, fired = EpisodeState(), []

    def step(day: str, reasons: list[Reason], serving: tuple[str, str]) -> None:
        nonlocal state
        fire, state = step_episode(state, day, reasons, 3, serving, close_share=SHARE)
        if fire:
            fired.append(day)

    for day in days(1, 5):
        step(day, [DRIFT], pre)
    for day in days(5, 10):
        step(day, [DRIFT], post)
    assert fired == ["2026-06-01", "2026-06-04"]
    drift_episode = Episode("2026-06-01", closed=True)
    assert state.episodes == {"feature_drift": drift_episode}
    # The quality drop appears while the drift persists: its own onset, and it fires.
    step("2026-06-10", [DRIFT, QUALITY], post)
    assert fired[-1] == "2026-06-10"
    assert state.episodes == {
        "feature_drift": drift_episode,
        "quality_drop": Episode("2026-06-10", closed=False),
    }
    assert state.onset == "2026-06-01" and state.pending == {"quality_drop": Episode("2026-06-10")}
    step("2026-06-11", [DRIFT, QUALITY], post)  # within the cooldown
    # It clears: its episode ends, the drift's stays closed and nothing fires.
    for day in days(12, 16):
        step(day, [DRIFT], post)
    assert state.episodes == {"feature_drift": drift_episode}
    assert fired == ["2026-06-01", "2026-06-04", "2026-06-10"]
    # It comes back: a new episode with a new onset, which fires; a bias signal the day after
    # opens its own episode too, but waits for the cooldown of that fire (06-19).
    step("2026-06-16", [DRIFT, QUALITY], post)
    for day in days(17, 20):
        step(day, [DRIFT, QUALITY, BIAS], post)
    assert fired == ["2026-06-01", "2026-06-04", "2026-06-10", "2026-06-16", "2026-06-19"]
    assert state.episodes == {
        "feature_drift": drift_episode,
        "quality_drop": Episode("2026-06-16"),
        "prediction_bias": Episode("2026-06-17"),
    }
    # The drift clears: its episode ends, the other two go on as they were.
    step("2026-06-20", [QUALITY, BIAS], post)
    assert state.episodes == {
        "quality_drop": Episode("2026-06-16"),
        "prediction_bias": Episode("2026-06-17"),
    }
    assert fired[-1] == "2026-06-19"


def test_a_quality_episode_catches_up_with_the_data_not_the_cooldown() -> None:
    """`monitoring.catch_up`: live quality drops on the matured day 06-07, seen on 06-10
    (maturity 3). A retrain then would learn 05-29..06-05, all from before the drop, so the
    episode does not ask yet; from 06-12 on each day's window holds one more day from the
    drop on than the last retrain's, and it fires each day, cooldown or not, until a model
    trained wholly after the drop serves. Without catch-up it fires when it opens and after
    each cooldown, as any episode."""
    drop = replace(QUALITY, since="2026-06-07")

    def run(catch_up: bool, rejected: frozenset[str] = frozenset()) -> list[str]:
        state, fired, serving = EpisodeState(), [], window("2026-06-01")
        for day in days(10, 26):
            fire, state = step_episode(
                state,
                day,
                [drop],
                3,
                serving,
                close_share=1.0,
                catch_up=catch_up,
                window_of=lambda d: window(d) or ("", ""),
            )
            assert state.onset == "2026-06-07"
            if fire:
                fired.append(day)
                if day not in rejected:
                    serving = window(day)  # promoted: it serves from the next day
        return fired

    assert run(catch_up=True) == days(12, 20)  # the 06-19 model learned 06-07..06-14
    assert run(catch_up=False) == ["2026-06-10", "2026-06-13", "2026-06-16", "2026-06-19"]
    # A rejected retrain is not asked for again with the same data: the next day's window
    # holds more of it. Once the window is all post-onset, the cooldown holds again.
    assert run(catch_up=True, rejected=frozenset(days(12, 26))) == [
        *days(12, 20),
        "2026-06-22",
        "2026-06-25",
    ]


def test_an_old_cursor_still_parses() -> None:
    old = json.dumps({"last_day": "2026-06-03", "in_episode": True, "last_fired": "2026-06-01"})
    state = EpisodeState.parse(old)
    assert (state.onset, state.closed) == (None, False)
    # the open episode keeps going; its onset is taken as the first day seen with it
    fire, state = step_episode(
        state, "2026-06-04", [DRIFT], 3, ("2026-05-13", "2026-05-20"), close_share=SHARE
    )
    assert fire and state.onset == "2026-06-04"
    assert EpisodeState.parse(state.dump()) == state
    # A cursor from before signal kinds, with a closed episode: the kinds signalled next
    # continue it (still closed, no fire); a kind appearing after that opens its own.
    old = json.dumps(
        {
            "last_day": "2026-06-09",
            "in_episode": True,
            "last_fired": "2026-06-01",
            "onset": "2026-06-01",
            "closed": True,
        }
    )
    fire, state = step_episode(
        EpisodeState.parse(old), "2026-06-10", [DRIFT, QUALITY], 3, None, close_share=SHARE
    )
    assert not fire and state.episodes == {
        "feature_drift": Episode("2026-06-01", True),
        "quality_drop": Episode("2026-06-01", True),
    }
    fire, state = step_episode(state, "2026-06-11", [DRIFT, BIAS], 3, None, close_share=SHARE)
    assert fire and state.pending == {"prediction_bias": Episode("2026-06-11")}
    assert EpisodeState.parse(state.dump()) == state
    quiet = EpisodeState.parse(json.dumps({"last_day": "2026-06-03", "in_episode": False}))
    assert quiet.episodes == {} and quiet.last_day == "2026-06-03"


def test_the_train_window_a_registered_model_was_trained_on() -> None:
    config = parse_config({})  # maturity 3 days, test window 2 days, train window 8 days
    assert train_window({}, config) is None
    assert train_window(None, config) is None
    assert train_window({"day": "2026-06-16"}, config) == ("2026-06-04", "2026-06-11")
    assert train_window({"train_split_tag": "train_split/2026-06-16"}, config) == (
        "2026-06-04",
        "2026-06-11",
    )
    assert train_window({"day": "not a day"}, config) is None


def report(instance: dg.DagsterInstance, key: str, day: str, **meta) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=key, partition=day, metadata=meta)
    )


@pytest.mark.parametrize("catch_up", [False, True])
def test_sensor_requests_one_retrain_per_episode(make_home, catch_up: bool) -> None:
    """Live quality drops on 06-11 (reported matured that same day) and stays down. Without
    catch-up the episode fires when it opens. With it (the default) it waits for a train
    window that holds a day from the drop on — 06-16's, 06-04..06-11 (maturity 3, test 2,
    train 8) — then fires on each day whose window holds more of them, cooldown or not."""
    home = make_home(HALF + f"  catch_up: {str(catch_up).lower()}\n")
    instance = instance_for(home)
    sensor = defs.resolve_sensor_def("staleness_retrain")
    resources = {"home": LifecycleHomeResource(workdir=str(home.root))}
    report(
        instance, "validation_report", "2026-06-05", challenger_version="v1", challenger_metric=0.9
    )
    cursor = None
    requested = []
    plan = [("2026-06-10", 0.89), *((day, 0.66) for day in days(11, 18))]
    for day, quality in plan:
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
    if catch_up:
        assert requested == [(d, d, "staleness") for d in ["2026-06-16", "2026-06-17"]]
    else:  # 06-14 and 06-17: the episode never closes (v1 keeps serving), so the cooldown
        fired = ["2026-06-11", "2026-06-14", "2026-06-17"]
        assert requested == [(d, d, "staleness") for d in fired]


def register_versions(home: LifecycleHome, trained: dict[str, str]) -> None:
    """The registry's lineage of each version (only `day` matters to the trigger)."""
    path = Path(home.repo) / "registry" / "versions.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({v: {"day": d} for v, d in trained.items()}))


def evaluate_plan(home: LifecycleHome, plan: list[tuple[str, dict]]) -> dict[str, Any]:
    """Evaluate the sensor once per planned day after reporting that day's monitoring; the
    result (a RunRequest or a SkipReason) of each day."""
    instance = instance_for(home)
    sensor = defs.resolve_sensor_def("staleness_retrain")
    resources = {"home": LifecycleHomeResource(workdir=str(home.root))}
    cursor, results = None, {}
    for day, assets in plan:
        for key, meta in assets.items():
            report(instance, key, day, **meta)
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
            results[day] = sensor(ctx)
            cursor = ctx.cursor
    return results


def run_sensor(home: LifecycleHome, plan: list[tuple[str, dict]]) -> list[str | None]:
    """The partitions the sensor requested a retrain of, day by day."""
    results = evaluate_plan(home, plan).values()
    return [r.partition_key for r in results if isinstance(r, dg.RunRequest)]


def test_sensor_retriggers_a_persistent_drift_until_a_post_onset_model_serves(make_home) -> None:
    """The replay's pattern through the daemon's sensor: PSI stays ≈ 1.8 from 06-10; the
    retrain of 06-10 (v2) learned from data through 06-05, so it fires again on 06-13; v3
    (06-13, data through 06-08) is rejected and v2 keeps serving, so again on 06-16; v4 of
    06-16 (06-04..06-11: two post-onset days of eight) serves from 06-17 but has barely seen
    the drift, so again on 06-19; v5 of 06-19 (06-07..06-14: five of eight) serves from
    06-20 and closes the episode."""
    home = make_home(HALF)
    register_versions(
        home,
        {
            "v1": "2026-06-01",
            "v2": "2026-06-10",
            "v3": "2026-06-13",
            "v4": "2026-06-16",
            "v5": "2026-06-19",
        },
    )
    serving = {d: "v1" for d in days(8, 11)} | {d: "v2" for d in days(11, 17)}
    serving |= {d: "v4" for d in days(17, 20)} | {d: "v5" for d in days(20, 26)}
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
        for day in days(8, 26)
    ]
    results = evaluate_plan(home, plan)
    requested = [d for d, r in results.items() if isinstance(r, dg.RunRequest)]
    assert requested == ["2026-06-10", "2026-06-13", "2026-06-16", "2026-06-19"]
    fired = results["2026-06-19"]
    assert isinstance(fired, dg.RunRequest)
    assert fired.tags["lifecycle/episode_onset"] == "2026-06-10"
    assert fired.tags["lifecycle/episode_kinds"] == "feature_drift"
    assert fired.tags["lifecycle/reasons"].startswith("feature drift: max PSI 1.800")
    skipped = results["2026-06-25"]
    assert isinstance(skipped, dg.SkipReason)
    assert "feature_drift since 2026-06-10 closed" in str(skipped.skip_message)
    assert "v5 trained on 2026-06-07..2026-06-14" in str(skipped.skip_message)


def test_sensor_opens_a_quality_episode_while_a_closed_drift_persists(make_home) -> None:
    """Drift from 06-03 on, closed once v2 (06-12: 05-31..06-07, five of eight days from the
    onset on) serves; the drift persists. On 06-16 live quality drops against v2's validated
    0.90: its own episode, which fires; when it clears on 06-18 the drift episode is as it
    was and nothing more fires."""
    home = make_home(COOLDOWN_ONLY)
    register_versions(home, {"v1": "2026-06-01", "v2": "2026-06-12"})
    report(
        instance_for(home),
        "validation_report",
        "2026-06-12",
        challenger_version="v2",
        challenger_metric=0.90,
    )
    quality = {"2026-06-16": 0.70, "2026-06-17": 0.68, "2026-06-18": 0.89, "2026-06-19": 0.90}
    plan = []
    for day in days(3, 21):
        serving = "v1" if day <= "2026-06-12" else "v2"
        assets: dict[str, dict] = {"prediction_drift": {"max_psi": 1.8, "model_version": serving}}
        if day in quality:
            assets["live_quality"] = {
                "matured": True,
                "quality": quality[day],
                "model_version": "v2",
            }
        plan.append((day, assets))
    results = evaluate_plan(home, plan)
    requested = [d for d, r in results.items() if isinstance(r, dg.RunRequest)]
    assert requested == ["2026-06-03", "2026-06-06", "2026-06-09", "2026-06-12", "2026-06-16"]
    fired = results["2026-06-16"]
    assert isinstance(fired, dg.RunRequest)
    assert fired.tags["lifecycle/episode_kinds"] == "quality_drop"
    assert fired.tags["lifecycle/episode_onset"] == "2026-06-16"
    assert "live quality: roc_auc 0.700" in fired.tags["lifecycle/reasons"]
    cooling, cleared = results["2026-06-17"], results["2026-06-20"]
    assert isinstance(cooling, dg.SkipReason) and isinstance(cleared, dg.SkipReason)
    assert "feature_drift since 2026-06-03 closed" in str(cooling.skip_message)
    assert "quality_drop since 2026-06-16 cooling down" in str(cooling.skip_message)
    assert "episodes: feature_drift since 2026-06-03 closed;" in str(cleared.skip_message)


def test_sensor_quality_drop_on_log_loss(make_home) -> None:
    """For a lower-is-better gate metric the sensor fires on a rise of live log-loss, and
    not on a fall (it used to do the opposite)."""
    home = make_home("validation:\n  metric: log_loss\n" + COOLDOWN_ONLY)
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
    home = make_home(HALF)
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


def test_a_model_from_a_partial_train_window_is_replaced_as_the_window_fills() -> None:
    """Defaults: maturity 3, test 2, train 8 days, so day D trains on [D-12, D-5]. Data
    from 06-01 on: a model trained on 06-06 learned from one day."""
    config = parse_config({})
    first = "2026-06-01"
    assert days_with_data(("2026-05-25", "2026-06-01"), first) == 1
    assert days_with_data(("2026-05-20", "2026-05-27"), first) == 0

    def serving(day: str) -> tuple[str, str] | None:
        return train_window({"day": day}, config)

    assert window_reasons(config, "2026-06-06", serving("2026-06-06"), first) == []
    [reason] = window_reasons(config, "2026-06-07", serving("2026-06-06"), first)
    assert reason.kind == "partial_window"
    assert reason.text.endswith("learned from 1 day(s) of data; today's window holds 2 of 8")
    # a two-day model: nothing until the window holds four days (06-09)
    assert window_reasons(config, "2026-06-08", serving("2026-06-07"), first) == []
    assert window_reasons(config, "2026-06-09", serving("2026-06-07"), first) != []
    # a five-day model: the full window (06-13) is due, though not twice five
    assert window_reasons(config, "2026-06-12", serving("2026-06-10"), first) == []
    assert window_reasons(config, "2026-06-13", serving("2026-06-10"), first) != []
    # a full-window model never signals; nor does a loop that does not know its data yet
    assert window_reasons(config, "2026-07-30", serving("2026-06-13"), first) == []
    assert partial_window_reason(None, ("2026-06-01", "2026-06-08"), first) is None
    assert partial_window_reason(serving("2026-06-06"), ("2026-06-01", "2026-06-08"), None) is None


def test_sensor_replaces_a_cold_start_model_as_its_window_fills(make_home) -> None:
    """Feature partitions from 06-01; v1 (06-06) learned from one day. The sensor asks on
    06-07 (two days); v2 of 06-07 serves; on 06-09 the window holds four days but the
    cooldown (3) holds until 06-10; v3 of 06-10 (five days) serves until the full window
    of 06-13; v4 of 06-13 learned from eight days: nothing more, though every day stays
    quiet otherwise."""
    home = make_home(HALF)
    register_versions(
        home, {"v1": "2026-06-06", "v2": "2026-06-07", "v3": "2026-06-10", "v4": "2026-06-13"}
    )
    instance = instance_for(home)
    for day in days(1, 6):
        report(instance, "feature_table", day, rows=100)
    serving = {d: "v1" for d in days(6, 8)} | {d: "v2" for d in days(8, 11)}
    serving |= {d: "v3" for d in days(11, 14)} | {d: "v4" for d in days(14, 20)}
    plan = [
        (
            day,
            {
                "feature_table": {"rows": 100},
                "prediction_drift": {"max_psi": 0.01, "model_version": serving[day]},
            },
        )
        for day in days(6, 20)
    ]
    results = evaluate_plan(home, plan)
    requested = [d for d, r in results.items() if isinstance(r, dg.RunRequest)]
    assert requested == ["2026-06-07", "2026-06-10", "2026-06-13"]
    fired = results["2026-06-07"]
    assert isinstance(fired, dg.RunRequest)
    assert fired.tags["lifecycle/episode_kinds"] == "partial_window"
    held = results["2026-06-09"]
    assert isinstance(held, dg.SkipReason)
    assert "partial_window since 2026-06-09 cooling down" in str(held.skip_message)
    assert str(results["2026-06-19"].skip_message) == "2026-06-19: no staleness signal"


def test_a_quality_episode_holds_live_quality_to_its_onset_baseline(make_home) -> None:
    """Live ROC-AUC falls from v1's validated 0.90 to 0.60 on 06-10 (a concept drift). The
    retrain of 06-10 (v2) learned only from before the onset and is validated at 0.61 on
    the drifted test days: measured against v2's own figure the drop would vanish and the
    episode end with a stale model serving. Held to the onset's 0.90 it persists: fires on
    06-13 (v3, still pre-onset), 06-16 (v4: 2 of 8 days post-onset) and 06-19 (v5: 5 of 8),
    whose model closes the episode; then live 0.72 is measured against v5's own 0.72 and the
    episode ends."""
    home = make_home(COOLDOWN_ONLY)
    trained = {"v1": "2026-06-01", "v2": "2026-06-10", "v3": "2026-06-13"}
    trained |= {"v4": "2026-06-16", "v5": "2026-06-19"}
    register_versions(home, trained)
    validated = {"v1": 0.90, "v2": 0.61, "v3": 0.62, "v4": 0.70, "v5": 0.72}
    instance = instance_for(home)
    for version, day in trained.items():
        report(instance, "validation_report", day, challenger_version=version,
               challenger_metric=validated[version])  # fmt: skip
    serving = {d: "v1" for d in days(8, 11)} | {d: "v2" for d in days(11, 14)}
    serving |= {d: "v3" for d in days(14, 17)} | {d: "v4" for d in days(17, 20)}
    serving |= {d: "v5" for d in days(20, 26)}
    live = {d: (0.89 if d < "2026-06-10" else 0.60) for d in days(8, 17)}
    live |= {d: 0.70 for d in days(17, 20)} | {d: 0.72 for d in days(20, 26)}
    plan = [
        (
            day,
            {
                "prediction_drift": {"max_psi": 0.01, "model_version": serving[day]},
                "live_quality": {
                    "matured": True,
                    "quality": live[day],
                    "model_version": serving[day],
                    "prediction_bias_low": -0.01,
                    "prediction_bias_high": 0.01,
                },
            },
        )
        for day in days(8, 26)
    ]
    results = evaluate_plan(home, plan)
    requested = [d for d, r in results.items() if isinstance(r, dg.RunRequest)]
    assert requested == ["2026-06-10", "2026-06-13", "2026-06-16", "2026-06-19"]
    held = results["2026-06-13"]
    assert isinstance(held, dg.RunRequest)
    assert (
        "worse than the 0.900 validated before the episode's onset 2026-06-10"
        in (held.tags["lifecycle/reasons"])
    )
    assert str(results["2026-06-25"].skip_message) == "2026-06-25: no staleness signal"
    # the episode's baseline survives the cursor
    state = EpisodeState(episodes={"quality_drop": Episode("2026-06-10", False, 0.9)})
    assert EpisodeState.parse(state.dump()) == state
