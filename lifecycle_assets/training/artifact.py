"""The model artifact (docs/architecture.md): weights (safetensors) plus a JSON manifest holding the
fitted preprocessing, the architecture, the decision thresholds and metadata.

Serving, batch scoring and validation all load it through `load_artifact` and score through
`ModelArtifact.score`: one artifact, one scoring function, no pickle anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.files import write_atomic
from lifecycle_assets.training.features import Preprocessor
from lifecycle_assets.worktime import work

WEIGHTS = "model.safetensors"
MANIFEST = "model.json"
FORMAT_VERSION = 1
# Rows a scoring call feeds the module at once (`ModelArtifact.score`).
SCORE_ROWS = 4096


class ArtifactError(LifecycleError, RuntimeError):
    """A model artifact that is missing, malformed or does not match its recorded hash."""


class IntegrityError(ArtifactError):
    """An artifact, or the record it is verified against, changed after registration."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ModelArtifact:
    task: str
    preprocessor: Preprocessor
    net: nn.Module
    # {"family", "params"} (and, for regression, "target": the label's mean and std the
    # network's output is scaled back by); the first format's {"embedding_dim",
    # "hidden_units"} is an mlp.
    architecture: dict[str, Any]
    thresholds: dict[str, float]
    metadata: dict[str, Any] = field(default_factory=dict)
    version: str | None = None

    @work("scoring")
    def score(self, frame: pl.DataFrame) -> np.ndarray:
        """Scores for a frame of raw features: probabilities (binary) or values (regression)."""
        num, cat = self.preprocessor.transform(frame)
        return self._score_arrays(num, cat)

    def score_rows(self, rows: list[dict[str, Any]]) -> np.ndarray:
        num, cat = self.preprocessor.transform_rows(rows)
        return self._score_arrays(num, cat)

    def _score_arrays(self, num: np.ndarray, cat: np.ndarray) -> np.ndarray:
        if num.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        if self.net.training:  # eval() walks every module: a fifth of a one-row score
            self.net.eval()
        with torch.inference_mode():
            # In blocks of rows: a module's intermediates grow with the rows it is given
            # (a compiled tree ensemble holds nodes and leaves per tree for each row, about
            # 50 KiB a row at the gbdt defaults), so a test split of millions scores in
            # bounded memory. Each row's score does not depend on the block it is in.
            out = torch.cat(
                [
                    self.net(
                        torch.from_numpy(num[i : i + SCORE_ROWS]),
                        torch.from_numpy(cat[i : i + SCORE_ROWS]),
                    )
                    for i in range(0, num.shape[0], SCORE_ROWS)
                ]
            )
            if self.task == "binary":
                out = torch.sigmoid(out)
            if out.dim() == 2:  # an ensemble's members: averaged (in probability space)
                out = out.mean(dim=1)
            target = self.architecture.get("target")
            if target is not None and self.task != "binary":
                out = out * float(target["std"]) + float(target["mean"])
        scores = out.double().numpy()
        # Fitted at training time on held-out rows and part of the scoring function, so the
        # gate, batch scoring and the service all judge and serve calibrated probabilities.
        fitted = self.architecture.get("calibration")
        return calibrate(scores, fitted) if fitted and self.task == "binary" else scores

    def decide(self, scores: np.ndarray) -> list[str]:
        """Post-processing: the score becomes a decision by the validated thresholds."""
        return decide(scores, self.thresholds)


class CalibrationError(ArtifactError, ValueError):
    """An artifact's calibration block that cannot be applied."""


def calibrate(scores: np.ndarray, calibration: Mapping[str, Any] | None) -> np.ndarray:
    """Raw scores → calibrated probabilities; the identity when nothing was fitted.

    Supported (as written into the artifact's `metadata["calibration"]`):
    `{"method": "platt", "a": A, "b": B}` → sigmoid(A·logit(s) + B), and
    `{"method": "isotonic", "x": [...], "y": [...]}` → piecewise-linear through the points.
    """
    if not calibration:
        return scores
    method = calibration.get("method")
    if method == "platt":
        s = np.clip(scores, 1e-12, 1 - 1e-12)
        logit = np.log(s) - np.log1p(-s)
        z = float(calibration["a"]) * logit + float(calibration["b"])
        return 1.0 / (1.0 + np.exp(-z))
    if method == "isotonic":
        x = np.asarray(calibration["x"], dtype=np.float64)
        y = np.asarray(calibration["y"], dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or x.size < 2 or np.any(np.diff(x) < 0):
            raise CalibrationError("isotonic calibration needs increasing x and y of equal size")
        return np.interp(scores, x, y)
    raise CalibrationError(f"unknown calibration method {method!r} (platt | isotonic)")


def decide(scores: np.ndarray, thresholds: dict[str, float]) -> list[str]:
    """approve below `review`, review below `decline`, decline at or above it.

    Written so that a NaN can never approve: `approve` needs a score proven below the review
    threshold, and a NaN (which compares false with everything) falls to `review`."""
    review, decline = float(thresholds["review"]), float(thresholds["decline"])
    return [
        "approve" if s < review else "decline" if s >= decline else "review"
        for s in np.asarray(scores, dtype=np.float64).tolist()
    ]


def build_net(
    preprocessor: Preprocessor,
    architecture: dict[str, Any],
    factories: dict[str, str] | None = None,
) -> nn.Module:
    """The network an architecture names, from a family registered in this process."""
    from lifecycle_assets.training.families import FamilyError, build

    try:
        return build(preprocessor, architecture, factories)
    except FamilyError as err:
        raise ArtifactError(str(err)) from err


def save_artifact(artifact: ModelArtifact, directory: Path) -> str:
    """Write the artifact into `directory` (weights first, manifest last); returns its hash."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS
    state = {k: v.detach().cpu().contiguous() for k, v in artifact.net.state_dict().items()}
    save_file(state, str(weights))
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": artifact.version,
        "task": artifact.task,
        "architecture": artifact.architecture,
        "preprocessor": artifact.preprocessor.to_json(),
        "thresholds": artifact.thresholds,
        "metadata": artifact.metadata,
        "weights_sha256": sha256_file(weights),
    }
    write_atomic(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    return str(manifest["weights_sha256"])


def artifact_digest(directory: Path) -> str:
    """One SHA-256 over the weights and the manifest bytes: what the registry records at
    registration and serving checks before a version may serve. The manifest's own weights
    hash guards only against corruption; this digest also covers thresholds, preprocessing
    and calibration, which a tamperer could change along with a recomputed weights hash."""
    digest = hashlib.sha256()
    for name in (WEIGHTS, MANIFEST):
        path = Path(directory) / name
        if not path.is_file():
            raise ArtifactError(f"{directory}: no {name}")
        digest.update(name.encode() + b"\0")
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{directory}: no {MANIFEST}; not a model artifact")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path}: malformed manifest ({err})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: unsupported format_version {manifest.get('format_version')}")
    return manifest


def load_artifact(
    directory: str | Path,
    expected_digest: str | None = None,
    factories: dict[str, str] | None = None,
) -> ModelArtifact:
    """Load and verify an artifact; a hash mismatch is refused, never served.

    `expected_digest` (the registry's record, see `artifact_digest`) is checked before
    anything is parsed: serving passes it, so a manifest edited after registration fails."""
    directory = Path(directory)
    if expected_digest is not None:
        actual_digest = artifact_digest(directory)
        if not hmac.compare_digest(actual_digest, expected_digest):
            raise IntegrityError(
                f"{directory}: artifact digest {actual_digest[:12]}… does not match the "
                f"registry's {expected_digest[:12]}…; refusing a tampered or corrupt model"
            )
    manifest = read_manifest(directory)
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise ArtifactError(f"{directory}: no {WEIGHTS}")
    # A matching registry digest already covers these exact bytes, and registration checked
    # them against the manifest's weights hash: hashing the weights again would only repeat it.
    actual = None if expected_digest is not None else sha256_file(weights)
    if actual is not None and actual != manifest.get("weights_sha256"):
        raise IntegrityError(
            f"{weights}: sha256 {actual[:12]}… does not match the manifest's "
            f"{str(manifest.get('weights_sha256'))[:12]}…; refusing a tampered or corrupt model"
        )
    preprocessor = Preprocessor.from_json(manifest["preprocessor"])
    # `factories`: the loading config's user families; an unregistered one is refused.
    net = build_net(preprocessor, manifest["architecture"], factories)
    try:
        net.load_state_dict(load_file(str(weights)))
    except (RuntimeError, KeyError) as err:
        detail = " ".join(str(err).split())  # torch's message spans lines: one line here
        raise ArtifactError(f"{weights}: weights do not fit the architecture ({detail})") from None
    net.eval()
    thresholds = {k: float(v) for k, v in manifest["thresholds"].items()}
    _check_thresholds(thresholds, directory)
    return ModelArtifact(
        task=manifest["task"],
        preprocessor=preprocessor,
        net=net,
        architecture=manifest["architecture"],
        thresholds=thresholds,
        metadata=manifest.get("metadata", {}),
        version=manifest.get("version"),
    )


def _check_thresholds(thresholds: dict[str, float], directory: Path) -> None:
    """Decision thresholds are probabilities, review ≤ decline: anything else would decide
    every request the same way (a threshold of 5.0 approves all)."""
    try:
        review, decline = thresholds["review"], thresholds["decline"]
    except KeyError as err:
        raise ArtifactError(f"{directory}: the manifest has no {err} threshold") from None
    if not (0.0 <= review <= decline <= 1.0):
        raise ArtifactError(
            f"{directory}: thresholds review={review} decline={decline} are not "
            "0 ≤ review ≤ decline ≤ 1; refusing the model"
        )
