"""Offline (batch) predictions: score the items scheduled for a day through the same artifact
and post-processing chain as the service, and publish them to the lookup store.

The items come from the scheduled-items log (`records.read_scheduled`), never from the
simulator directly: in the product a billing system writes that log; here
`log_scheduled_payments` writes the simulator's recurring payments into it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.records import (
    QUARANTINE_SCHEMA,
    SCHEDULED,
    LogWriter,
    ScheduledRecord,
    day_dir,
    is_number,
    parse_time,
)
from lifecycle_assets.serving.lookup import LookupEntry, LookupStore
from lifecycle_assets.serving.postprocess import PostProcessor
from lifecycle_assets.serving.requests import RequestValidator
from lifecycle_assets.training.artifact import ModelArtifact

OFFLINE_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.String(),
    "entity_id": pl.String(),
    "scheduled_time": pl.Datetime("us", "UTC"),
    "score": pl.Float64(),
    "probability": pl.Float64(),
    "decision": pl.String(),
    "rule": pl.String(),
    "model_version": pl.String(),
    "computed_at": pl.Datetime("us", "UTC"),
}


def read_scheduled(
    root: Path, day: dt.date, numeric: tuple[str, ...], categorical: tuple[str, ...]
) -> tuple[list[ScheduledRecord], pl.DataFrame]:
    """Items scheduled on `day` (the last record per id wins) and the quarantined lines,
    each with a reason: a bad line is never dropped silently."""
    good: dict[str, ScheduledRecord] = {}
    bad: list[dict[str, Any]] = []
    folder = day_dir(root, SCHEDULED, day)
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                raw = line.strip()
                if not raw:
                    continue
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError:
                    row = None
                reason, feats, when = _vet_scheduled(row, numeric, categorical)
                if reason is not None or not isinstance(row, dict) or when is None:
                    bad.append({"source": path.name, "reason": reason, "raw": raw[:2000]})
                    continue
                good[row["item_id"]] = ScheduledRecord(
                    item_id=row["item_id"],
                    entity_id=str(row.get("entity_id") or ""),
                    scheduled_time=when,
                    features={
                        **{n: float(feats[n]) for n in numeric},
                        **{c: feats[c] for c in categorical},
                    },
                )
    return list(good.values()), pl.DataFrame(bad, schema=QUARANTINE_SCHEMA)


def _vet_scheduled(
    row: Any, numeric: tuple[str, ...], categorical: tuple[str, ...]
) -> tuple[str | None, dict[str, Any], dt.datetime | None]:
    if not isinstance(row, dict):
        return "corrupt_line", {}, None
    if not isinstance(row.get("item_id"), str) or not row["item_id"]:
        return "missing_item_id", {}, None
    when = parse_time(row.get("scheduled_time"))
    if when is None:
        return "bad_scheduled_time", {}, None
    feats = row.get("features")
    if not isinstance(feats, dict):
        return "missing_features", {}, None
    if any(not is_number(feats.get(n)) for n in numeric):
        return "bad_numeric_feature", {}, None
    if any(not isinstance(feats.get(c), str) for c in categorical):
        return "bad_categorical_feature", {}, None
    return None, feats, when


def log_scheduled_payments(writer: LogWriter, sim: Any, day_index: int) -> int:
    """Write the simulator's payments scheduled for day_index + 1 to the scheduled-items log
    (they are known on day_index); returns how many."""
    items = sim.scheduled_payments(day_index)
    writer.write_scheduled(
        [
            ScheduledRecord(
                item_id=p.scheduled_payment_id,
                entity_id=p.card_id,
                scheduled_time=p.scheduled_time,
                features=dict(p.features),
            )
            for p in items
        ]
    )
    writer.flush()
    return len(items)


def score_items(
    items: Sequence[ScheduledRecord],
    artifact: ModelArtifact | None,
    chain: PostProcessor,
    computed_at: dt.datetime,
    validator: RequestValidator | None = None,
) -> list[LookupEntry]:
    """One batch call through the artifact and the chain; no artifact → features only.

    The checks `/predict` applies hold here too (`PostProcessor.score`): an item whose
    features `validator` would refuse (outside their domain, beyond float32), or whose score
    is not finite, is stored unscored with the rule saying why (`review` for a binary
    task), never decided."""
    stamp = computed_at.astimezone(dt.UTC).isoformat()
    if artifact is None or not items:
        return [
            LookupEntry(
                it.item_id,
                it.entity_id,
                it.scheduled_time.isoformat(),
                _json(it.features),
                None,
                None,
                None,
                None,
                None,
                stamp,
            )
            for it in items
        ]
    feats = [it.features for it in items]
    valid = None if validator is None else [validator.accepts(f) for f in feats]
    scored = chain.score(artifact, feats, [it.entity_id for it in items], valid)
    return [
        LookupEntry(
            it.item_id,
            it.entity_id,
            it.scheduled_time.isoformat(),
            _json(it.features),
            row.score,
            row.outcome.probability,
            row.outcome.decision,
            row.outcome.rule,
            artifact.version,
            stamp,
        )
        for it, row in zip(items, scored, strict=True)
    ]


def _json(features: dict[str, Any]) -> str:
    return json.dumps(features, separators=(",", ":"), allow_nan=False)


def publish_offline_predictions(
    logs: Path,
    config: LifecycleConfig,
    day: dt.date,
    artifact: ModelArtifact | None,
    store: LookupStore,
    computed_at: dt.datetime,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Score the items scheduled on `day` and swap them into the store.

    Returns the scored rows (the asset's value) and the published generation."""
    problem = config.problem
    items, quarantine = read_scheduled(
        logs, day, problem.numeric_features, problem.categorical_features
    )
    entries = score_items(
        items,
        artifact,
        PostProcessor(config.postprocessing),
        computed_at,
        RequestValidator(problem),
    )
    generation = store.publish(
        entries,
        {
            "scheduled_date": day.isoformat(),
            "model_version": artifact.version if artifact is not None else None,
            "computed_at": computed_at.astimezone(dt.UTC).isoformat(),
            "quarantined": quarantine.height,
        },
    )
    frame = pl.DataFrame(
        [
            {
                "item_id": e.item_id,
                "entity_id": e.entity_id,
                "scheduled_time": dt.datetime.fromisoformat(e.scheduled_time),
                "score": e.score,
                "probability": e.probability,
                "decision": e.decision,
                "rule": e.rule,
                "model_version": e.model_version,
                "computed_at": dt.datetime.fromisoformat(e.computed_at),
            }
            for e in entries
        ],
        schema=OFFLINE_SCHEMA,
    )
    return frame, generation
