"""Training stage asset: a thin wrapper over `training.train`."""

import shutil
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.defs.partitions import daily, partition_day
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.defs.resources.registry import RegistryResource
from lifecycle_assets.defs.resources.versioning import VersioningResource
from lifecycle_assets.lineage import code_version, training_inputs
from lifecycle_assets.monitoring.metrics import feature_reference
from lifecycle_assets.registry.registry import move_message
from lifecycle_assets.training.artifact import ModelArtifact, save_artifact
from lifecycle_assets.training.card import model_card_markdown
from lifecycle_assets.training.plots import loss_curve_markdown
from lifecycle_assets.training.train import train_model


@dg.asset(
    partitions_def=daily,
    group_name="training",
    kinds={"pytorch", "dvc"},
    output_required=False,
)
def candidate_model(
    context: dg.AssetExecutionContext,
    home: LifecycleHomeResource,
    versioning: VersioningResource,
    registry: RegistryResource,
    train_split: pl.DataFrame,
):
    """The challenger trained on day D's train split; registered as a new version, once: a
    rerun of the day takes the version its inputs already registered."""
    cfg = home.config()
    label = cfg.problem.label
    rows = train_split.height
    if rows < cfg.windows.min_train_rows or train_split[label].n_unique() < 2:
        # Cold start: not enough matured labels yet. Nothing to validate or promote today.
        context.log.info(
            f"train split has {rows} matured rows (< windows.min_train_rows="
            f"{cfg.windows.min_train_rows} or one class): no challenger today"
        )
        return
    reg = registry.get()
    split_tag = f"train_split/{context.partition_key}"
    # The data version: the DVC hash of the split's directory at its tag.
    split_hash = versioning.repo().out_hash("datasets/train_split", split_tag)
    inputs = training_inputs(cfg, split_tag, split_hash)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "candidate"
        version = reg.trained_from(inputs)
        if version is not None:
            # The day's challenger is registered already: a run that failed after its
            # registration (the model's push, a later stage, a kill) is being rerun. The same
            # inputs train the same weights, so the version is taken as it is rather than
            # registered twice; the publish below completes its tag and push.
            context.log.info(f"{version} is registered from these inputs: not trained again")
            artifact = reg.copy_registered(version, staged)
            lineage = reg.versions()[version]
        else:
            version = reg.next_version()
            data = {
                "day": partition_day(context).isoformat(),
                "train_split_tag": split_tag,
                "train_split_dvc_hash": split_hash,
                "training_inputs": inputs,
                "created_at": home.now().isoformat(),
            }
            artifact, lineage = _train(train_split, cfg, version, data)
            save_artifact(artifact, staged)
            (staged / "model_card.md").write_text(model_card_markdown(artifact, cfg))
            reg.register(staged, lineage)
        event = reg.point(
            "candidate",
            version,
            actor=f"dagster:{context.run_id}",
            reason=f"trained on train_split/{context.partition_key}",
            when=home.now(),
        )
        meta = versioning.publish(
            "candidate_model",
            context.partition_key,
            "models/candidate",
            lambda folder: _write_candidate(staged, folder, lineage["losses"]),
            message=f"model {version}: trained on train_split/{context.partition_key}\n\n"
            + move_message(event),
            tag=f"model/{version}",
            extra_paths=("registry",),
        )
    yield dg.Output(
        artifact,
        metadata={
            "model_version": version,
            **meta,
            "train_rows": lineage["train_rows"],
            "train_seconds": lineage["train_seconds"],
            "device": lineage["device"],
            "hardware": lineage["hardware"],
            # a family fitted outright (gbdt) compiles nothing: no figure, rather than a null
            **(
                {"xla_compilations": lineage["xla_compilations"]}
                if lineage.get("xla_compilations") is not None
                else {}
            ),
            "data_version": f"{split_tag} ({lineage['train_split_dvc_hash']})",
            "code_commit": str(lineage.get("code_commit")),
            "code_dirty": bool(lineage.get("code_dirty")),
            "lockfile_sha256": str(lineage.get("lockfile_sha256")),
            "training_params": dg.MetadataValue.json(lineage["training_params"]),
            "final_loss": lineage["losses"][-1],
            # per epoch, as numbers the UI shows as a table (and DVC plots: LOSSES_CSV) ...
            "loss_curve": dg.MetadataValue.table(
                records=[
                    dg.TableRecord({"epoch": i, "loss": float(x)})
                    for i, x in enumerate(lineage["losses"], start=1)
                ],
                schema=dg.TableSchema(
                    columns=[dg.TableColumn("epoch", "int"), dg.TableColumn("loss", "float")]
                ),
            ),
            # ... and drawn
            "loss_chart": dg.MetadataValue.md(loss_curve_markdown(lineage["losses"])),
        },
    )


def _train(
    train_split: pl.DataFrame, cfg: LifecycleConfig, version: str, data: dict[str, Any]
) -> tuple[ModelArtifact, dict[str, Any]]:
    """A new challenger, and the lineage its version records: `data` (the data version and
    the training inputs) and how the training ran. Both travel inside the artifact."""
    result = train_model(train_split, cfg, version)
    lineage = {
        **data,
        "train_rows": train_split.height,
        "training_params": cfg.training.model_dump(),
        "device": result.device,
        "hardware": result.info["hardware"],
        "device_info": {k: v for k, v in result.info.items() if k != "hardware"},
        "train_seconds": round(result.seconds, 3),
        "step_ms_per_epoch": [round(s * 1000, 3) for s in result.step_seconds],
        "xla_compilations": result.compilations[-1] if result.compilations else None,
        # `losses.csv` is written from these recorded figures, so a rerun that takes the
        # registered version writes the same bytes under its tag
        "losses": [round(x, 6) for x in result.losses],
        **code_version(),
    }
    if "training_sample" in result.artifact.metadata:
        # training.max_rows capped the fit: the rows it used, in the registry's lineage too
        lineage["training_sample"] = result.artifact.metadata["training_sample"]
    result.artifact.metadata.update(lineage)
    # What monitoring compares live traffic with; it travels inside the artifact.
    label_mean = train_split[cfg.problem.label].cast(pl.Float64).mean()
    result.artifact.metadata["train_label_mean"] = (
        float(label_mean) if isinstance(label_mean, float | int) else 0.0
    )
    result.artifact.metadata["monitoring_reference"] = feature_reference(
        train_split, cfg.problem.numeric_features, cfg.problem.categorical_features
    )
    return result.artifact, lineage


# The candidate's per-epoch training loss, inside its DVC output: dvc.yaml plots it, so
# `dvc plots show` draws it and `dvc plots diff model/v1 model/v2` compares two versions.
LOSSES_CSV = "losses.csv"


def _write_candidate(staged: Path, folder: Path, losses: list[float]) -> None:
    shutil.copytree(staged, folder)
    rows = "".join(f"{i},{x:.6g}\n" for i, x in enumerate(losses, start=1))
    (folder / LOSSES_CSV).write_text("epoch,loss\n" + rows)
