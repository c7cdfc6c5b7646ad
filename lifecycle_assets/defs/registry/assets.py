"""The production model: what served after day D's decision (promoted or carried over)."""

from typing import Any

import dagster as dg

from lifecycle_assets.decision import Decision, Stage
from lifecycle_assets.defs.partitions import daily, partition_day
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.defs.resources.registry import RegistryResource
from lifecycle_assets.defs.resources.versioning import VersioningResource
from lifecycle_assets.registry.promotion import promote_or_carry_over
from lifecycle_assets.registry.registry import move_message
from lifecycle_assets.registry.release import AWAITING_APPROVAL
from lifecycle_assets.training.artifact import ModelArtifact, save_artifact


@dg.asset(partitions_def=daily, group_name="registry", kinds={"bentoml", "dvc"})
def production_model(
    context: dg.AssetExecutionContext,
    home: LifecycleHomeResource,
    versioning: VersioningResource,
    registry: RegistryResource,
    validation_report: dict[str, Any],
) -> ModelArtifact:
    """Reads the decision record itself: a run selecting only this asset skips upstream checks."""
    reg = registry.get()
    decision_record = validation_report
    if (
        validation_report["decision"] == Decision.PASS
        and validation_report.get("stage", Stage.PRODUCTION) == Stage.PRODUCTION
        and home.config().registry.approval == "manual"
    ):
        # Manual release process: the challenger waits for approval (registry/release.py);
        # the incumbent carries over until someone approves and releases it. One that goes
        # to shadow first waits for its shadow gate.
        reg.request_approval(validation_report, home.now())
        decision_record = {**validation_report, "decision": AWAITING_APPROVAL}
    moves_before = len(reg.history())
    # Verify (hash, load, warm-up) before the alias moves; see registry/promotion.py.
    outcome = promote_or_carry_over(
        reg,
        decision_record,
        partition_day(context),
        actor=f"dagster:{context.run_id}",
        when=home.now(),
    )
    decision, promote, version, model = (
        outcome.decision, outcome.promoted, outcome.version, outcome.artifact
    )  # fmt: skip
    shadowed = outcome.stage == Stage.SHADOW
    meta = versioning.publish(
        "production_model",
        context.partition_key,
        "models/production",
        lambda folder: save_artifact(model, folder),
        message=f"production {context.partition_key}: {version} "
        f"({'promoted' if promote else 'carried over'}, {decision}"
        f"{f'; {outcome.shadow} in shadow' if shadowed else ''})"
        # The audit line of each alias move: actor, time, reason, from and to.
        + "".join(f"\n\n{move_message(e)}" for e in reg.history()[moves_before:]),
        tag=None,
        extra_paths=("registry",),
    )
    context.add_output_metadata(
        {
            "model_version": version,
            "decision": decision,
            "promoted": promote,
            "stage": str(outcome.stage),
            "shadow_version": str(outcome.shadow),
            **meta,
        }
    )
    return model
