"""Manual approval from the Dagster UI: launch `approve_model` with the version as config."""

from collections.abc import Callable
from typing import Any

import dagster as dg

from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.registry.release import approve, check_version_arg, release


class ApprovalConfig(dg.Config):
    version: str
    reason: str = "approved in the Dagster UI after reviewing the model card"
    release: bool = True


def materialization_reporter(
    emit: Callable[[dg.AssetMaterialization], object],
) -> Callable[[str, str, dict[str, Any]], None]:
    """The release process's `report` (asset, partition, metadata) as a materialisation
    handed to `emit`: a run's `log_event`, or the instance's runless event report."""

    def report(asset: str, partition: str, metadata: dict[str, Any]) -> None:
        emit(dg.AssetMaterialization(asset_key=asset, partition=partition, metadata=metadata))

    return report


def release_via_dagster(
    context: dg.OpExecutionContext,
    home: LifecycleHome,
    version: str,
    reason: str,
    release_now: bool,
) -> dict[str, Any]:
    """Approve, and (by default) release, as the run: the production_model materialisation
    is an event of this run."""
    actor = f"dagster-ui:{context.run_id}"
    report = materialization_reporter(context.log_event)
    out: dict[str, Any] = {"approved": approve(home, version, actor=actor, reason=reason)}
    if release_now:
        out["released"] = release(home, version, actor=actor, reason=reason, report=report)
    return out


@dg.op(tags={"kind": "registry"})
def approve_and_release(
    context: dg.OpExecutionContext, config: ApprovalConfig, home: LifecycleHomeResource
) -> None:
    """Approve a version the gate passed and (unless `release: false`) put it in production;
    the production_model materialisation is logged by this run."""
    version = check_version_arg(config.version)
    out = release_via_dagster(context, home.get(), version, config.reason, config.release)
    context.log.info(
        f"{version}: approved by {out['approved']['approval']['actor']}"
        + (f"; released, commit {out['released']['git_commit'][:12]}" if config.release else "")
    )


@dg.job(
    description="Approve (and release) a model version: the manual release process. "
    "Run config: ops.approve_and_release.config.version, e.g. v3.",
)
def approve_model() -> None:
    approve_and_release()
