"""Training a challenger: plain functions, no Dagster.

Two paths, one loop (`_fit`): eager PyTorch on the CPU, and torch-xla (TPU in production,
`PJRT_DEVICE=CPU` in tests). Both run the same step on the same static shapes: every batch
has exactly `batch_size` rows — the last one padded with repeated rows whose loss weight is 0 —
so XLA traces one training-step graph for the whole run and never recompiles after the first
epoch, and the eager path computes the same arithmetic (weights agree to ~1e-7 on a CPU).

With more than one XLA device (a TPU host's chips; `CPU_NUM_DEVICES=2` in tests) the batch is
sharded across them with torch-xla's SPMD data parallelism: one program, the batch split along
its first dimension, gradients all-reduced by the compiler.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl
import torch
from torch import nn

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.training.artifact import ModelArtifact, build_net
from lifecycle_assets.training.features import Preprocessor, fit_ranges

Device = Literal["cpu", "xla"]


class TrainingError(LifecycleError, RuntimeError):
    """Training cannot proceed on this data; the message says why."""


@dataclass(frozen=True)
class TrainingResult:
    artifact: ModelArtifact
    losses: list[float]
    seconds: float
    device: str
    # XLA only: cumulative compilations of this process after each epoch (empty on eager).
    compilations: list[int] = field(default_factory=list)
    steps_per_epoch: int = 0
    step_seconds: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def resolve_device(setting: str) -> Device:
    """`auto` is torch-xla when `PJRT_DEVICE` is set, else eager PyTorch."""
    if setting == "cpu":
        return "cpu"
    if setting == "xla":
        if not os.environ.get("PJRT_DEVICE"):
            raise TrainingError(
                "training.device is xla but PJRT_DEVICE is not set: export PJRT_DEVICE=TPU "
                "(or CPU to run the XLA path on this machine), or set training.device: cpu"
            )
        return "xla"
    if setting == "auto":
        return "xla" if os.environ.get("PJRT_DEVICE") else "cpu"
    raise TrainingError(f"training.device {setting!r}: expected auto, cpu or xla")


def batch_plan(
    n: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's batches at a static shape: (indices [steps, B], loss weights [steps, B]).

    The rows are shuffled; the last batch is padded with the epoch's first rows at weight 0,
    so padding changes no gradient and every step has the same shape.
    """
    order = torch.randperm(n, generator=generator)
    steps = -(-n // batch_size)
    pad = steps * batch_size - n
    index = torch.cat([order, order[:pad].repeat(-(-pad // n) if pad > n else 1)[:pad]])
    weight = torch.ones(steps * batch_size, dtype=torch.float32)
    weight[n:] = 0.0
    return index.view(steps, batch_size), weight.view(steps, batch_size)


def train_model(
    train: pl.DataFrame,
    config: LifecycleConfig,
    version: str,
    device: str | None = None,
) -> TrainingResult:
    """Fit preprocessing and a TabularNet on labelled rows; deterministic for the seed.

    `device` overrides `training.device` (auto, cpu or xla).
    """
    problem, cfg = config.problem, config.training
    if train.height == 0:
        raise TrainingError("the training split has no labelled rows")
    if problem.task == "binary" and train[problem.label].n_unique() < 2:
        raise TrainingError("the training split has a single class; cannot train a classifier")
    started = time.perf_counter()
    kind = resolve_device(device or cfg.device)
    if kind == "cpu":
        _register_xla()
    preprocessor = Preprocessor.fit(train, problem.numeric_features, problem.categorical_features)
    num, cat = preprocessor.transform(train)
    y = train[problem.label].cast(pl.Float32).to_numpy().copy()
    architecture = {"embedding_dim": cfg.embedding_dim, "hidden_units": cfg.hidden_units}
    # Initialise on the CPU from the seed, whatever trains it: both paths start identical.
    torch.manual_seed(cfg.seed)
    net = build_net(preprocessor, architecture)
    if problem.task == "binary":
        positive_rate = float(y.mean())
        # Start the output at the base rate so early epochs are not spent learning it.
        with torch.no_grad():
            net.head.bias.fill_(float(np.log(positive_rate / (1 - positive_rate))))
    scale: tuple[float, float] | None = None
    if problem.task != "binary":
        # Learn a standardised target, folded back into the head after training: the artifact
        # predicts in label units, and labels of any scale train in the same few epochs.
        scale = (float(y.mean()), float(y.std()) or 1.0)
        y = ((y - scale[0]) / scale[1]).astype(np.float32)
    fit = _fit_xla if kind == "xla" else _fit_eager
    losses, step_seconds, compilations, info = fit(net, num, cat, y, problem.task, cfg)
    net.eval()
    if scale is not None:
        with torch.no_grad():
            net.head.weight.mul_(scale[1])
            net.head.bias.mul_(scale[1]).add_(scale[0])
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
        metadata={
            "train_rows": train.height,
            "epochs": cfg.epochs,
            "seed": cfg.seed,
            "feature_ranges": fit_ranges(
                train,
                problem.numeric_features,
                problem.numeric_ranges,
                problem.feature_range_slack,
            ),
        },
    )
    seconds = time.perf_counter() - started
    info = {**info, "hardware": hardware(kind, info)}
    return TrainingResult(
        artifact=artifact,
        losses=losses,
        seconds=seconds,
        device=info["device"],
        compilations=compilations,
        steps_per_epoch=-(-train.height // info["batch_size"]),
        step_seconds=step_seconds,
        info=info,
    )


def _register_xla() -> None:
    """Start torch-xla's runtime before this process's first backward pass when XLA may be used.

    PyTorch's autograd engine sizes its per-device queues once, at the first backward; an
    XLA device registered after that cannot run backward in the same process. So wherever
    `PJRT_DEVICE` is set, eager training starts the XLA runtime first (cheap once imported).
    """
    if os.environ.get("PJRT_DEVICE"):
        try:
            import torch_xla.runtime as xr
        except ImportError as err:  # pragma: no cover - torch-xla is a dependency
            raise TrainingError(
                f"PJRT_DEVICE is set but torch-xla does not import: {err}"
            ) from None
        # The device count autograd reads comes from the initialised runtime.
        xr.global_runtime_device_count()


def _loss_fn(task: str) -> nn.Module:
    # Per-row losses: the step weights them so that padded rows count for nothing.
    return (
        nn.BCEWithLogitsLoss(reduction="none") if task == "binary" else nn.MSELoss(reduction="none")
    )


def _make_step(net: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module):
    def train_step(
        num: torch.Tensor, cat: torch.Tensor, y: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        optimizer.zero_grad()
        loss = (loss_fn(net(num, cat), y) * weight).sum() / weight.sum()
        loss.backward()
        optimizer.step()
        return loss.detach()

    return train_step


Fit = tuple[list[float], list[float], list[int], dict[str, Any]]


def _fit_eager(
    net: nn.Module, num: np.ndarray, cat: np.ndarray, y: np.ndarray, task: str, cfg: Any
) -> Fit:
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.cpu_threads)
    try:
        fitted = _fit(
            net, num, cat, y, task, cfg, device=torch.device("cpu"), batch_size=cfg.batch_size
        )
    finally:
        torch.set_num_threads(threads)
    return (*fitted[:3], {**fitted[3], "cpu_threads": cfg.cpu_threads})


def _fit_xla(
    net: nn.Module, num: np.ndarray, cat: np.ndarray, y: np.ndarray, task: str, cfg: Any
) -> Fit:
    try:
        import torch_xla
        import torch_xla.debug.metrics as met
        import torch_xla.runtime as xr
    except ImportError as err:  # pragma: no cover - torch-xla is a dependency
        raise TrainingError(
            f"training.device needs torch-xla, which does not import: {err}"
        ) from None
    devices = xr.global_runtime_device_count()
    mesh = None
    batch_size = cfg.batch_size
    if devices > 1:
        import torch_xla.distributed.spmd as xs

        # SPMD data parallelism (torch-xla's recommended multi-device path): a 1-D mesh over
        # the devices; each batch is sharded along rows, parameters are replicated.
        xr.use_spmd()
        mesh = xs.Mesh(np.arange(devices), (devices,), ("data",))
        batch_size = -(-batch_size // devices) * devices  # shards of equal size

    def shard(t: torch.Tensor) -> torch.Tensor:
        if mesh is not None:
            import torch_xla.distributed.spmd as xs

            xs.mark_sharding(t, mesh, ("data",) + (None,) * (t.dim() - 1))
        return t

    def compiles() -> int:
        data = met.metric_data("CompileTime")
        return int(data[0]) if data else 0

    before = compiles()

    try:
        fitted = _fit(
            net,
            num,
            cat,
            y,
            task,
            cfg,
            device=torch_xla.device(),
            batch_size=batch_size,
            wrap=torch_xla.compile,
            place=shard,
            # Compilations this run caused so far (the process may have compiled other graphs).
            after_epoch=lambda: compiles() - before,
        )
    except RuntimeError as err:
        if "device_ready_queues_" not in str(err):
            raise
        raise TrainingError(
            "this process ran a backward pass before torch-xla was imported, so autograd "
            "cannot use the XLA device; set PJRT_DEVICE before the process trains anything, "
            "or train in a fresh process"
        ) from None
    losses, step_seconds, compilations, _ = fitted
    net.to("cpu")
    info = {
        "device": "xla",
        "xla_device_type": xr.device_type(),
        "xla_devices": devices,
        "data_parallel": "spmd" if mesh is not None else "none",
        "batch_size": batch_size,
    }
    return losses, step_seconds, compilations, info


def _fit(
    net: nn.Module,
    num: np.ndarray,
    cat: np.ndarray,
    y: np.ndarray,
    task: str,
    cfg: Any,
    *,
    device: torch.device,
    batch_size: int,
    wrap: Any = None,
    place: Any = None,
    after_epoch: Any = None,
) -> Fit:
    """The training loop both paths share: static batch shapes, weighted loss, Adam."""
    net.to(device)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    step = _make_step(net, optimizer, _loss_fn(task))
    if wrap is not None:
        step = wrap(step)
    num_t, cat_t, y_t = torch.from_numpy(num), torch.from_numpy(cat), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(cfg.seed)
    n = len(y_t)
    losses: list[float] = []
    step_seconds: list[float] = []
    compilations: list[int] = []
    for _ in range(cfg.epochs):
        index, weight = batch_plan(n, batch_size, generator)
        epoch_started = time.perf_counter()
        batch_losses = []
        for rows, w in zip(index, weight, strict=True):
            tensors = [t.to(device) for t in (num_t[rows], cat_t[rows], y_t[rows], w)]
            if place is not None:
                tensors = [place(t) for t in tensors]
            batch_losses.append(step(*tensors))
        # Reading the losses waits for the device; on XLA it transfers results, no graph.
        values = [float(v) for v in batch_losses]
        step_seconds.append((time.perf_counter() - epoch_started) / len(values))
        real_rows = weight.sum(dim=1).tolist()
        losses.append(sum(v * r for v, r in zip(values, real_rows, strict=True)) / n)
        if after_epoch is not None:
            compilations.append(after_epoch())
    info = {"device": "cpu", "batch_size": batch_size}
    return losses, step_seconds, compilations, info


def hardware(kind: str, info: dict[str, Any]) -> str:
    """A line for the model card: what trained it."""
    host = f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}"
    if kind == "xla":
        import torch_xla

        return (
            f"torch-xla {torch_xla.__version__} on {info['xla_devices']}× "
            f"{info['xla_device_type']} ({info['data_parallel']} data parallel); host {host}"
        )
    return f"eager PyTorch on CPU ({info.get('cpu_threads')} threads); host {host}"
