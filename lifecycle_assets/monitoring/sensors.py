"""Sensors that watch the loop: the staleness trigger (fires once per episode, with a
cooldown) and the broken-run alert. The decisions are plain functions, tested directly."""

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import dagster as dg

from lifecycle_assets.config import MonitoringConfig
from lifecycle_assets.resources.alerts import AlertSinkResource
from lifecycle_assets.resources.home import LifecycleHomeResource

# Read at evaluation time from the loop's own materialisation metadata.
DRIFT = dg.AssetKey("prediction_drift")
QUALITY = dg.AssetKey("live_quality")
DECISIONS = dg.AssetKey("validation_report")


@dataclass
class EpisodeState:
    """The sensor's cursor: whether a staleness episode is open and when it last fired."""

    last_day: str | None = None
    in_episode: bool = False
    last_fired: str | None = None

    @classmethod
    def parse(cls, cursor: str | None) -> "EpisodeState":
        return cls(**json.loads(cursor)) if cursor else cls()

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
    higher_is_better: bool = True,
) -> list[str]:
    """Why the serving model looks stale today; empty when it does not."""
    psi, live, validated = _finite(max_psi), _finite(live_quality), _finite(validated_quality)
    low, high = _finite(bias_low), _finite(bias_high)
    reasons = []
    if psi is not None and psi > cfg.psi_threshold:
        reasons.append(f"feature drift: max PSI {psi:.3f} > {cfg.psi_threshold}")
    if live is not None and validated is not None:
        drop = (validated - live) * (1 if higher_is_better else -1)
        if drop > cfg.quality_drop:
            reasons.append(
                f"live quality {live:.3f} is {drop:.3f} below the validated "
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


def step_episode(
    state: EpisodeState, day: str, reasons: list[str], cooldown_days: int
) -> tuple[bool, "EpisodeState"]:
    """Fire once when an episode starts (and the cooldown has passed); an episode ends on the
    first day without reasons. Returns (fire, new state)."""
    new = EpisodeState(last_day=day, in_episode=state.in_episode, last_fired=state.last_fired)
    if not reasons:
        new.in_episode = False
        return False, new
    if state.in_episode:
        return False, new
    new.in_episode = True
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


def evaluate_staleness(instance: dg.DagsterInstance, cfg: MonitoringConfig) -> dict[str, Any]:
    """Today's signals from the latest materialisations: drift of the newest day, quality and
    bias of the newest matured day against the quality its model was validated with."""
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
    reasons = staleness_reasons(_meta(drift[0], "max_psi"), live, validated, low, high, cfg)
    return {"day": day, "model_version": version, "reasons": reasons}


def build_staleness_sensor(job: Any, training_assets: list[str]) -> dg.SensorDefinition:
    @dg.sensor(
        name="staleness_retrain",
        job=job,
        minimum_interval_seconds=60,
        description="Retrains once per staleness episode (drift, quality drop or bias), "
        "with a cooldown; thresholds in lifecycle.yaml `monitoring`.",
    )
    def staleness_retrain(
        context: dg.SensorEvaluationContext, home: LifecycleHomeResource
    ) -> dg.RunRequest | dg.SkipReason:
        cfg = home.config().monitoring
        signal = evaluate_staleness(context.instance, cfg)
        state = EpisodeState.parse(context.cursor)
        if signal["day"] is None or signal["day"] == state.last_day:
            return dg.SkipReason("no new day of monitoring since the last evaluation")
        fire, new_state = step_episode(state, signal["day"], signal["reasons"], cfg.cooldown_days)
        context.update_cursor(new_state.dump())
        if not fire:
            why = "; ".join(signal["reasons"]) or "no staleness signal"
            return dg.SkipReason(f"{signal['day']}: {why}")
        return dg.RunRequest(
            run_key=f"staleness-{signal['day']}",
            partition_key=signal["day"],
            asset_selection=[dg.AssetKey(a) for a in training_assets],
            tags={
                "lifecycle/trigger": "staleness",
                "lifecycle/reasons": "; ".join(signal["reasons"])[:200],
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
