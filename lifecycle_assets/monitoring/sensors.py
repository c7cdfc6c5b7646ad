"""Sensors that watch the loop: the staleness trigger (an episode fires when it opens and
again after each cooldown until a model trained on data from its onset on serves) and the
broken-run alert. The decisions are plain functions, tested directly; the replay's
`triggered` policy calls the same ones."""

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import dagster as dg

from lifecycle_assets.config import LifecycleConfig, MonitoringConfig
from lifecycle_assets.data.transforms import split_windows
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.monitoring.metrics import quality_drop
from lifecycle_assets.registry.registry import Registry
from lifecycle_assets.resources.alerts import AlertSinkResource
from lifecycle_assets.resources.home import LifecycleHomeResource

# Read at evaluation time from the loop's own materialisation metadata.
DRIFT = dg.AssetKey("prediction_drift")
QUALITY = dg.AssetKey("live_quality")
DECISIONS = dg.AssetKey("validation_report")


@dataclass
class EpisodeState:
    """The trigger's memory (the sensor's cursor; the replay keeps one per policy).

    `in_episode`: the signal has been present every evaluated day since `onset`. `closed`: a
    model trained on data from `onset` on has served during the episode, so the retrain it
    asked for happened; it stays closed until the signal clears. `last_fired`: the day of the
    last retrain request, for the cooldown (across episodes)."""

    last_day: str | None = None
    in_episode: bool = False
    last_fired: str | None = None
    onset: str | None = None
    closed: bool = False

    @classmethod
    def parse(cls, cursor: str | None) -> "EpisodeState":
        if not cursor:
            return cls()
        known = {f.name for f in fields(cls)}
        # a cursor written before a field existed still parses (the field's default)
        return cls(**{k: v for k, v in json.loads(cursor).items() if k in known})

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def staleness_reasons(
    max_psi: float | None,
    live_quality: float | None,
    validated_quality: float | None,
    bias_low: float | None,
    bias_high: float | None,
    cfg: MonitoringConfig,
    *,
    metric: str,
) -> list[str]:
    """Why the serving model looks stale today; empty when it does not. `metric` is the
    gate's metric (`validation.metric`), which orients the quality drop; it has no default
    so that no caller can silently compare a lower-is-better metric the wrong way."""
    psi, live, validated = _finite(max_psi), _finite(live_quality), _finite(validated_quality)
    low, high = _finite(bias_low), _finite(bias_high)
    reasons = []
    if psi is not None and psi > cfg.psi_threshold:
        reasons.append(f"feature drift: max PSI {psi:.3f} > {cfg.psi_threshold}")
    drop = quality_drop(live, validated, metric)
    if drop is not None and drop > cfg.quality_drop:
        reasons.append(
            f"live quality: {metric} {live:.3f} is {drop:.3f} worse than the validated "
            f"{validated:.3f} (> {cfg.quality_drop})"
        )
    if (
        low is not None
        and high is not None
        and (low > cfg.bias_tolerance or high < -cfg.bias_tolerance)
    ):
        reasons.append(
            f"prediction bias interval [{low:+.3f}, {high:+.3f}] excludes ±{cfg.bias_tolerance}"
        )
    return reasons


def trained_through(entry: Mapping[str, Any] | None, config: LifecycleConfig) -> str | None:
    """The last day of data a registered model was trained on: the end of the train window
    (`data.transforms.split_windows`) of the day it was trained, read from its registry
    lineage (`day`, else the day of its `train_split_tag`). None when the registry does not
    say. Windows are computed with the current `windows`/`labels` settings."""
    entry = entry or {}
    day = entry.get("day") or str(entry.get("train_split_tag") or "").partition("/")[2]
    try:
        trained = dt.date.fromisoformat(str(day))
    except ValueError:
        return None
    return split_windows(trained, config)["train"][1].isoformat()


def serving_trained_through(
    home: LifecycleHome, config: LifecycleConfig, version: str | None
) -> str | None:
    """`trained_through` of a registered version (None for no or an unknown version)."""
    if not version:
        return None
    return trained_through(Registry(home, config.problem.name).versions().get(version), config)


def step_episode(
    state: EpisodeState,
    day: str,
    reasons: list[str],
    cooldown_days: int,
    serving_data_end: str | None = None,
) -> tuple[bool, "EpisodeState"]:
    """One evaluated day of the staleness trigger; returns (fire, new state).

    A day with reasons after one without opens an episode (`onset` = that day). While the
    reasons persist, the episode closes without firing once the serving model was trained on
    data through the onset or later (`serving_data_end`, its `trained_through`, ≥ onset; ISO
    days): a retrain that could have learned the change is serving. Until then (the serving
    model's training window predates the onset, or the registry does not say: None) it fires
    on every day the cooldown since the last fire has passed, so neither a retrain on
    pre-onset data (labels mature late) nor a retrain the gate rejected ends the episode. A
    day without reasons ends it; a signal that persists after it closed is not a new one."""
    if not reasons:
        return False, EpisodeState(last_day=day, last_fired=state.last_fired)
    opening = not state.in_episode or state.onset is None
    onset = day if opening else str(state.onset)
    new = EpisodeState(
        last_day=day,
        in_episode=True,
        last_fired=state.last_fired,
        onset=onset,
        closed=False if opening else state.closed,
    )
    if not new.closed and serving_data_end is not None and serving_data_end >= onset:
        new.closed = True
    if new.closed:
        return False, new
    cooled = (
        state.last_fired is None
        or (dt.date.fromisoformat(day) - dt.date.fromisoformat(state.last_fired)).days
        >= cooldown_days
    )
    if cooled:
        new.last_fired = day
    return cooled, new


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
    bias of the newest matured day against the quality its model was validated with; and the
    model that served the newest day (`versions`: the registry's) with `trained_through`."""
    drift = _latest(instance, DRIFT, 1)
    if not drift:
        return {"day": None, "reasons": []}
    day = drift[0].asset_materialization.partition
    matured = [r for r in _latest(instance, QUALITY) if _meta(r, "matured")]
    live, version, low, high = None, None, None, None
    if matured:
        newest = max(matured, key=lambda r: r.asset_materialization.partition or "")
        live = _meta(newest, "quality")
        version = _meta(newest, "model_version")
        low, high = _meta(newest, "prediction_bias_low"), _meta(newest, "prediction_bias_high")
    validated = None
    for rec in _latest(instance, DECISIONS):
        if version is not None and _meta(rec, "challenger_version") == version:
            validated = _meta(rec, "challenger_metric")
            break
    reasons = staleness_reasons(
        _meta(drift[0], "max_psi"),
        live,
        validated,
        low,
        high,
        config.monitoring,
        metric=config.validation.metric,
    )
    # The model that served the newest day (what its drift is measured against).
    serving = _meta(drift[0], "model_version") or version
    return {
        "day": day,
        "model_version": serving,
        "trained_through": trained_through(versions.get(serving), config) if serving else None,
        "reasons": reasons,
    }


def _skip_reason(day: str, reasons: list[str], state: EpisodeState, signal: dict) -> str:
    if not reasons:
        return f"{day}: no staleness signal"
    why = "; ".join(reasons)
    if state.closed:
        return (
            f"{day}: {why} — the episode since {state.onset} is closed: "
            f"{signal.get('model_version')} was trained on data through "
            f"{signal.get('trained_through')}"
        )
    return f"{day}: {why} — episode since {state.onset}, last retrain {state.last_fired} (cooldown)"


def build_staleness_sensor(job: Any, training_assets: list[str]) -> dg.SensorDefinition:
    @dg.sensor(
        name="staleness_retrain",
        job=job,
        minimum_interval_seconds=60,
        description="Retrains when a staleness episode (drift, quality drop or bias) opens and "
        "after each cooldown until a model trained on data from the episode's onset serves; "
        "thresholds in lifecycle.yaml `monitoring`.",
    )
    def staleness_retrain(
        context: dg.SensorEvaluationContext, home: LifecycleHomeResource
    ) -> dg.RunRequest | dg.SkipReason:
        h = home.get()
        config = h.config()
        versions = Registry(h, config.problem.name).versions()
        signal = evaluate_staleness(context.instance, config, versions)
        state = EpisodeState.parse(context.cursor)
        if signal["day"] is None or signal["day"] == state.last_day:
            return dg.SkipReason("no new day of monitoring since the last evaluation")
        fire, new_state = step_episode(
            state,
            signal["day"],
            signal["reasons"],
            config.monitoring.cooldown_days,
            signal["trained_through"],
        )
        context.update_cursor(new_state.dump())
        if not fire:
            return dg.SkipReason(_skip_reason(signal["day"], signal["reasons"], new_state, signal))
        return dg.RunRequest(
            run_key=f"staleness-{signal['day']}",
            partition_key=signal["day"],
            asset_selection=[dg.AssetKey(a) for a in training_assets],
            tags={
                "lifecycle/trigger": "staleness",
                "lifecycle/reasons": "; ".join(signal["reasons"])[:200],
                "lifecycle/episode_onset": str(new_state.onset),
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
