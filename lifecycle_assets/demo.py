"""`lifecycle demo`: the whole loop on the built-in simulator, on real components.

Each simulated day: payments go through a real `bentoml serve` (`/predict_batch`), matured
chargebacks through `/feedback`, then the day's Dagster runs turn the service's own logs
into datasets, a challenger, a decision and the production model, which the service follows,
and build the deployable Bento of each newly promoted version.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import time
from typing import Any

import numpy as np

from lifecycle_assets.automation.loop import DayOutcome, build_day_bento, run_day
from lifecycle_assets.config import PARTITIONS_START
from lifecycle_assets.decision import Decision, ShadowAction, Stage
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.home import LifecycleHome, resolve_home, set_simulated_today
from lifecycle_assets.home_setup import init_home, set_shadow_days
from lifecycle_assets.metrics import roc_auc
from lifecycle_assets.records import read_predictions
from lifecycle_assets.registry.registry import Registry, alias_version
from lifecycle_assets.serving.bento import bento_built, bento_tag
from lifecycle_assets.serving.process import ServiceProcess
from lifecycle_assets.serving.transport import OverHttp, Transport, wait_for_version
from lifecycle_assets.simulator.fraud import FraudSimulator
from lifecycle_assets.validation.record import shadow_summary

DEFAULT_DAYS = 18
BATCH = 500


def _say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def serve_day(transport: Transport, sim: FraudSimulator, index: int) -> dict[str, Any]:
    """Send the day's payments through /predict_batch; returns counts and live quality."""
    payments = sim.payments(index)
    served, scores, truth, versions = 0, [], [], set()
    for start in range(0, len(payments), BATCH):
        chunk = payments[start : start + BATCH]
        preds = transport.predict(
            [
                {
                    "request_id": p.request_id,
                    "entity_id": p.card_id,
                    "event_time": p.event_time.isoformat(),
                    "features": p.features,
                }
                for p in chunk
            ]
        )
        served += len(preds)
        for p, pred in zip(chunk, preds, strict=True):
            versions.add(pred["model_version"])
            if pred["score"] is not None:
                scores.append(pred["score"])
                truth.append(p.is_fraud)
    quality = (
        roc_auc(np.array(truth), np.array(scores))
        if len(scores) == len(payments) and scores
        else None
    )
    return {"served": served, "quality": quality, "versions": sorted(str(v) for v in versions)}


def send_labels(transport: Transport, sim: FraudSimulator, index: int) -> int:
    labels = sim.chargebacks_arriving(index)
    sent = 0
    for start in range(0, len(labels), BATCH):
        chunk = labels[start : start + BATCH]
        transport.feedback(
            [
                {
                    "request_id": g.request_id,
                    "label": g.label,
                    "observed_time": g.observed_time.isoformat(),
                }
                for g in chunk
            ]
        )
        sent += len(chunk)
    return sent


DEMO_MARKER = "demo.json"


class DemoError(LifecycleError, RuntimeError):
    """The demo cannot run here; the message says why and what to do."""


def prepare_demo_home(
    workdir: str | None, config_file: str | None, shadow_days: int | None = None
) -> LifecycleHome:
    """A fresh home for the demo. A previous demo's home is replaced; any other home with
    state in it is refused, so the demo never mixes its traffic into real logs.
    `shadow_days` (not None) is written into the home's config as `release.shadow_days`:
    the Dagster runs read the home's config, not the demo's."""
    root = resolve_home(workdir)
    if root.exists() and any(root.iterdir()):
        if not (root / DEMO_MARKER).is_file():
            raise DemoError(
                f"{root} holds a lifecycle home that is not a demo's; "
                "pass an empty or new --workdir for the demo"
            )
        shutil.rmtree(root)
    home = init_home(root, config_file)
    (home.root / DEMO_MARKER).write_text(
        json.dumps({"created": dt.datetime.now(dt.UTC).isoformat()})
    )
    if shadow_days is not None:
        set_shadow_days(home, shadow_days, "--shadow-days")
    return home


class _StopRequest:
    """First Ctrl-C: finish the current day's step, then stop cleanly. Second: stop now."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopRequest:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        _say("Ctrl-C: stopping after the current step (press again to stop at once)")

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


def run_demo(
    workdir: str | None = None,
    days: int | None = None,
    seed: int | None = None,
    port: int | None = None,
    config_file: str | None = None,
    bentos: bool = True,
    start_date: dt.date | None = None,
    shadow_days: int | None = None,
    drift_end_day: int | None = None,
) -> dict[str, Any]:
    """The demo; `bentos=False` skips the Bento per promotion (seconds to half a minute each).
    Its days start on `start_date`; None: they end yesterday. `shadow_days` sets
    `release.shadow_days` (None: the config's); `drift_end_day` ends the simulator's drift on
    that day index (`simulation.drift_end_day`)."""
    days = DEFAULT_DAYS if days is None else days
    if days < 1:
        raise DemoError("--days must be at least 1")
    wall0 = time.perf_counter()
    home = prepare_demo_home(workdir, config_file, shadow_days)
    config = home.config()
    if start_date is None:
        # The days up to yesterday (UTC, as the partitions): the latest partitions in the UI.
        start_date = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)
    if start_date < dt.date.fromisoformat(PARTITIONS_START):
        raise DemoError(
            f"the demo would start on {start_date}, before the first partition "
            f"({PARTITIONS_START}); pass a later --start-date or fewer --days"
        )
    simulation: dict[str, Any] = {"start_date": start_date}
    if seed is not None:
        simulation["seed"] = seed
    if drift_end_day is not None:
        drift_day = config.simulation.drift_day
        if drift_day is None or drift_end_day <= drift_day:
            raise DemoError(
                f"--drift-end-day {drift_end_day} must come after the drift "
                f"(simulation.drift_day: {drift_day})"
            )
        simulation["drift_end_day"] = drift_end_day
    config = config.model_copy(
        update={"simulation": config.simulation.model_copy(update=simulation)}
    )
    sim = FraudSimulator(config)
    registry = Registry(home, config.problem.name)
    summary: dict[str, Any] = {
        "completed": False,
        "interrupted": False,
        "home": str(home.root),
        "start_date": sim.date(0).isoformat(),
        "end_date": sim.date(days - 1).isoformat(),
        "days": days,
        "seed": config.simulation.seed,
        "bento_per_promotion": bentos,
        "shadow_days": config.release.shadow_days,
        "drift_day": config.simulation.drift_day,
        "drift_end_day": config.simulation.drift_end_day,
        "run_ids": [],
        "predictions_served": 0,
        "labels_recorded": 0,
        "daily": [],
    }
    _say(f"home {home.root}; {days} simulated days from {summary['start_date']}")
    service = ServiceProcess(home, port=port)
    transport = OverHttp(service, timeout=60)
    never = NeverBaseline(registry)
    dagster_seconds = 0.0
    loop_seconds = 0.0
    work: dict[str, float] = {}
    with _StopRequest() as stop:
        try:
            set_simulated_today(home, sim.date(0))
            t0 = time.perf_counter()
            service.start()
            _say(f"bentoml serve up at {service.url} ({time.perf_counter() - t0:.1f}s)")
            for index in range(days):
                if stop.requested:
                    summary["interrupted"] = True
                    break
                day_summary, outcome = _run_one_day(home, transport, sim, index, never, bentos)
                dagster_seconds += outcome.dagster_seconds
                loop_seconds += outcome.loop_seconds
                for kind, seconds in outcome.work_seconds.items():
                    work[kind] = work.get(kind, 0.0) + seconds
                summary["run_ids"] += [r.run_id for r in outcome.runs]
                summary["predictions_served"] += day_summary["served"]
                summary["labels_recorded"] += day_summary["labels"]
                summary["daily"].append(day_summary)
                q = day_summary["production_quality_roc_auc"]
                _say(
                    f"day {index + 1}/{days} {day_summary['date']}: served "
                    f"{day_summary['served']} (by {', '.join(day_summary['served_by'])}; "
                    f"live ROC-AUC {'—' if q is None else f'{q:.3f}'}), labels "
                    f"{day_summary['labels']}, decision "
                    f"{day_summary['decision'] or '— (collecting labels)'}"
                    f"{_stage_note(day_summary)}, production "
                    f"{day_summary['production_after'] or '—'}"
                )
        except KeyboardInterrupt:
            summary["interrupted"] = True
        finally:
            transport.close()
            _say("service stopped")
    summary.update(_tally(home, registry, summary, config, sim, len(summary["daily"])))
    summary["never_vs_periodic"] = compare_never_periodic(
        summary["daily"], config.simulation.drift_day
    )
    total = time.perf_counter() - wall0
    summary["wall_seconds"] = round(total, 2)
    summary["dagster_seconds"] = round(dagster_seconds, 2)
    summary["dagster_share"] = round(dagster_seconds / total, 4)
    # The loop's stages against the real work inside them (`worktime`): the rest is
    # orchestration, versioning and storage. Serving has its own benchmark.
    worked = sum(work.values())
    summary["loop_seconds"] = round(loop_seconds, 2)
    summary["work_seconds"] = {
        "total": round(worked, 2),
        **{k: round(v, 2) for k, v in work.items()},
    }
    summary["loop_over_work"] = round(loop_seconds / worked, 2) if worked > 0 else None
    summary["completed"] = not summary["interrupted"]
    (home.root / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    _print_summary(summary)
    return summary


class NeverBaseline:
    """The `never retrain` policy on the same traffic: each day's payments scored also by the
    first model ever promoted, which that policy would still be serving."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.version: str | None = None
        self._model: Any = None

    def quality(self, sim: FraudSimulator, index: int) -> float | None:
        if self._model is None:
            moves = [e for e in self.registry.history() if e["alias"] == "production"]
            if not moves:
                return None
            self.version = moves[0]["to"]
            self._model = self.registry.load(moves[0]["to"])
        payments = sim.payments(index)
        scores = self._model.score_rows([p.features for p in payments])
        truth = np.array([p.is_fraud for p in payments])
        return roc_auc(truth, scores) if 0 < truth.sum() < len(truth) else None


def compare_never_periodic(daily: list[dict[str, Any]], drift_index: int | None) -> dict:
    """Mean live ROC-AUC of daily retraining (what served) against never retraining (the first
    model), over the days both served a model, and over those after the drift."""
    both = [
        (i, d)
        for i, d in enumerate(daily)
        if d["production_quality_roc_auc"] is not None
        and d.get("never_quality_roc_auc") is not None
    ]

    def means(rows: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        if not rows:
            return {"days": 0, "never": None, "periodic": None, "periodic_minus_never": None}
        never = float(np.mean([d["never_quality_roc_auc"] for _, d in rows]))
        periodic = float(np.mean([d["production_quality_roc_auc"] for _, d in rows]))
        return {
            "days": len(rows),
            "never": never,
            "periodic": periodic,
            "periodic_minus_never": periodic - never,
        }

    after = [(i, d) for i, d in both if drift_index is not None and i >= drift_index]
    return {
        "metric": "roc_auc",
        "policies": {"never": "the first model, kept", "periodic": "retrained daily (served)"},
        "drift_date": daily[drift_index]["date"]
        if drift_index is not None and drift_index < len(daily)
        else None,
        "all_days": means(both),
        "after_drift": means(after),
    }


def _run_one_day(
    home: LifecycleHome,
    transport: Transport,
    sim: FraudSimulator,
    index: int,
    never: NeverBaseline | None = None,
    bentos: bool = False,
) -> tuple[dict[str, Any], DayOutcome]:
    day = sim.date(index)
    set_simulated_today(home, day)
    timings: dict[str, float] = {}
    # Before the day's run: the first model, if one was promoted on an earlier day.
    never_quality = never.quality(sim, index) if never is not None else None
    t0 = time.perf_counter()
    served = serve_day(transport, sim, index)
    timings["serve"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    labels = send_labels(transport, sim, index)
    timings["feedback"] = time.perf_counter() - t0
    outcome = run_day(home, day)
    if bentos:
        t0 = time.perf_counter()
        bento_run = build_day_bento(home, day, echo=_say)
        if bento_run is not None:
            outcome.runs.append(bento_run)
        outcome.stage_seconds["bento"] = time.perf_counter() - t0
    timings.update(outcome.stage_seconds)
    production = alias_version(home, "production")
    t0 = time.perf_counter()
    if production is not None:
        wait_for_version(transport, production, timeout=30.0)
    timings["service_swap"] = time.perf_counter() - t0
    decision = outcome.decision or {}
    shadow = outcome.shadow
    return {
        "date": day.isoformat(),
        "served": served["served"],
        "served_by": served["versions"],
        "production_quality_roc_auc": served["quality"],
        "never_quality_roc_auc": never_quality,
        "labels": labels,
        "decision": decision.get("decision"),
        "challenger": decision.get("challenger_version"),
        "incumbent": decision.get("production_version"),
        # Where the offline decision sent the challenger (`production`, `shadow`, `held`);
        # None: it may not serve.
        "stage": decision.get("stage"),
        # The shadow gate's decision that day, if it decided.
        "shadow": None
        if shadow is None
        else {"version": shadow["challenger_version"], **shadow_summary(shadow)},
        "production_after": production,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "loop_seconds": round(outcome.loop_seconds, 3),
        "work_seconds": {k: round(v, 3) for k, v in outcome.work_seconds.items()},
    }, outcome


def shadow_stage(day: dict[str, Any]) -> str:
    """A day's release stage in words: where its offline decision sent the challenger
    (`shadow`, `held`) and what the shadow gate decided that day, if it did."""
    return "; ".join(p for p in (_offline_stage(day), _shadow_outcome(day)) if p)


def _offline_stage(day: dict[str, Any]) -> str:
    if day.get("stage") == Stage.SHADOW:
        return f"{day['challenger']} to shadow"
    if day.get("stage") == Stage.HELD:
        return f"{day['challenger']} held"
    return ""


def _shadow_outcome(day: dict[str, Any]) -> str:
    shadow = day.get("shadow")
    if shadow is None:
        return ""
    if shadow["action"] == ShadowAction.PROMOTE:
        return f"{shadow['version']} promoted from shadow"
    if shadow["action"] == ShadowAction.REQUEST_APPROVAL:
        return f"{shadow['version']} passed shadow, awaits approval"
    if shadow["abandoned"]:
        return f"{shadow['version']} shadow abandoned"
    return f"{shadow['version']} rejected in shadow"


def _stage_note(day: dict[str, Any]) -> str:
    """The day line's words after the offline decision: its stage, then the shadow gate's."""
    offline, shadow = _offline_stage(day), _shadow_outcome(day)
    return (f" ({offline})" if offline else "") + (f"; shadow gate: {shadow}" if shadow else "")


def _tally(home, registry, summary, config, sim, days) -> dict[str, Any]:
    logged = 0
    for index in range(days):
        frame, quarantine = read_predictions(
            home.logs,
            sim.date(index),
            config.problem.numeric_features,
            config.problem.categorical_features,
        )
        logged += frame.height + quarantine.height
    decisions = [d["decision"] for d in summary["daily"] if d["decision"]]
    shadows = [d["shadow"] for d in summary["daily"] if d.get("shadow")]
    from_shadow = [s["version"] for s in shadows if s["action"] == ShadowAction.PROMOTE]
    promotions = [e for e in registry.history() if e["alias"] == "production"]
    promoted = sorted({e["to"] for e in promotions}, key=lambda v: int(v[1:]))
    return {
        "predictions_logged": logged,
        "models_trained": len(registry.versions()),
        "models_promoted": len(promotions),
        # With the shadow stage on, an offline PASS is promoted by the shadow gate later.
        "promotions_over_existing": sum(
            1
            for d in summary["daily"]
            if d["decision"] == Decision.PASS
            and d["incumbent"]
            and d.get("stage") in (None, Stage.PRODUCTION)
        )
        + len(from_shadow),
        "models_rejected": decisions.count(Decision.FAIL),
        "sent_to_shadow": sum(1 for d in summary["daily"] if d.get("stage") == Stage.SHADOW),
        "promoted_from_shadow": from_shadow,
        "rejected_in_shadow": [
            s["version"]
            for s in shadows
            if s["action"] == ShadowAction.CLEAR and not s["abandoned"]
        ],
        "decisions": {k: decisions.count(k) for k in sorted(set(decisions))},
        "production_model_version": registry.alias("production"),
        "bentos": [bento_tag(v) for v in promoted if bento_built(home, v)],
    }


def _print_summary(s: dict[str, Any]) -> None:
    print()
    print(
        f"lifecycle demo: {s['start_date']} … {s['end_date']} ({s['days']} days), home {s['home']}"
    )
    print(
        f"  predictions served {s['predictions_served']}, logged {s['predictions_logged']}; labels {s['labels_recorded']}"
    )
    print(
        f"  models trained {s['models_trained']}, promoted {s['models_promoted']} "
        f"(over an existing model {s['promotions_over_existing']}), rejected {s['models_rejected']}"
    )
    shadow = s.get("shadow_days", 0) > 0
    if shadow:
        print(
            f"  shadow stage {s['shadow_days']} day(s): sent to shadow {s['sent_to_shadow']}, "
            f"promoted from shadow {', '.join(s['promoted_from_shadow']) or 'none'}, "
            f"rejected in shadow {', '.join(s['rejected_in_shadow']) or 'none'}"
        )
    print(f"  production model now {s['production_model_version']}")
    if s["bento_per_promotion"]:
        print(
            f"  Bentos {len(s['bentos'])}, one per promoted version: "
            f"BENTOML_HOME={s['home']}/bentoml bentoml list lifecycle"
        )
    header = "  date        served-by  live ROC-AUC  never-retrain  decision     production"
    print(header + ("  shadow stage" if shadow else ""))
    for d in s["daily"]:
        q = d["production_quality_roc_auc"]
        n = d.get("never_quality_roc_auc")
        line = (
            f"  {d['date']}  {','.join(d['served_by']):9}  {'—' if q is None else f'{q:.3f}':12}  "
            f"{'—' if n is None else f'{n:.3f}':13}  "
            f"{d['decision'] or '—':11}  {d['production_after'] or '—'}"
        )
        if shadow:
            line = f"{line:{len(header)}}  {shadow_stage(d)}".rstrip()
        print(line)
    cmp = s.get("never_vs_periodic")
    if cmp:
        for name, part in (("all days", cmp["all_days"]), ("after the drift", cmp["after_drift"])):
            if part["days"]:
                print(
                    f"  daily retraining vs never, {name} ({part['days']}): ROC-AUC "
                    f"{part['periodic']:.3f} vs {part['never']:.3f} "
                    f"({part['periodic_minus_never']:+.3f})"
                )
    ratio = s.get("loop_over_work")
    print(
        f"  wall time {s['wall_seconds']}s; Dagster's share {s['dagster_share']:.1%}; the loop's "
        f"stages {s['loop_seconds']}s for {s['work_seconds']['total']}s of real work"
        + (f" ({ratio:.2f}×)" if ratio is not None else "")
        + f"; summary at {s['home']}/summary.json"
    )
