"""Validation stage: the decision record and its visible (non-blocking) gate check."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from lifecycle_assets.files import write_atomic
from lifecycle_assets.partitions import daily, daily_check, partition_day
from lifecycle_assets.resources.alerts import AlertSinkResource
from lifecycle_assets.resources.home import LifecycleHomeResource
from lifecycle_assets.resources.registry import RegistryResource
from lifecycle_assets.resources.versioning import VersioningResource, write_json
from lifecycle_assets.training.artifact import ModelArtifact
from lifecycle_assets.validation.decision import Decision, gate_metrics, promotable
from lifecycle_assets.validation.record import build_record

__all__ = ["validation_report"]

# The stage's DVC metrics, beside the full record (dvc.yaml).
METRICS_FILE = "metrics.json"


@dg.asset(
    partitions_def=daily,
    group_name="validation",
    kinds={"dvc"},
    check_specs=[
        daily_check(
            "challenger_not_worse",
            asset="validation_report",
            description="Fails visibly on a routine FAIL; not blocking, so production carries over.",
        )
    ],
)
def validation_report(
    context: dg.AssetExecutionContext,
    home: LifecycleHomeResource,
    versioning: VersioningResource,
    registry: RegistryResource,
    alerts: AlertSinkResource,
    candidate_model: ModelArtifact,
    test_split: pl.DataFrame,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Challenger vs the model serving before day D, scored on the identical test rows."""
    reg = registry.get()
    record = build_record(
        reg.home,
        versioning.repo(),
        reg,
        partition_day(context),
        candidate_model,
        test_split,
        actor=f"dagster:{context.run_id}",
        run_id=context.run_id,
    )
    incumbent = record["production_version"]
    meta = versioning.publish(
        "validation_report",
        context.partition_key,
        "reports/validation.json",
        lambda path: _write_reports(path, record),
        message=f"decision {context.partition_key}: {record['decision']} "
        f"({candidate_model.version} vs {incumbent})",
        tag=f"validation/{context.partition_key}",
    )
    if record["decision"] == Decision.FAIL and not record.get("inconclusive"):
        # A routine FAIL is a gate alert; the run itself succeeds (never a broken-run alert).
        # An inconclusive one (better on the metric, too few rows to show it) is not.
        alerts.send(
            "gate",
            f"challenger {candidate_model.version} rejected on {context.partition_key}",
            {
                "reason": record["reason"],
                "day": context.partition_key,
                "challenger_version": candidate_model.version,
                "production_version": incumbent,
            },
        )
    guards = record.get("guards", {})
    yield dg.Output(
        record,
        metadata={
            "decision": record["decision"],
            "reason": record["reason"],
            "challenger_version": str(candidate_model.version),
            "production_version": str(incumbent),
            "challenger_metric": record.get("challenger_metric"),
            "production_metric": record.get("production_metric"),
            "delta_lower_bound": record.get("delta_lower_bound"),
            "guards": dg.MetadataValue.json({k: g["passed"] for k, g in guards.items()}),
            **meta,
        },
    )
    yield dg.AssetCheckResult(
        check_name="challenger_not_worse",
        passed=promotable(record["decision"]),
        severity=(
            dg.AssetCheckSeverity.WARN
            if record.get("inconclusive")
            else dg.AssetCheckSeverity.ERROR
        ),
        metadata={"decision": record["decision"], "reason": record["reason"]},
    )


def _write_reports(path: Path, record: dict[str, Any]) -> None:
    """The full record at `path` (the stage's `reports/validation.json`, staged) and its
    figures beside it in `reports/metrics.json`, the stage's DVC metrics."""
    write_json(path, record)
    write_atomic(path.parent / METRICS_FILE, json.dumps(gate_metrics(record), indent=2) + "\n")
