"""The model card: what a reviewer reads before approving a version."""

from __future__ import annotations

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.training.artifact import ModelArtifact


def model_card_markdown(artifact: ModelArtifact, config: LifecycleConfig) -> str:
    meta = artifact.metadata
    p = config.problem
    return "\n".join(
        [
            f"# Model card: {p.name} {artifact.version}",
            "",
            f"- Task: {artifact.task}; label `{p.label}`",
            f"- Intended use: scoring {p.name} requests online and in batch through lifecycle's "
            "one scoring function; not for entities or features outside the training data.",
            f"- Training data: `{meta.get('train_split_tag')}` ({meta.get('train_rows')} rows)",
            f"- Features: numeric {list(p.numeric_features)}; categorical "
            f"{list(p.categorical_features)} (unknown categories map to an out-of-vocabulary "
            "bucket)",
            f"- Decision thresholds: {artifact.thresholds}",
            f"- Architecture: {artifact.architecture}",
            f"- Hardware: {meta.get('device')}; training took {meta.get('train_seconds')} s",
            f"- Code: {meta.get('code_commit')} (dirty: {meta.get('code_dirty')}); "
            f"lockfile sha256 {meta.get('lockfile_sha256')}",
            "- Limitations: labels are chargebacks that mature after "
            f"{config.labels.maturity_days} days; recent fraud is under-represented.",
            "",
            "Validation metrics are in the decision record of the day it was validated "
            "(`reports/validation.json` at the model's tag).",
            "",
        ]
    )
