"""Reproducing a registered version: retrain it from its recorded data version, seed and
params, and compare the result with the stored artifact (docs/training-and-registry.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from lifecycle_assets.config import TrainingConfig
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.lineage import code_version
from lifecycle_assets.registry.queries import registry_for
from lifecycle_assets.registry.registry import RegistryError
from lifecycle_assets.training.train import resolve_device, train_model
from lifecycle_assets.versioning.names import validate_name
from lifecycle_assets.versioning.repo import VersionedRepo

CROSS_DEVICE_TOLERANCE = 1e-6


def reproduce(
    home: LifecycleHome,
    version: str,
    *,
    device: str | None = None,
    tolerance: float = CROSS_DEVICE_TOLERANCE,
) -> dict[str, Any]:
    """Retrain `version` from its recorded data version, seed and params; compare the result.

    Same device type as recorded: the weights must be bitwise identical. Eager vs XLA: the
    scores on the training rows must agree within `tolerance` (and the report gives the
    largest weight difference too).
    """
    reg = registry_for(home)
    info = reg.require(version)
    original = reg.load(version)  # hash-checked: a tampered artifact is refused here
    tag = info.get("train_split_tag")
    if not tag:
        raise RegistryError(f"{version} records no train_split_tag: cannot find its data version")
    validate_name(tag, "data version tag")
    repo = VersionedRepo.of(home)
    with tempfile.TemporaryDirectory(prefix="reproduce-", dir=home.root) as tmp:
        restored = Path(tmp) / "train_split"
        repo.restore("datasets/train_split", tag, restored)
        frame = pl.read_parquet(restored / "data.parquet")
    recorded_hash = info.get("train_split_dvc_hash")
    restored_hash = repo.out_hash("datasets/train_split", tag)
    config = home.config()
    params = info.get("training_params")
    if params:
        config = config.model_copy(update={"training": TrainingConfig(**params)})
    recorded_device = info.get("device") or "cpu"
    used = resolve_device(device or recorded_device)
    result = train_model(frame, config, version, device=used)
    new_state = result.artifact.net.state_dict()
    old_state = original.net.state_dict()
    max_weight_diff = max(
        float((new_state[k].float() - old_state[k].float()).abs().max()) for k in old_state
    )
    bitwise = all(
        new_state[k].dtype == old_state[k].dtype and bool((new_state[k] == old_state[k]).all())
        for k in old_state
    )
    max_score_diff = float(
        np.max(np.abs(result.artifact.score(frame) - original.score(frame)), initial=0.0)
    )
    # "Same device type": eager CPU both times, or XLA on the same kind of chip (a TPU-trained
    # version retrained on XLA:CPU is compared within the tolerance, not bitwise).
    recorded_type = (info.get("device_info") or {}).get("xla_device_type")
    same_device = used == recorded_device and (
        used == "cpu" or recorded_type == result.info.get("xla_device_type")
    )
    matches = bitwise if same_device else max_score_diff <= tolerance
    code = code_version()
    return {
        "version": version,
        "data_version": tag,
        "data_hash_recorded": recorded_hash,
        "data_hash_restored": restored_hash,
        "rows": frame.height,
        "device_recorded": recorded_device,
        "device_used": used,
        "comparison": "bitwise" if same_device else f"scores within {tolerance:g}",
        "bitwise_identical": bitwise,
        "max_weight_diff": max_weight_diff,
        "max_score_diff": max_score_diff,
        "code_commit_recorded": info.get("code_commit"),
        "code_commit_now": code.get("code_commit"),
        "same_code": info.get("code_commit") == code.get("code_commit")
        and not info.get("code_dirty")
        and not code.get("code_dirty"),
        "matches": bool(matches) and (recorded_hash is None or recorded_hash == restored_hash),
    }
