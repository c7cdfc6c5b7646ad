"""The shadow gate (docs/validation-and-promotion.md, "The shadow stage"): once the labels of
a shadow's window have matured, the paired gate on the live rows it was scored on decides
whether it replaces production.

A challenger that passed the offline gate on day S with `release.shadow_days` N serves in
shadow on days S + 1 … S + N: the service logs, for every prediction, production's `score`
and the shadow's `shadow_score` (docs/serving.md, "Shadow"). On the first day those days'
labels have matured (S + N + `labels.maturity_days`, the rule `labeled_examples` marks
`label_matured` by), `decide_shadow` collects the window's labelled rows that carry the
shadow's score and were answered by today's production, and runs `gate.decide` on them — the
same paired bootstrap, metric, margin, α, seed rule and guards as the offline gate — with the
shadow's score as the challenger and production's as the incumbent. Too few such rows (below
`windows.min_test_rows`) abandon the shadow instead: nothing to decide on.

`run_shadow_gate` applies the decision crash-safely: the record is stored first (the day's
`shadow_report` value), then the registry moves (`promotion.settle_shadow`: promotion moves
`production` and clears `shadow` in one write of aliases.json), then `registry/` is committed
with the record's copy under `registry/shadow/`. A rerun after a crash finds the stored
record and finishes what it says, never deciding twice; a registry the record no longer
describes (the shadow already cleared or moved by hand) is left as it is.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from lifecycle_assets.config import LifecycleConfig, ValidationConfig
from lifecycle_assets.decision import Decision, DecisionRecord, ShadowAction
from lifecycle_assets.files import write_atomic
from lifecycle_assets.home import LifecycleHome, now
from lifecycle_assets.lineage import code_version
from lifecycle_assets.registry.promotion import settle_shadow
from lifecycle_assets.registry.queries import SHADOW_REPORT, ShadowInFlight, shadow_in_flight
from lifecycle_assets.registry.registry import Registry, move_message, registry_dir
from lifecycle_assets.storage import AssetStore
from lifecycle_assets.training.artifact import save_artifact
from lifecycle_assets.validation.record import (
    DecisionError,
    as_jsonable,
    compare_gate_results,
    evaluate_scores,
    gate_seed,
)
from lifecycle_assets.versioning.publish import publish_stage
from lifecycle_assets.versioning.repo import VersionedRepo

# Where the git-tracked copy of each day's shadow decision (`SHADOW_REPORT`) goes beside the
# registry it moved.
SHADOW_RECORDS = "shadow"
# What a change made outside the run's own outputs reports (`registry.release.Report`).
Report = Callable[[str, str, dict[str, Any]], None]


SHADOW_COLUMNS = ("model_version", "score", "shadow_version", "shadow_score", "label_matured")


def window_rows(
    home: LifecycleHome, shadow: ShadowInFlight, config: LifecycleConfig
) -> pl.DataFrame | None:
    """The window's labelled rows the shadow scored (`labeled_examples`, which keeps the
    shadow's columns), in (event_time, request_id) order; None while a day of it was last
    computed before its labels matured (the label refresh recomputes it). A day with no
    stored partition, or one written before the shadow stage, adds no rows."""
    store = AssetStore.of(home)
    label = config.problem.label
    keep = [
        "request_id",
        "event_time",
        label,
        *config.problem.categorical_features,
        *SHADOW_COLUMNS,
    ]
    frames = []
    day = shadow.first
    while day <= shadow.last:
        path = store.frame_path("labeled_examples", day.isoformat())
        day += dt.timedelta(days=1)
        if not path.is_file():
            continue
        frame = pl.read_parquet(path)
        if frame.height and not frame["label_matured"].all():
            return None
        if "shadow_version" not in frame.columns:
            continue
        frames.append(
            frame.select([c for c in keep if c in frame.columns]).filter(
                (pl.col("shadow_version") == shadow.version)
                & pl.col("shadow_score").is_not_null()
                & pl.col("score").is_not_null()
                & pl.col(label).is_not_null()
            )
        )
    rows = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    return rows.sort("event_time", "request_id") if rows.height else rows


def shadow_gate(
    window: pl.DataFrame,
    production: str | None,
    config: LifecycleConfig,
    seed: int,
    gate: ValidationConfig | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """(the window's rows `production` answered, the paired gate on their logged shadow and
    production scores). Paired against the production the shadow would replace: rows
    another version answered (a rollback or a release during the window) say nothing about
    that comparison."""
    served = window.filter(pl.col("model_version") == production) if window.height else window
    record = evaluate_scores(
        served,
        lambda: served["shadow_score"].cast(pl.Float64).to_numpy(),
        lambda: served["score"].cast(pl.Float64).to_numpy(),
        config,
        seed=seed,
        gate=gate,
    )
    return served, record


def decide_shadow(
    home: LifecycleHome,
    day: dt.date,
    registry: Registry,
    config: LifecycleConfig,
    *,
    actor: str,
    run_id: str | None = None,
) -> dict[str, Any] | None:
    """Day D's shadow decision record; None when nothing is in shadow or its window's labels
    have not matured yet."""
    shadow = shadow_in_flight(home, registry)
    if shadow is None or day < shadow.matures_on:
        return None
    found = window_rows(home, shadow, config)
    if found is None:
        return None
    production = registry.alias("production")
    served, record = shadow_gate(found, production, config, gate_seed(config, day))
    abandoned = served.height < config.windows.min_test_rows or served.height == 0
    if abandoned:
        record["reason"] = (
            f"abandoned: {served.height} labelled rows carry {shadow.version}'s shadow score "
            f"beside {production}'s (windows.min_test_rows {config.windows.min_test_rows})"
        )
    passed = record["decision"] == Decision.PASS
    action = (
        ShadowAction.CLEAR
        if not passed
        else ShadowAction.REQUEST_APPROVAL
        if config.registry.approval == "manual"
        else ShadowAction.PROMOTE
    )
    offline = shadow.offline or {}
    record.update(
        {
            "kind": "shadow",
            "day": day.isoformat(),
            "challenger_version": shadow.version,
            "production_version": production,
            "abandoned": abandoned,
            "action": action,
            "offline_day": shadow.offline_day.isoformat(),
            "offline": {
                k: offline.get(k)
                for k in ("decision", "metric", "delta", "delta_lower_bound", "margin", "n_rows")
            },
            "shadow_days": shadow.shadow_days,
            "window": [shadow.first.isoformat(), shadow.last.isoformat()],
            "window_rows": found.height,
            "other_production_rows": found.height - served.height,
            "validation": config.validation.model_dump(mode="json"),
            "decided_at": now(home).isoformat(),
            "actor": actor,
            "run_id": run_id,
            **code_version(),
        }
    )
    return DecisionRecord.checked(as_jsonable(record))


def load_shadow_record(home: LifecycleHome, day: str) -> dict[str, Any] | None:
    """The shadow decision stored for `day`, None when there is none."""
    return AssetStore.of(home).read_record(SHADOW_REPORT, day)


def recheck_shadow(home: LifecycleHome, day: str) -> dict[str, Any]:
    """Recompute the shadow decision of `day` from the live rows of its window as the loop
    stores them now (`labeled_examples`: each row's logged production and shadow scores and
    its matured label) with the gate settings and seed the decision recorded. The same rows
    (by their hash) and the same numbers reproduce it; a label that changed since (a late
    backfill) or a row gone shows as a difference."""
    record = load_shadow_record(home, day)
    if record is None:
        raise DecisionError(f"no shadow decision is stored for {day}")
    config = home.config()
    first, last = (dt.date.fromisoformat(str(d)) for d in record["window"])
    shadow = ShadowInFlight(
        version=str(record["challenger_version"]),
        offline_day=dt.date.fromisoformat(str(record["offline_day"])),
        shadow_days=int(record["shadow_days"]),
        first=first,
        last=last,
        matures_on=last + dt.timedelta(days=config.labels.maturity_days),
        offline=None,
    )
    found = window_rows(home, shadow, config)
    if found is None:
        raise DecisionError(
            f"the shadow window {first} … {last} of {day} holds a day last computed before its "
            "labels matured: nothing to recheck against until its label refresh has run"
        )
    _, recomputed = shadow_gate(
        found,
        record["production_version"],
        config,
        int(record.get("seed", gate_seed(config, dt.date.fromisoformat(day)))),
        ValidationConfig.model_validate(record["validation"]),
    )
    return compare_gate_results(record, recomputed, [])


@dataclass(frozen=True)
class ShadowOutcome:
    record: dict[str, Any]
    moves: list[dict[str, Any]]
    meta: dict[str, Any]


def run_shadow_gate(
    home: LifecycleHome,
    day: dt.date,
    *,
    actor: str,
    run_id: str | None = None,
    report: Report = lambda *_: None,
) -> ShadowOutcome | None:
    """Decide day D's shadow (or take the decision a crashed run stored) and apply it: the
    registry's moves, the served ledger, and one git commit of `registry/` (with
    `models/production` when the shadow was promoted, reported through `report` as a
    `production_model` materialisation). None when there is nothing to decide today."""
    config = home.config()
    registry = Registry(home, config.problem.name)
    store = AssetStore.of(home)
    key = day.isoformat()
    record = load_shadow_record(home, key)
    if record is None:
        record = decide_shadow(home, day, registry, config, actor=actor, run_id=run_id)
        if record is None:
            return None
        store.write(SHADOW_REPORT, key, record)  # the decision first: a rerun finishes it
    repo = VersionedRepo.of(home)
    with repo.locked():
        settled = settle_shadow(registry, record, day, actor=actor, when=now(home))
        if settled.record is not record:  # the promotion was refused: the shadow is dropped
            record = settled.record
            store.write(SHADOW_REPORT, key, record)
        copy = registry_dir(home) / SHADOW_RECORDS / f"{key}.json"
        copy.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(copy, json.dumps(record, indent=2, sort_keys=True) + "\n")
        message = (
            f"shadow {key}: {record['challenger_version']} {record['decision']}"
            f"{' (abandoned)' if record.get('abandoned') else ''}, {record['action']}"
            + "".join(f"\n\n{move_message(e)}" for e in settled.moves)
        )
        meta: dict[str, Any]
        promoted = settled.artifact
        # Published only while it serves: a rerun long after must not put back an old model.
        if promoted is not None and registry.alias("production") == promoted.version:
            meta = publish_stage(
                repo,
                "production_model",
                key,
                "models/production",
                lambda folder: save_artifact(promoted, folder),
                message=message,
                tag=None,
                extra_paths=("registry",),
            )
            store.write("production_model", key, registry.reference(record["challenger_version"]))
            report(
                "production_model",
                key,
                {
                    "model_version": record["challenger_version"],
                    "previous_version": str(record["production_version"]),
                    "decision": f"shadow {record['decision']}",
                    "promoted": True,
                    **meta,
                },
            )
        else:
            meta = {"git_commit": repo.save_version(message, None, extra_paths=["registry"])}
    return ShadowOutcome(record, settled.moves, meta)
