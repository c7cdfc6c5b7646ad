"""Validation stage: the decision record and its visible (non-blocking) gate check."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl

from lifecycle_assets.lineage import code_version
from lifecycle_assets.partitions import daily, partition_day
from lifecycle_assets.registry.registry import served_before
from lifecycle_assets.resources.alerts import AlertSinkResource
from lifecycle_assets.resources.home import LifecycleHomeResource
from lifecycle_assets.resources.registry import RegistryResource
from lifecycle_assets.resources.versioning import VersioningResource, write_json
from lifecycle_assets.training.artifact import ModelArtifact
from lifecycle_assets.validation.gate import FAIL, decide

PROMOTABLE = ("PASS", "FIRST_MODEL", "FORCED")


@dg.asset(
    partitions_def=daily,
    group_name="validation",
    kinds={"dvc"},
    check_specs=[
        dg.AssetCheckSpec(
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
    cfg = home.config()
    day = partition_day(context)
    reg = registry.get()
    incumbent = served_before(reg.home, day)
    y = test_split[cfg.problem.label].to_numpy() if test_split.height else None
    challenger_scores = candidate_model.score(test_split)
    production_scores = reg.load(incumbent).score(test_split) if incumbent else None
    if y is None or test_split.height < cfg.windows.min_test_rows:
        record: dict[str, Any] = {
            "decision": FAIL,
            "reason": f"test split has {test_split.height} rows < windows.min_test_rows",
            "metric": cfg.validation.metric,
        }
    else:
        record = decide(
            y, challenger_scores, production_scores, cfg.validation, seed=day.toordinal()
        )
        record["reason"] = _reason(record)
    record.update(
        {
            "day": context.partition_key,
            "challenger_version": candidate_model.version,
            "production_version": incumbent,
            "test_split_tag": f"test_split/{context.partition_key}",
            "test_rows": test_split.height,
            "train_split_tag": candidate_model.metadata.get("train_split_tag"),
            "decided_at": home.now().isoformat(),
            "run_id": context.run_id,
            **code_version(),
        }
    )
    meta = versioning.publish(
        "validation_report",
        context.partition_key,
        "reports/validation.json",
        lambda path: write_json(path, record),
        message=f"decision {context.partition_key}: {record['decision']} "
        f"({candidate_model.version} vs {incumbent})",
        tag=f"validation/{context.partition_key}",
    )
    if record["decision"] == FAIL:
        alerts.send(
            "gate",
            f"challenger {candidate_model.version} rejected on {context.partition_key}",
            {"reason": record["reason"], "day": context.partition_key},
        )
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
            **meta,
        },
    )
    yield dg.AssetCheckResult(
        check_name="challenger_not_worse",
        passed=record["decision"] in PROMOTABLE,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"decision": record["decision"], "reason": record["reason"]},
    )


def _reason(record: dict[str, Any]) -> str:
    if record["decision"] == "FIRST_MODEL":
        return "no production model yet"
    return (
        f"Δ{record['metric']} = {record['delta']:+.4f}, one-sided {1 - record['alpha']:.0%} "
        f"lower bound {record['delta_lower_bound']:+.4f} vs −margin {-record['margin']:+.4f}"
    )
