"""`lifecycle replay`: a labelled file replayed as traffic through the whole loop, once per
retraining policy, each policy in its own lifecycle home (docs/replay.md).

Per period (= one loop day, see `replay.source`): the clock moves to the loop day; the
period's requests go through the serving code path (`ServingRuntime`: validation, scoring,
post-processing, logging — in process, or through a real `bentoml serve` with
`serve="http"`); the labels that arrive that day go to feedback; then the loop's own day runs
as Dagster runs (`automation.loop.run_day`): logs → monitoring → late labels → datasets and,
if the policy says so, a challenger, the gate and the production model. The policy decides
between the monitoring and the training stage, from the day's monitoring assets.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from lifecycle_assets.automation.loop import instance_for, run_day
from lifecycle_assets.config import LifecycleConfig, load_config
from lifecycle_assets.decision import Decision
from lifecycle_assets.defs.monitoring.sensors import decide_staleness
from lifecycle_assets.defs.partitions import daily
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.home import LifecycleHome, set_simulated_today
from lifecycle_assets.home_setup import init_home, set_shadow_days
from lifecycle_assets.metrics import HIGHER_IS_BETTER, metric
from lifecycle_assets.monitoring.estimate import covered, estimate_error
from lifecycle_assets.monitoring.metrics import prediction_bias
from lifecycle_assets.monitoring.staleness import EpisodeState, Reason
from lifecycle_assets.registry.registry import Registry
from lifecycle_assets.replay.source import (
    ENTITY_ID,
    EVENT_TIME,
    LABEL,
    LABEL_TIME,
    REQUEST_ID,
    Period,
    Traffic,
    load_table,
    prepare_traffic,
)
from lifecycle_assets.serving.process import ServiceProcess
from lifecycle_assets.serving.requests import MAX_BATCH
from lifecycle_assets.serving.transport import InProcess, OverHttp, Transport, wait_for_version
from lifecycle_assets.storage import AssetStore
from lifecycle_assets.validation.record import shadow_summary

# `shadow`: retrains as `periodic` does, with the shadow stage on (`release.shadow_days`
# from the config, or 1 day where it is off): a challenger that passes the offline gate
# serves in shadow, and the shadow gate on its live rows decides its promotion.
POLICIES = ("never", "periodic", "triggered", "shadow")
MARKER = "replay-home.json"
Serve = Literal["inprocess", "http"]


class ReplayError(LifecycleError, RuntimeError):
    """The replay cannot run here; the message says why and what to do."""


def _json_time(value: dt.datetime) -> str:
    return value.isoformat()


def serve_period(transport: Transport, rows: pl.DataFrame, config: LifecycleConfig) -> dict:
    """Send one period's requests; returns the served scores and versions."""
    p = config.problem
    feats = rows.select(*p.numeric_features, *p.categorical_features).to_dicts()
    ids, entities, times = rows[REQUEST_ID], rows[ENTITY_ID], rows[EVENT_TIME]
    scores: list[float | None] = []
    versions: set[str] = set()
    for start in range(0, rows.height, MAX_BATCH):
        stop = min(start + MAX_BATCH, rows.height)
        batch = [
            {
                "request_id": ids[i],
                "entity_id": entities[i],
                "event_time": _json_time(times[i]),
                "features": feats[i],
            }
            for i in range(start, stop)
        ]
        for pred in transport.predict(batch):
            scores.append(pred["score"])
            if pred["model_version"] is not None:
                versions.add(pred["model_version"])
    return {"scores": scores, "versions": sorted(versions)}


def send_labels(transport: Transport, labels: pl.DataFrame) -> int:
    rows = labels.select(REQUEST_ID, LABEL, LABEL_TIME).rows()
    for start in range(0, len(rows), MAX_BATCH):
        transport.feedback(
            [
                {"request_id": rid, "label": value, "observed_time": _json_time(at)}
                for rid, value, at in rows[start : start + MAX_BATCH]
            ]
        )
    return len(rows)


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def served_quality(scores: Sequence[float | None], labels: pl.Series, metric_name: str) -> dict:
    """Quality of what was served in a period against the file's labels (all of them, not
    only those that reached the loop): the policy comparison's yardstick."""
    s = np.array([np.nan if x is None else x for x in scores], dtype=np.float64)
    y = labels.to_numpy().astype(np.float64)
    ok = np.isfinite(s) & np.isfinite(y)
    out: dict[str, Any] = {"scored": int(np.isfinite(s).sum()), "evaluated": int(ok.sum())}
    if not ok.any() or ok.sum() != np.isfinite(y).sum():
        # Unscored (cold start) or partly unscored: no quality for the period.
        return {**out, "quality": None, "bias": None, "bias_low": None, "bias_high": None}
    yv, sv = y[ok], s[ok]
    quality = None
    if metric_name not in ("roc_auc", "pr_auc") or 0 < yv.sum() < len(yv):
        quality = _finite(metric(metric_name, yv, sv))
    bias = prediction_bias(sv, yv)
    return {
        **out,
        "quality": quality,
        "mean_prediction": float(sv.mean()),
        "mean_label": float(yv.mean()),
        "bias": _finite(bias["bias"]),
        "bias_low": _finite(bias["low"]),
        "bias_high": _finite(bias["high"]),
    }


def _read_asset(home: LifecycleHome, asset: str, day: dt.date) -> dict[str, Any] | None:
    return AssetStore.of(home).read_record(asset, day.isoformat())


def _alerts(home: LifecycleHome) -> list[dict[str, Any]]:
    if not home.alerts_path.is_file():
        return []
    out = []
    for line in home.alerts_path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


@dataclass
class PolicyState:
    """What a policy remembers between periods."""

    policy: str
    episode: EpisodeState = field(default_factory=EpisodeState)
    reasons: list[Reason] = field(default_factory=list)
    fired: bool = False


def decide_training(
    state: PolicyState,
    home: LifecycleHome,
    config: LifecycleConfig,
    day: dt.date,
    production: str | None,
) -> bool:
    """The retraining policy for loop day `day`, after its monitoring has run.

    `triggered` takes the daemon sensor's decision (`decide_staleness`), on the day's
    monitoring in the home's Dagster instance, with the sensor's episode state kept per
    policy between days."""
    state.reasons, state.fired = [], False
    if state.policy in ("periodic", "shadow") or production is None:
        return True  # cold start: every policy trains until a first model exists
    if state.policy == "never":
        return False
    versions = Registry(home, config.problem.name).versions()
    fire, state.episode, signal = decide_staleness(
        instance_for(home), config, versions, state.episode
    )
    if signal["day"] == day.isoformat():
        state.reasons = signal["reasons"]
    state.fired = fire
    return fire


def replay_policy(
    home: LifecycleHome,
    traffic: Traffic,
    policy: str,
    serve: Serve = "inprocess",
    echo: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Replay every period through one home under one policy; returns its results."""
    home.activate()
    config = home.config()
    registry = Registry(home, config.problem.name)
    state = PolicyState(policy)
    transport: Transport = (
        OverHttp(ServiceProcess(home).start())
        if serve == "http"
        else InProcess(home, f"replay-{policy}")
    )
    periods: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for span in traffic.periods:
            t_period = time.perf_counter()
            day = span.loop_day
            set_simulated_today(home, day)
            rows = traffic.requests(span.index)
            production_before = registry.alias("production")
            t0 = time.perf_counter()
            wait_for_version(transport, production_before)
            served = serve_period(transport, rows, config)
            labels = send_labels(transport, traffic.labels_arriving(day))
            transport.sync()
            serve_s = time.perf_counter() - t0
            alerts_before = len(_alerts(home))
            outcome = run_day(
                home,
                day,
                should_train=partial(
                    decide_training, state, home, config, production=production_before
                ),
            )
            decision = outcome.decision or {}
            production = registry.alias("production")
            drift = _read_asset(home, "prediction_drift", day) or {}
            matured = day - dt.timedelta(days=config.labels.maturity_days)
            live = _read_asset(home, "live_quality", matured) or {}
            quality = served_quality(served["scores"], rows[LABEL], config.validation.metric)
            estimated = period_estimate(_read_asset(home, "live_quality", day) or {}, quality)
            alerts = _alerts(home)[alerts_before:]
            record = {
                "index": span.index,
                "loop_day": day.isoformat(),
                "data_start": span.data_start.isoformat(),
                "data_end": span.data_end.isoformat(),
                "requests": rows.height,
                "served_by": served["versions"],
                "labels_sent": labels,
                **quality,
                **estimated,
                "max_psi": drift.get("max_psi"),
                "max_psi_feature": drift.get("max_psi_feature"),
                "loop_live_quality": live.get("quality") if live.get("matured") else None,
                "loop_live_quality_day": matured.isoformat() if live else None,
                "staleness_reasons": [r.text for r in state.reasons],
                "staleness_onset": state.episode.onset if state.reasons else None,
                "staleness_episodes": {
                    kind: {"onset": e.onset, "closed": e.closed}
                    for kind, e in state.episode.episodes.items()
                },
                "trigger_fired": state.fired,
                "trained": "training" in outcome.stage_seconds,
                "decision": decision.get("decision"),
                "reason": decision.get("reason"),
                # where a promotable challenger went (production, shadow, held)
                "stage": decision.get("stage"),
                "shadow_gate": _shadow_gate(outcome.shadow),
                "challenger": decision.get("challenger_version"),
                "incumbent": decision.get("production_version"),
                "challenger_metric": decision.get("challenger_metric"),
                "production_metric": decision.get("production_metric"),
                "production_before": production_before,
                "production_after": production,
                "promoted": production != production_before,
                "alerts": [a.get("kind") for a in alerts],
                # of those, the shadow gate's (a rejected shadow), not the day's challenger's
                "shadow_alerts": sum(1 for a in alerts if a.get("stage") == "shadow"),
                "seconds": {
                    "serve": round(serve_s, 3),
                    **{k: round(v, 3) for k, v in outcome.stage_seconds.items()},
                    "dagster_overhead": round(outcome.dagster_seconds, 3),
                    "period": round(time.perf_counter() - t_period, 3),
                },
            }
            periods.append(record)
            q = record["quality"]
            echo(
                f"{policy:9} {span.index + 1}/{len(traffic.periods)} {day} "
                f"({span.data_start.date()}): {rows.height} requests, labels {labels}, "
                f"quality {'—' if q is None else f'{q:.4f}'}, "
                f"{record['decision'] or ('no training' if not record['trained'] else '—')}"
                f", production {production or '—'}"
            )
    finally:
        transport.close()
    wall = time.perf_counter() - started
    return summarise_policy(policy, periods, wall, config)


def _shadow_gate(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The period's shadow gate, if it decided: which version, and its decision's summary."""
    if record is None:
        return None
    return {"challenger_version": record["challenger_version"], **shadow_summary(record)}


def period_estimate(young: dict[str, Any], quality: dict[str, Any]) -> dict[str, Any]:
    """The loop's label-free estimate of a period (its `live_quality`, computed the day the
    period was served, before any label matured) against the period's realised quality
    (every label in the file): estimated − realised, and whether the interval covers it."""
    est = _finite(young.get("estimated_quality"))
    low, high = _finite(young.get("estimated_low")), _finite(young.get("estimated_high"))
    realised = quality.get("quality")
    return {
        "estimated_quality": est,
        "estimated_low": low,
        "estimated_high": high,
        "estimate_error": estimate_error(est, realised),
        "estimate_covers": covered(low, high, realised),
    }


def summarise_estimate(periods: list[dict[str, Any]]) -> dict[str, Any]:
    """The estimate's record over a policy's periods: median |estimated − realised| and the
    share of periods whose interval covers the realised value, over the periods that have
    both."""
    errors = [p["estimate_error"] for p in periods if p.get("estimate_error") is not None]
    covers = [p["estimate_covers"] for p in periods if p.get("estimate_covers") is not None]
    return {
        "periods": len(errors),
        "median_abs_error": float(np.median(np.abs(errors))) if errors else None,
        "mean_error": float(np.mean(errors)) if errors else None,
        "max_abs_error": float(np.max(np.abs(errors))) if errors else None,
        "coverage": float(np.mean(covers)) if covers else None,
    }


def summarise_policy(
    policy: str, periods: list[dict[str, Any]], wall: float, config: LifecycleConfig
) -> dict[str, Any]:
    decisions = [p["decision"] for p in periods if p["decision"]]
    qualities = [p["quality"] for p in periods if p["quality"] is not None]
    return {
        "policy": policy,
        "retrains": sum(1 for p in periods if p["challenger"]),
        "promotions": sum(1 for p in periods if p["promoted"]),
        "rejections": decisions.count(Decision.FAIL),
        "shadow_gates": dict(
            sorted(
                Counter(p["shadow_gate"]["action"] for p in periods if p.get("shadow_gate")).items()
            )
        ),
        "decisions": {k: decisions.count(k) for k in sorted(set(decisions))},
        "alerts": sum(len(p["alerts"]) for p in periods),
        "triggers_fired": sum(1 for p in periods if p["trigger_fired"]),
        "mean_quality": float(np.mean(qualities)) if qualities else None,
        "estimate": summarise_estimate(periods),
        "final_production": periods[-1]["production_after"] if periods else None,
        "wall_seconds": round(wall, 2),
        "seconds_per_period": round(wall / len(periods), 3) if periods else None,
        "periods": periods,
    }


def compare(policies: dict[str, dict[str, Any]], higher_is_better: bool) -> dict[str, Any]:
    """Mean quality per policy over the periods in which every policy served a model."""
    names = list(policies)
    n = min(len(policies[k]["periods"]) for k in names) if names else 0
    common = [
        i for i in range(n) if all(policies[k]["periods"][i]["quality"] is not None for k in names)
    ]
    means = {
        k: (
            float(np.mean([policies[k]["periods"][i]["quality"] for i in common]))
            if common
            else None
        )
        for k in names
    }
    ranked = sorted(
        (k for k in names if means[k] is not None),
        key=lambda k: means[k] or 0.0,
        reverse=higher_is_better,
    )
    return {
        "periods_compared": [policies[names[0]]["periods"][i]["loop_day"] for i in common]
        if names
        else [],
        "mean_quality": means,
        "best": ranked[0] if ranked else None,
    }


def prepare_replay_dir(workdir: str | Path) -> Path:
    """DIR for the replay: new, empty, or a previous replay's (replaced); nothing else."""
    root = Path(workdir).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ReplayError(f"{root} is not a directory; pass another --workdir")
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).is_file():
            raise ReplayError(
                f"{root} is not empty and holds no previous replay; pass an empty or new --workdir"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text(json.dumps({"created": dt.datetime.now(dt.UTC).isoformat()}))
    return root


def _replay_one(
    root: Path,
    config_file: str | Path,
    traffic: Traffic,
    policy: str,
    serve: Serve,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """One policy's replay in a home of its own, `root/<policy>`."""
    home = init_home(root / policy, config_file)
    if policy == "shadow" and home.config().release.shadow_days == 0:
        set_shadow_days(home, 1, "the shadow policy")
    return replay_policy(home, traffic, policy, serve, echo)


def _replay_in_child(
    root: Path, config_file: str | Path, traffic: Traffic, policy: str, serve: Serve, lines: Any
) -> dict[str, Any]:
    """`_replay_one` in a worker process; its progress lines go to the parent's queue."""
    return _replay_one(root, config_file, traffic, policy, serve, lines.put)


def _replay_in_processes(
    root: Path,
    config_file: str | Path,
    traffic: Traffic,
    policies: list[str],
    serve: Serve,
    echo: Callable[[str], None],
    jobs: int,
) -> dict[str, dict[str, Any]]:
    """Each policy's replay in a worker process, `jobs` at a time (fresh interpreters: the
    parent's tools and threads are not forked). The workers' progress lines are echoed here
    as they come. The first failure is raised once the replays already running have ended;
    those not yet started do not start."""
    import multiprocessing
    import queue
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")

    def drain(lines: Any) -> None:
        while True:
            try:
                echo(lines.get_nowait())
            except queue.Empty:
                return

    with context.Manager() as manager:
        lines = manager.Queue()
        with ProcessPoolExecutor(max_workers=min(jobs, len(policies)), mp_context=context) as pool:
            futures = {
                policy: pool.submit(
                    _replay_in_child, root, config_file, traffic, policy, serve, lines
                )
                for policy in policies
            }
            pending = set(futures.values())
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                drain(lines)
                error = next((e for f in finished if (e := f.exception()) is not None), None)
                if error is not None:
                    for future in pending:
                        future.cancel()
                    raise error
        drain(lines)
    return {policy: future.result() for policy, future in futures.items()}


def run_replay(
    data: str | Path,
    config_file: str | Path,
    workdir: str | Path,
    policies: Sequence[str] | None = None,
    period: Period | None = None,
    serve: Serve = "inprocess",
    echo: Callable[[str], None] = lambda _: None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Replay `data` once per policy under `workdir`; writes replay.json and report.html.

    `jobs` > 1 replays up to that many policies at once, each in a process of its own (every
    policy has its own home, and a home's tools are pointed at through the process's
    environment); the results are the same as one after the other, the seconds are not."""
    from lifecycle_assets.replay.report import write_report

    config = load_config(config_file)
    chosen = tuple(policies or config.replay.policies)
    unknown = sorted(set(chosen) - set(POLICIES))
    if unknown:
        raise ReplayError(f"unknown policies {unknown}; choose from {list(POLICIES)}")
    if jobs < 1:
        raise ReplayError(f"jobs must be at least 1, not {jobs}")
    per: Period = period or config.replay.period
    last = dt.date.fromisoformat(daily.get_last_partition_key() or "2026-01-01")
    traffic = prepare_traffic(load_table(data), config, per, last)
    root = prepare_replay_dir(workdir)
    echo(
        f"replaying {traffic.frame.height} requests in {len(traffic.periods)} {per}s "
        f"({traffic.periods[0].data_start.date()} … {traffic.periods[-1].data_end.date()}) as "
        f"loop days from {traffic.loop_start}; policies {', '.join(chosen)}; serving {serve}"
    )
    started = time.perf_counter()
    policies_once = list(dict.fromkeys(chosen))
    if jobs > 1 and len(policies_once) > 1:
        results = _replay_in_processes(root, config_file, traffic, policies_once, serve, echo, jobs)
    else:
        results = {
            policy: _replay_one(root, config_file, traffic, policy, serve, echo)
            for policy in policies_once
        }
    higher = HIGHER_IS_BETTER[config.validation.metric]
    summary = {
        "data": str(Path(data).resolve()),
        "config": str(Path(config_file).resolve()),
        "problem": config.problem.name,
        "task": config.problem.task,
        "metric": config.validation.metric,
        "higher_is_better": higher,
        "period": per,
        "periods": len(traffic.periods),
        "requests": traffic.frame.height,
        "rejected": traffic.rejected,
        "mapping": {
            "loop_start": traffic.loop_start.isoformat(),
            "one_loop_day_is": f"one {per} of data",
            "maturity_periods": config.labels.maturity_days,
            "train_periods": config.windows.train_days,
            "test_periods": config.windows.test_days,
        },
        "serving": serve,
        "psi_threshold": config.monitoring.psi_threshold,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "comparison": compare(results, higher),
        "policies": results,
    }
    (root / "replay.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    write_report(summary, root / "report.html")
    return summary
