"""Sensors that watch the loop: the staleness trigger and the broken-run alert.

The staleness trigger reads a day's signals from the loop's own materialisations (drift,
live and estimated quality, the gate's decisions) and decides with the plain policy of
`monitoring/staleness.py`: one episode per kind of signal, a fire when an open episode that
is not closed finds the cooldown passed. The sensor keeps its episodes in its cursor; the
replay's `triggered` policy makes the same decision (`decide_staleness`)."""

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import dagster as dg

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.defs.automation.daily import day_wait
from lifecycle_assets.defs.resources.alerts import AlertSinkResource
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.monitoring.staleness import (
    EpisodeState,
    Reason,
    day_train_window,
    estimated_reason,
    finite,
    held_to_onset,
    staleness_reasons,
    step_episode,
    train_window,
    window_reasons,
)
from lifecycle_assets.registry.registry import Registry

# Read at evaluation time from the loop's own materialisation metadata.
DRIFT = dg.AssetKey("prediction_drift")
QUALITY = dg.AssetKey("live_quality")
DECISIONS = dg.AssetKey("validation_report")
FEATURES = dg.AssetKey("feature_table")


def first_data_day(instance: dg.DagsterInstance) -> str | None:
    """The loop's first day of data: the oldest materialised `feature_table` partition."""
    days = instance.get_materialized_partitions(FEATURES)
    return min(days) if days else None


def _meta(record: Any, key: str) -> Any:
    value = record.asset_materialization.metadata.get(key)
    return None if value is None else value.value


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey, limit: int = 60) -> list[Any]:
    return list(instance.fetch_materializations(key, limit=limit).records)


def evaluate_staleness(
    instance: dg.DagsterInstance,
    config: LifecycleConfig,
    versions: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Today's signals from the latest materialisations: drift of the newest day, quality and
    bias of the newest matured day against the quality its model was validated with, and
    whether the model that served the newest day (`versions`: the registry's) learned from a
    partial train window; that model and its `train_window`."""
    drift = _latest(instance, DRIFT, 1)
    if not drift:
        return {"day": None, "reasons": []}
    day = drift[0].asset_materialization.partition
    matured = [r for r in _latest(instance, QUALITY) if _meta(r, "matured")]
    live, version, low, high, live_day = None, None, None, None, None
    if matured:
        newest = max(matured, key=lambda r: r.asset_materialization.partition or "")
        live_day = newest.asset_materialization.partition
        live = _meta(newest, "quality")
        version = _meta(newest, "model_version")
        low, high = _meta(newest, "prediction_bias_low"), _meta(newest, "prediction_bias_high")
    decisions = _latest(instance, DECISIONS)
    validated = _validated(decisions, version)
    reasons = staleness_reasons(
        _meta(drift[0], "max_psi"),
        live,
        validated,
        low,
        high,
        config.monitoring,
        metric=config.validation.metric,
        out_of_range_share=_meta(drift[0], "out_of_range_share"),
    )
    # A quality drop and a bias are measured on the newest matured day: their episodes
    # start with that day's data.
    from_matured = ("quality_drop", "prediction_bias")
    reasons = [replace(r, since=live_day) if r.kind in from_matured else r for r in reasons]
    if config.monitoring.use_estimate:
        reasons += _estimate_reasons(instance, config, decisions, live_day)
    # The model that served the newest day (what its drift is measured against).
    serving = _meta(drift[0], "model_version") or version
    window = train_window(versions.get(serving), config) if serving else None
    if day is not None:
        reasons += window_reasons(config, day, window, first_data_day(instance))
    return {
        "day": day,
        "model_version": serving,
        "train_window": window,
        "reasons": reasons,
        "live_quality": live,
        "live_quality_day": live_day,
        "validated_quality": validated,
    }


def _validated(decisions: Sequence[Any], version: str | None) -> float | None:
    """The quality `version` was validated with (its gate decision's challenger metric)."""
    for rec in decisions:
        if version is not None and _meta(rec, "challenger_version") == version:
            return _meta(rec, "challenger_metric")
    return None


def _estimate_reasons(
    instance: dg.DagsterInstance,
    config: LifecycleConfig,
    decisions: Sequence[Any],
    live_day: str | None,
) -> list[Reason]:
    """`estimated_reason` on the newest day that has an estimate and is newer than the
    newest matured day (`live_day`): a day whose labels have not matured yet."""
    newest = None
    for rec in _latest(instance, QUALITY):
        day = rec.asset_materialization.partition or ""
        if live_day is not None and day <= live_day:
            continue
        if finite(_meta(rec, "estimated_quality")) is None:
            continue
        if newest is None or day > (newest.asset_materialization.partition or ""):
            newest = rec
    if newest is None:
        return []
    validated = _validated(decisions, _meta(newest, "estimated_model_version"))
    reason = estimated_reason(
        _meta(newest, "estimated_quality"),
        validated,
        config.validation.metric,
        config.monitoring,
        newest.asset_materialization.partition,
    )
    return [reason] if reason else []


def decide_staleness(
    instance: dg.DagsterInstance,
    config: LifecycleConfig,
    versions: Mapping[str, Mapping[str, Any]],
    state: EpisodeState,
) -> tuple[bool, EpisodeState, dict[str, Any]]:
    """The staleness trigger's one decision, for the daemon's sensor and the replay's
    `triggered` policy alike: (fire, the new state, the day's signal). A day already
    evaluated (or no monitoring yet) returns `state` itself, unchanged, and never fires."""
    signal = evaluate_staleness(instance, config, versions)
    if signal["day"] is None or signal["day"] == state.last_day:
        return False, state, signal
    signal["reasons"] = held_to_onset(signal, state, config)
    fire, new_state = step_episode(
        state,
        signal["day"],
        signal["reasons"],
        config.monitoring.cooldown_days,
        signal["train_window"],
        close_share=config.monitoring.episode_close_share,
        catch_up=config.monitoring.catch_up,
        window_of=lambda d: day_train_window(d, config),
    )
    opened = new_state.episodes.get("quality_drop")
    if opened is not None and opened.baseline is None:
        opened.baseline = finite(signal.get("validated_quality"))
    return fire, new_state, signal


def _skip_reason(day: str, reasons: list[Reason], state: EpisodeState, signal: dict) -> str:
    if not reasons:
        return f"{day}: no staleness signal"
    why = "; ".join(r.text for r in reasons)
    episodes = ", ".join(
        f"{kind} since {e.onset} " + ("closed" if e.closed else "cooling down")
        for kind, e in sorted(state.episodes.items())
    )
    window = signal.get("train_window")
    serving = f"{signal.get('model_version')} " + (
        f"trained on {window[0]}..{window[1]}" if window else "(no train window in the registry)"
    )
    return f"{day}: {why} — episodes: {episodes}; last retrain {state.last_fired}; {serving}"


def build_staleness_sensor(job: Any, training_assets: list[str]) -> dg.SensorDefinition:
    @dg.sensor(
        name="staleness_retrain",
        job=job,
        minimum_interval_seconds=60,
        description="Retrains when a staleness episode (one per kind: drift, out of range, "
        "quality drop, bias, a partial train window) opens and after each cooldown until a "
        "model trained mostly on data from the episode's onset on serves; thresholds in "
        "lifecycle.yaml `monitoring`.",
    )
    def staleness_retrain(
        context: dg.SensorEvaluationContext, home: LifecycleHomeResource
    ) -> dg.RunRequest | dg.SkipReason:
        h = home.get()
        # The newest day's signals are read once its stages before training are done (the
        # matured day's refresh brings the live quality the daily runner's policy reads).
        newest = _latest(context.instance, DRIFT, 1)
        if newest and newest[0].asset_materialization.partition:
            day = dt.date.fromisoformat(newest[0].asset_materialization.partition)
            wait = day_wait(context.instance, h, day)
            if wait is not None:
                return dg.SkipReason(wait)
        config = h.config()
        versions = Registry(h, config.problem.name).versions()
        state = EpisodeState.parse(context.cursor)
        fire, new_state, signal = decide_staleness(context.instance, config, versions, state)
        if new_state is state:
            return dg.SkipReason("no new day of monitoring since the last evaluation")
        context.update_cursor(new_state.dump())
        if not fire:
            return dg.SkipReason(_skip_reason(signal["day"], signal["reasons"], new_state, signal))
        return dg.RunRequest(
            run_key=f"staleness-{signal['day']}",
            partition_key=signal["day"],
            asset_selection=[dg.AssetKey(a) for a in training_assets],
            tags={
                "lifecycle/trigger": "staleness",
                "lifecycle/reasons": "; ".join(r.text for r in signal["reasons"])[:200],
                # the episodes this retrain is for: open and not closed
                "lifecycle/episode_kinds": ",".join(sorted(new_state.pending)),
                "lifecycle/episode_onset": min(e.onset or "" for e in new_state.pending.values()),
            },
        )

    return staleness_retrain


@dg.run_failure_sensor(
    name="broken_run_alert", description="A failed run of the loop raises a broken-run alert."
)
def broken_run_alert(context: dg.RunFailureSensorContext, alerts: AlertSinkResource) -> None:
    """Broken runs (not routine FAIL decisions, whose runs succeed) reach the alert sink."""
    run = context.dagster_run
    alerts.send(
        "broken_run",
        f"run {run.run_id} of {run.job_name} failed",
        {
            "run_id": run.run_id,
            "partition": run.tags.get("dagster/partition"),
            "error": context.failure_event.message or "",
        },
    )
