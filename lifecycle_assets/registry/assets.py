"""The production model: what served after day D's decision (promoted or carried over)."""

from typing import Any

import dagster as dg

from lifecycle_assets.partitions import daily, partition_day
from lifecycle_assets.registry.registry import record_served
from lifecycle_assets.resources.home import LifecycleHomeResource
from lifecycle_assets.resources.registry import RegistryResource
from lifecycle_assets.resources.versioning import VersioningResource
from lifecycle_assets.training.artifact import ModelArtifact, save_artifact
from lifecycle_assets.validation.assets import PROMOTABLE


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
    decision = validation_report["decision"]
    promote = decision in PROMOTABLE
    version = validation_report["challenger_version" if promote else "production_version"]
    if version is None:
        raise dg.Failure(f"decision {decision} on {context.partition_key} leaves no model to serve")
    # Verify before the alias moves: the registered artifact loads (hash checked) and scores.
    model = reg.load(version)
    model.score_rows([_example_row(model)])
    if promote and reg.alias("production") != version:
        reg.move_alias(
            "production",
            version,
            actor=f"dagster:{context.run_id}",
            reason=f"{decision} on {context.partition_key}",
            when=home.now(),
        )
    record_served(reg.home, partition_day(context), version)
    meta = versioning.publish(
        "production_model",
        context.partition_key,
        "models/production",
        lambda folder: save_artifact(model, folder),
        message=f"production {context.partition_key}: {version} "
        f"({'promoted' if promote else 'carried over'}, {decision})",
        tag=None,
        extra_paths=("registry",),
    )
    context.add_output_metadata(
        {"model_version": version, "decision": decision, "promoted": promote, **meta}
    )
    return model


def _example_row(model: ModelArtifact) -> dict[str, Any]:
    pre = model.preprocessor
    row: dict[str, Any] = {c: m for c, m in zip(pre.numeric, pre.means, strict=True)}
    row.update({c: (pre.vocabularies[c] or ("",))[0] for c in pre.categorical})
    return row
