"""What a model family fitted outright (not by the gradient-descent loop) hands back to
training: its own module, so the families and the tree family's fit (`training/trees.py`)
both name it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Fitted:
    """What a family fitted outright (not by gradient descent) hands back to training."""

    params: dict[str, Any]  # the hyperparameters plus what the fit recorded (shapes)
    state: dict[str, torch.Tensor]  # loaded into `build(preprocessor, params)`, strictly
    losses: list[float]  # the training loss per round
    step_seconds: list[float]  # seconds per round
    info: dict[str, Any]  # best_epoch and holdout_losses with a holdout; fitted_by, ...
