"""Validation stage: the decision record and its visible (non-blocking) gate check."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from lifecycle_assets.decision import Decision, promotable, write_reports
from lifecycle_assets.defs.partitions import daily, daily_check, partition_day
from lifecycle_assets.defs.registry.jobs import materialization_reporter
from lifecycle_assets.defs.resources.alerts import AlertSinkResource
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.defs.resources.registry import RegistryResource
from lifecycle_assets.defs.resources.versioning import VersioningResource
from lifecycle_assets.registry.queries import shadow_in_flight
from lifecycle_assets.training.artifact import ModelArtifact
from lifecycle_assets.validation.record import build_record, recorded_decision
from lifecycle_assets.validation.shadow import run_shadow_gate

__all__ = ["shadow_report", "validation_report"]


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
    repo, day = versioning.repo(), partition_day(context)
    # A rerun of a day decided before its run failed (the promotion's push) keeps the
    # decision its tag recorded: one decision per day.
    record = recorded_decision(reg.home, repo, reg, day, candidate_model) or build_record(
        reg.home,
        repo,
        reg,
        day,
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
        lambda path: write_reports(path, record),
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


@dg.asset(
    partitions_def=daily,
    group_name="validation",
    kinds={"git"},
    # After the day's release step: a shadow promoted today is what served after day D
    # (the served ledger), whatever that step carried over.
    deps=["production_model"],
    output_required=False,
)
def shadow_report(
    context: dg.AssetExecutionContext,
    home: LifecycleHomeResource,
    registry: RegistryResource,
    alerts: AlertSinkResource,
) -> Iterator[dg.Output]:
    """The shadow gate of day D (validation/shadow.py): once the labels of the shadow's
    window have matured, the paired gate on its live rows promotes it or clears it. No value
    on a day with nothing to decide."""
    h = home.get()
    outcome = run_shadow_gate(
        h,
        partition_day(context),
        actor=f"dagster:{context.run_id}",
        run_id=context.run_id,
        report=materialization_reporter(context.log_event),
    )
    if outcome is None:
        shadow = shadow_in_flight(h, registry.get())
        context.log.info(
            "nothing in shadow"
            if shadow is None
            else f"{shadow.version} in shadow on {shadow.first} … {shadow.last}: its labels "
            f"mature on {shadow.matures_on}"
        )
        return
    record = outcome.record
    version = record["challenger_version"]
    if record["decision"] != Decision.PASS and not record.get("inconclusive"):
        # As for the offline gate: an inconclusive FAIL (better, too few rows to show it) is
        # no alert; a rejected or abandoned shadow is.
        alerts.send(
            "gate",
            f"shadow {version} {'abandoned' if record.get('abandoned') else 'rejected'} on "
            f"{context.partition_key}",
            {
                "reason": record["reason"],
                "day": context.partition_key,
                "challenger_version": version,
                "production_version": record["production_version"],
                "offline_day": record["offline_day"],
                "stage": "shadow",
            },
        )
    yield dg.Output(
        record,
        metadata={
            "decision": record["decision"],
            "reason": record["reason"],
            "action": record["action"],
            "shadow_version": str(version),
            "production_version": str(record["production_version"]),
            "offline_day": record["offline_day"],
            "rows": record["test_rows"],
            "delta_lower_bound": record.get("delta_lower_bound"),
            "moves": len(outcome.moves),
            **outcome.meta,
        },
    )
