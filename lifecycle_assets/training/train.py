"""Training a challenger: plain functions, no Dagster."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from torch import nn

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.training.artifact import ModelArtifact, build_net
from lifecycle_assets.training.features import Preprocessor


class TrainingError(LifecycleError, RuntimeError):
    """Training cannot proceed on this data; the message says why."""


@dataclass(frozen=True)
class TrainingResult:
    artifact: ModelArtifact
    losses: list[float]
    seconds: float
    device: str


def train_model(train: pl.DataFrame, config: LifecycleConfig, version: str) -> TrainingResult:
    """Fit preprocessing and a TabularNet on labelled rows; deterministic for the seed."""
    problem, cfg = config.problem, config.training
    if train.height == 0:
        raise TrainingError("the training split has no labelled rows")
    if problem.task == "binary" and train[problem.label].n_unique() < 2:
        raise TrainingError("the training split has a single class; cannot train a classifier")
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    preprocessor = Preprocessor.fit(train, problem.numeric_features, problem.categorical_features)
    architecture = {"embedding_dim": cfg.embedding_dim, "hidden_units": cfg.hidden_units}
    net = build_net(preprocessor, architecture)
    num, cat = preprocessor.transform(train)
    y = train[problem.label].cast(pl.Float32).to_numpy().copy()

    loss_fn: nn.Module
    if problem.task == "binary":
        positive_rate = float(y.mean())
        # Start the output at the base rate so early epochs are not spent learning it.
        with torch.no_grad():
            net.head.bias.fill_(float(np.log(positive_rate / (1 - positive_rate))))
        loss_fn = nn.BCEWithLogitsLoss()
    else:
        loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    num_t, cat_t, y_t = torch.from_numpy(num), torch.from_numpy(cat), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    net.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(y_t), generator=generator)
        total, batches = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(net(num_t[idx], cat_t[idx]), y_t[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            batches += 1
        losses.append(total / batches)
    net.eval()
    thresholds = {
        "review": config.postprocessing.review_threshold,
        "decline": config.postprocessing.decline_threshold,
    }
    artifact = ModelArtifact(
        task=problem.task,
        preprocessor=preprocessor,
        net=net,
        architecture=architecture,
        thresholds=thresholds,
        version=version,
        metadata={"train_rows": train.height, "epochs": cfg.epochs, "seed": cfg.seed},
    )
    return TrainingResult(artifact, losses, time.perf_counter() - started, "cpu")
