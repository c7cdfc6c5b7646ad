"""Training stage asset: a thin wrapper over `training.train`."""

import shutil
import tempfile
from pathlib import Path

import dagster as dg
import polars as pl

from lifecycle_assets.lineage import code_version
from lifecycle_assets.monitoring.metrics import feature_reference
from lifecycle_assets.partitions import daily, partition_day
from lifecycle_assets.registry.registry import move_message
from lifecycle_assets.resources.home import LifecycleHomeResource
from lifecycle_assets.resources.registry import RegistryResource
from lifecycle_assets.resources.versioning import VersioningResource
from lifecycle_assets.training.artifact import save_artifact
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
    """The challenger trained on day D's train split; registered as a new version."""
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
    version = reg.next_version()
    result = train_model(train_split, cfg, version)
    day = partition_day(context)
    split_tag = f"train_split/{context.partition_key}"
    lineage = {
        "day": day.isoformat(),
        "train_split_tag": split_tag,
        # The data version: the DVC hash of the split's directory at its tag.
        "train_split_dvc_hash": versioning.repo().out_hash("datasets/train_split", split_tag),
        "train_rows": rows,
        "created_at": home.now().isoformat(),
        "training_params": cfg.training.model_dump(),
        "device": result.device,
        "hardware": result.info["hardware"],
        "device_info": {k: v for k, v in result.info.items() if k != "hardware"},
        "train_seconds": round(result.seconds, 3),
        "step_ms_per_epoch": [round(s * 1000, 3) for s in result.step_seconds],
        "xla_compilations": result.compilations[-1] if result.compilations else None,
        "losses": [round(x, 6) for x in result.losses],
        **code_version(),
    }
    result.artifact.metadata.update(lineage)
    # What monitoring compares live traffic with; it travels inside the artifact.
    label_mean = train_split[label].cast(pl.Float64).mean()
    result.artifact.metadata["train_label_mean"] = (
        float(label_mean) if isinstance(label_mean, float | int) else 0.0
    )
    result.artifact.metadata["monitoring_reference"] = feature_reference(
        train_split, cfg.problem.numeric_features, cfg.problem.categorical_features
    )
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / version
        save_artifact(result.artifact, staged)
        (staged / "model_card.md").write_text(model_card_markdown(result.artifact, cfg))
        reg.register(staged, lineage)
        event = reg.move_alias(
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
            lambda folder: _write_candidate(staged, folder, result.losses),
            message=f"model {version}: trained on train_split/{context.partition_key}\n\n"
            + move_message(event),
            tag=f"model/{version}",
            extra_paths=("registry",),
        )
    yield dg.Output(
        result.artifact,
        metadata={
            "model_version": version,
            **meta,
            "train_rows": rows,
            "train_seconds": round(result.seconds, 3),
            "device": result.device,
            "hardware": result.info["hardware"],
            # a family fitted outright (gbdt) compiles nothing: no figure, rather than a null
            **(
                {"xla_compilations": lineage["xla_compilations"]}
                if lineage["xla_compilations"] is not None
                else {}
            ),
            "data_version": f"{split_tag} ({lineage['train_split_dvc_hash']})",
            "code_commit": str(lineage.get("code_commit")),
            "code_dirty": bool(lineage.get("code_dirty")),
            "lockfile_sha256": str(lineage.get("lockfile_sha256")),
            "training_params": dg.MetadataValue.json(lineage["training_params"]),
            "final_loss": result.losses[-1],
            # per epoch, as numbers the UI shows as a table (and DVC plots: LOSSES_CSV) ...
            "loss_curve": dg.MetadataValue.table(
                records=[
                    dg.TableRecord({"epoch": i, "loss": float(x)})
                    for i, x in enumerate(result.losses, start=1)
                ],
                schema=dg.TableSchema(
                    columns=[dg.TableColumn("epoch", "int"), dg.TableColumn("loss", "float")]
                ),
            ),
            # ... and drawn
            "loss_chart": dg.MetadataValue.md(loss_curve_markdown(result.losses)),
        },
    )


# The candidate's per-epoch training loss, inside its DVC output: dvc.yaml plots it, so
# `dvc plots show` draws it and `dvc plots diff model/v1 model/v2` compares two versions.
LOSSES_CSV = "losses.csv"


def _write_candidate(staged: Path, folder: Path, losses: list[float]) -> None:
    shutil.copytree(staged, folder)
    rows = "".join(f"{i},{x:.6g}\n" for i, x in enumerate(losses, start=1))
    (folder / LOSSES_CSV).write_text("epoch,loss\n" + rows)
