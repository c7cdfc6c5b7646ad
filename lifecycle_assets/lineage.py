"""Code and environment versions recorded with every dataset, model and decision."""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from typing import TYPE_CHECKING, Any

from lifecycle_assets.home import project_root

if TYPE_CHECKING:
    from lifecycle_assets.config import LifecycleConfig


@functools.cache
def code_version() -> dict[str, Any]:
    """The project's git commit, whether its tree was dirty, and the lockfile's hash."""
    root = project_root()

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    lock = root / "uv.lock"
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "code_commit": git("rev-parse", "HEAD"),
        "code_dirty": bool(status) if status is not None else None,
        "lockfile_sha256": hashlib.sha256(lock.read_bytes()).hexdigest()
        if lock.is_file()
        else None,
    }


def training_inputs(
    config: LifecycleConfig, train_split_tag: str, train_split_dvc_hash: str | None
) -> str:
    """One SHA-256 over what decides a challenger's weights: the train split's version, the
    config sections training reads (`problem`, `training`, `postprocessing`) and the code
    version. Training is deterministic in them (docs/training-and-registry.md), so two
    versions with the same digest are one model twice: `candidate_model` registers a day's
    challenger once and a rerun of the day takes that version (`Registry.trained_from`)."""
    inputs = {
        "train_split_tag": train_split_tag,
        "train_split_dvc_hash": train_split_dvc_hash,
        **{
            section: getattr(config, section).model_dump(mode="json")
            for section in ("problem", "training", "postprocessing")
        },
        **code_version(),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
