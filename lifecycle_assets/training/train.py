"""Training a challenger: plain functions, no Dagster.

Two paths, one loop (`_fit`): eager PyTorch on the CPU, and torch-xla (TPU in production,
`PJRT_DEVICE=CPU` in tests). Both run the same step on the same static shapes: every batch
has exactly `batch_size` rows — the last one padded with repeated rows whose loss weight is 0 —
so XLA traces one training-step graph for the whole run and never recompiles after the first
epoch, and the eager path computes the same arithmetic (weights agree to ~1e-7 on a CPU).

A family fitted outright rather than by gradient descent (`gbdt`: LightGBM, on the CPU
whatever the device) skips the loop: `train_model` hands it the same rows, holdout and
standardised target, and loads the tensors it returns into the family's module.

With more than one XLA device (a TPU host's chips; `CPU_NUM_DEVICES=2` in tests) the batch is
sharded across them with torch-xla's SPMD data parallelism: one program, the batch split along
its first dimension, gradients all-reduced by the compiler.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import platform
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
import torch
from torch import nn

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.training.artifact import ModelArtifact, build_net
from lifecycle_assets.training.features import Preprocessor, fit_ranges
from lifecycle_assets.training.history import choose_history
from lifecycle_assets.worktime import work

if TYPE_CHECKING:
    from collections.abc import Callable

    from lifecycle_assets.training.families import Family
    from lifecycle_assets.training.fitted import Fitted

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


MIN_HOLDOUT_ROWS = 50


def split_holdout(
    train: pl.DataFrame, config: LifecycleConfig
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """(rows to fit, the freshest `training.holdout_fraction` of the window or None).

    Time-ordered (by event time where the rows have it): the holdout is the part of the
    window closest to the traffic the model will serve. None when it would be too small to
    judge by (fewer than `MIN_HOLDOUT_ROWS`, or a single class)."""
    fraction = config.training.holdout_fraction
    n_held = round(train.height * fraction)
    if fraction <= 0 or n_held < MIN_HOLDOUT_ROWS or train.height - n_held < MIN_HOLDOUT_ROWS:
        return train, None
    ordered = (
        train.sort("event_time", maintain_order=True) if "event_time" in train.columns else train
    )
    fit_rows, held = ordered.head(train.height - n_held), ordered.tail(n_held)
    label = config.problem.label
    if config.problem.task == "binary" and (
        held[label].n_unique() < 2 or fit_rows[label].n_unique() < 2
    ):
        return train, None
    return fit_rows, held


def cap_rows(
    train: pl.DataFrame, config: LifecycleConfig
) -> tuple[pl.DataFrame, dict[str, Any] | None]:
    """(the rows to fit, the record of the sample or None): at most `training.max_rows` rows.

    A larger frame is sampled without replacement by a generator seeded from
    `training.seed`, its rows kept in their order (the holdout and the history read event
    time), so the same split and seed give the same rows. Every row, and no record, when
    there is no cap or the frame is within it."""
    cap, seed = config.training.max_rows, config.training.seed
    if cap is None or train.height <= cap:
        return train, None
    picked = np.sort(np.random.default_rng(seed).choice(train.height, size=cap, replace=False))
    return train[picked], {"max_rows": cap, "of_rows": train.height, "rows": cap, "seed": seed}


def split_calibration(
    held: pl.DataFrame | None, config: LifecycleConfig
) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """(rows that decide early stopping, rows that fit the calibration) from the holdout.

    Calibration is fitted on rows neither the fit nor early stopping used (a calibration
    fitted on the rows that chose the epoch is fitted to that choice): the holdout's older
    half decides the epoch, its freshest half, closest to what the model will serve,
    calibrates. Too few rows (or one class) in either half: the whole holdout stops early
    and no calibration is fitted."""
    cfg, problem = config.training, config.problem
    if held is None or problem.task != "binary" or cfg.calibration == "none":
        return held, None
    half = held.height // 2
    stop, calibrate_rows = held.head(held.height - half), held.tail(half)
    label = problem.label
    if (
        min(stop.height, calibrate_rows.height) < MIN_HOLDOUT_ROWS
        or stop[label].n_unique() < 2
        or calibrate_rows[label].n_unique() < 2
    ):
        return held, None
    return stop, calibrate_rows


def _without_cross_fitting(config: LifecycleConfig) -> LifecycleConfig:
    """The config with `training.calibration_folds` off: for fits whose own calibration
    does not matter (the folds themselves, the history choice's candidates)."""
    if not config.training.calibration_folds:
        return config
    training = config.training.model_copy(update={"calibration_folds": 0})
    return config.model_copy(update={"training": training})


def cross_fitted_scores(
    fit_rows: pl.DataFrame, config: LifecycleConfig, version: str, device: str | None
) -> tuple[np.ndarray | None, str | None]:
    """Each fitted row's score by a model that did not see it, for a calibration fitted on
    every row (`training.calibration_folds` = k): each row drawn into one of k folds (seeded
    by `training.seed`), and each fold scored by a model of the same family and recipe
    fitted on the other k − 1 (not calibrated itself; rows kept in their order). Random
    folds rather than blocks of time: on the quality benchmark's files blocks of time
    calibrated the stable scenario's estimate worse (docs/estimate.md). (None, the reason)
    when a fold is too small or a fit fails: the artifact is then left uncalibrated."""
    k = config.training.calibration_folds
    if fit_rows.height < k * MIN_HOLDOUT_ROWS:
        return None, (
            f"cross-fitted calibration needs {MIN_HOLDOUT_ROWS} rows per fold; "
            f"{fit_rows.height} rows for {k} folds"
        )
    single = _without_cross_fitting(config)
    folds = np.random.default_rng(config.training.seed).permutation(fit_rows.height) % k
    scores = np.empty(fit_rows.height, dtype=np.float64)
    for fold in range(k):
        held = folds == fold
        try:
            model = _train_once(fit_rows.filter(~held), single, version, device).artifact
        except TrainingError as err:
            return None, f"cross-fitted calibration: fold {fold + 1} of {k}: {err}"
        scores[held] = model.score(fit_rows.filter(held))
    return scores, None


def fit_calibration(scores: np.ndarray, labels: np.ndarray, method: str) -> dict[str, Any]:
    """Platt (a logistic regression on the score's logit) or isotonic (pool adjacent
    violators) calibration of probabilities, as `training.artifact.calibrate` applies it."""
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(labels, dtype=np.float64)
    if method == "isotonic":
        # Tied scores are one point (their mean label): a model's scores tie in plateaus,
        # and splitting a tie across blocks would map equal scores to different values.
        levels, inverse = np.unique(p, return_inverse=True)
        level_sums = np.bincount(inverse, weights=y)
        level_counts = np.bincount(inverse).astype(np.float64)
        # pool adjacent violators: blocks of (score sum, label sum, count), merged while the
        # block means decrease
        xsums: list[float] = []
        sums: list[float] = []
        counts: list[float] = []
        for x, v, c in zip(
            levels.tolist(), level_sums.tolist(), level_counts.tolist(), strict=True
        ):
            xsums.append(x * c)
            sums.append(v)
            counts.append(c)
            while len(sums) > 1 and sums[-2] / counts[-2] >= sums[-1] / counts[-1]:
                merged = xsums.pop(), sums.pop(), counts.pop()
                xsums[-1] += merged[0]
                sums[-1] += merged[1]
                counts[-1] += merged[2]
        means = [s / c for s, c in zip(sums, counts, strict=True)]
        if len(means) == 1:  # constant: one level, as a two-point line
            return {"method": "isotonic", "x": [0.0, 1.0], "y": [means[0], means[0]]}
        # Each block at its mean score (not its left edge), interpolated between blocks and
        # held flat beyond the first and last: a continuous, increasing map, instead of a
        # staircase that ties every score of a block (and put ties at the top of the ranking).
        centres = [xs / c for xs, c in zip(xsums, counts, strict=True)]
        return {"method": "isotonic", "x": centres, "y": means}
    z = np.log(p) - np.log1p(-p)

    def loss(a: float, b: float) -> float:
        t = a * z + b  # log(1 + e^t) - y t, computed without overflow
        return float(np.sum(np.logaddexp(0.0, t) - y * t) + 0.5e-6 * ((a - 1) ** 2 + b**2))

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(100):  # Newton's method with backtracking on the log loss (tiny ridge)
        q = 0.5 * (1.0 + np.tanh(0.5 * (a * z + b)))
        w = q * (1 - q)
        grad = np.array([np.sum((q - y) * z) + 1e-6 * (a - 1), np.sum(q - y) + 1e-6 * b])
        hess = np.array(
            [[np.sum(w * z * z) + 1e-6, np.sum(w * z)], [np.sum(w * z), np.sum(w) + 1e-6]]
        )
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6 and loss(a - scale * step[0], b - scale * step[1]) > current:
            scale /= 2
        a, b = a - scale * step[0], b - scale * step[1]
        improved = loss(a, b)
        if current - improved < 1e-10 * max(1.0, abs(current)):
            break
        current = improved
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
        # A slope that is not positive would flatten or invert the model's ranking: no
        # calibration rather than that (the caller records the reason).
        return {"method": None, "reason": f"Platt slope {a:.4g} is not positive; not calibrated"}
    return {"method": "platt", "a": float(a), "b": float(b)}


def configured_family(config: LifecycleConfig) -> Family:
    """The family `training.model` names, registered in this process."""
    from lifecycle_assets.training.families import FamilyError, resolve

    cfg = config.training
    try:
        return resolve(cfg.model.family, cfg.model_factories)
    except FamilyError as err:
        raise TrainingError(str(err)) from None


def model_architecture(numeric: np.ndarray, config: LifecycleConfig) -> dict[str, Any]:
    """`{"family", "params"}` for the configured family, with its data-dependent parameters
    (TabM's bin edges) fitted on the scaled training inputs."""
    from lifecycle_assets.training.families import FamilyError

    family = configured_family(config)
    try:
        params = family.check(config.training.model.params)
    except FamilyError as err:
        raise TrainingError(str(err)) from None
    if family.fit is not None:
        params = family.fit(numeric, params)
    return {"family": family.name, "params": params}


def init_output_bias(net: nn.Module, value: float) -> None:
    """Set the output layer's bias (the built-in families'; a user family without one of
    these starts where its factory put it)."""
    head = getattr(net, "head", None)
    if head is None and hasattr(net, "tabm"):
        head = getattr(net.tabm, "output", None)
    bias = getattr(head, "bias", None)
    if isinstance(bias, torch.Tensor):
        with torch.no_grad():
            bias.fill_(value)


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


@work("training")
def train_model(
    train: pl.DataFrame,
    config: LifecycleConfig,
    version: str,
    device: str | None = None,
) -> TrainingResult:
    """Fit preprocessing and the configured family's model on labelled rows; deterministic
    for the seed.

    With a history (`LifecycleConfig.history_days`), the whole split trains unless the
    recent window scores clearly better on the split's newest days
    (`training/history.py`); the artifact records the choice (metadata `history`). `device` overrides `training.device`
    (auto, cpu or xla); a family fitted outright (`gbdt`) fits on the CPU whatever it says.
    Each fit takes at most `training.max_rows` rows (`cap_rows`; metadata `training_sample`).
    """
    started = time.perf_counter()
    # The candidates are compared as fitted: no cross-fitted calibration for them.
    candidates = _without_cross_fitting(config)
    rows, history = choose_history(
        train,
        config,
        lambda candidate: _train_once(candidate, candidates, version, device).artifact,
    )
    result = _train_once(rows, config, version, device)
    if history is not None:
        result.artifact.metadata["history"] = history
        # the candidates' fits are part of what this model cost
        result = dataclasses.replace(result, seconds=time.perf_counter() - started)
    return result


def _train_once(
    train: pl.DataFrame, config: LifecycleConfig, version: str, device: str | None
) -> TrainingResult:
    """`train_model` on these rows (a sample of `training.max_rows` of them, if more)."""
    problem, cfg = config.problem, config.training
    if train.height == 0:
        raise TrainingError("the training split has no labelled rows")
    if problem.task == "binary" and train[problem.label].n_unique() < 2:
        raise TrainingError("the training split has a single class; cannot train a classifier")
    started = time.perf_counter()
    kind = resolve_device(device or cfg.device)
    if kind == "cpu":
        _register_xla()
    full, (train, sample) = train, cap_rows(train, config)
    if sample is not None and problem.task == "binary" and train[problem.label].n_unique() < 2:
        raise TrainingError(
            f"training.max_rows ({sample['max_rows']}) sampled a single class from "
            f"{sample['of_rows']} rows; raise the cap"
        )
    fit_rows, held = split_holdout(train, config)
    held, calibration_rows = split_calibration(held, config)
    preprocessor = Preprocessor.fit(
        fit_rows, problem.numeric_features, problem.categorical_features
    )
    num, cat = preprocessor.transform(fit_rows)
    y = fit_rows[problem.label].cast(pl.Float32).to_numpy().copy()
    family = configured_family(config)
    architecture = model_architecture(num, config)
    if problem.task != "binary":
        # Learn a standardised target; the artifact scales the output back (architecture
        # "target"), so it predicts in label units and labels of any scale train alike.
        mean, std = float(y.mean()), float(y.std()) or 1.0
        architecture["target"] = {"mean": mean, "std": std}
        y = ((y - mean) / std).astype(np.float32)
    holdout = None
    if held is not None:
        h_num, h_cat = preprocessor.transform(held)
        h_y = held[problem.label].cast(pl.Float32).to_numpy().copy()
        if "target" in architecture:
            h_y = ((h_y - architecture["target"]["mean"]) / architecture["target"]["std"]).astype(
                np.float32
            )
        holdout = (h_num, h_cat, h_y)
    if family.train is not None:
        net, losses, step_seconds, info = _fit_outright(
            family.name,
            family.train,
            preprocessor,
            architecture,
            (num, cat, y),
            problem.task,
            cfg,
            holdout,
        )
        compilations: list[int] = []
    else:
        # Initialise on the CPU from the seed, whatever trains it: both paths start identical.
        torch.manual_seed(cfg.seed)
        net = build_net(preprocessor, architecture, cfg.model_factories)
        if problem.task == "binary":
            positive_rate = float(y.mean())
            # Start the output at the base rate so early epochs are not spent learning it.
            init_output_bias(net, float(np.log(positive_rate / (1 - positive_rate))))
        fit = _fit_xla if kind == "xla" else _fit_eager
        losses, step_seconds, compilations, info = fit(
            net, num, cat, y, problem.task, cfg, holdout=holdout
        )
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
        metadata={
            "train_rows": full.height,
            # the loop's cap; a family fitted outright records its own (its params)
            "epochs": cfg.epochs if family.train is None else None,
            "seed": cfg.seed,
            "feature_ranges": fit_ranges(
                full,
                problem.numeric_features,
                problem.numeric_ranges,
                problem.feature_range_slack,
            ),
        },
    )
    calibrated_on, binary = 0, problem.task == "binary"
    raw, labels = None, None
    if calibration_rows is not None:
        # Fitted on rows neither the weights nor early stopping saw; folded into the
        # artifact's scoring (a Platt fit whose slope is not positive is not kept).
        raw = artifact.score(calibration_rows)
        labels = calibration_rows[problem.label].cast(pl.Float64).to_numpy()
    elif held is None and cfg.calibration_folds and cfg.calibration != "none" and binary:
        # No holdout: every fitted row calibrates, scored by a model that did not see it.
        raw, skipped = cross_fitted_scores(fit_rows, config, version, device)
        if raw is None:
            artifact.metadata["calibration_skipped"] = skipped
        else:
            labels = fit_rows[problem.label].cast(pl.Float64).to_numpy()
            artifact.metadata["calibration_folds"] = cfg.calibration_folds
    if raw is not None and labels is not None:
        calibrated_on = len(labels)
        fitted = fit_calibration(raw, labels, cfg.calibration)
        if fitted.get("method") is not None:
            artifact.architecture["calibration"] = fitted
        else:
            artifact.metadata["calibration_skipped"] = fitted.get("reason")
    artifact.metadata.update(
        {
            "fit_rows": fit_rows.height,
            "holdout_rows": 0 if held is None else held.height,
            "calibration_rows": calibrated_on,
            "best_epoch": info.get("best_epoch"),
            "epochs_run": len(losses),
            # (not "calibration": that key is post-processing's optional extra step)
            "calibration_method": (artifact.architecture.get("calibration") or {}).get("method"),
        }
    )
    if sample is not None:
        artifact.metadata["training_sample"] = sample
    seconds = time.perf_counter() - started
    info = {**info, "hardware": hardware(info["device"], info)}
    return TrainingResult(
        artifact=artifact,
        losses=losses,
        seconds=seconds,
        device=info["device"],
        compilations=compilations,
        # a family fitted outright: one step (a boosting round) per "epoch"
        steps_per_epoch=-(-train.height // info["batch_size"]) if "batch_size" in info else 1,
        step_seconds=step_seconds,
        info=info,
    )


def _fit_outright(
    name: str,
    train: Callable[..., Fitted],
    preprocessor: Preprocessor,
    architecture: dict[str, Any],
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
    task: str,
    cfg: Any,
    holdout: Holdout,
) -> tuple[nn.Module, list[float], list[float], dict[str, Any]]:
    """A family fitted outright (gbdt): its fit, then its module built from the params the
    fit recorded and loaded with the tensors it made — exactly as an artifact loads."""
    from lifecycle_assets.training.families import FamilyError

    try:
        fitted = train(
            preprocessor,
            architecture["params"],
            task=task,
            fit=rows,
            holdout=holdout,
            seed=cfg.seed,
            threads=cfg.cpu_threads,
        )
    except FamilyError as err:
        raise TrainingError(str(err)) from None
    architecture["params"] = fitted.params
    net = build_net(preprocessor, architecture, cfg.model_factories)
    try:
        net.load_state_dict(fitted.state)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise TrainingError(
            f"model family {name!r}: its fitted tensors do not fit its module ({detail})"
        ) from None
    info = {"device": "cpu", **fitted.info}
    return net, fitted.losses, fitted.step_seconds, info


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
        out = net(num, cat)
        if out.dim() == 2:  # an ensemble: every member learns the row (TabM's recipe)
            per_row = loss_fn(out, y.unsqueeze(1).expand_as(out)).mean(dim=1)
        else:
            per_row = loss_fn(out, y)
        loss = (per_row * weight).sum() / weight.sum()
        loss.backward()
        optimizer.step()
        return loss.detach()

    return train_step


Fit = tuple[list[float], list[float], list[int], dict[str, Any]]


Holdout = tuple[np.ndarray, np.ndarray, np.ndarray] | None


def _fit_eager(
    net: nn.Module,
    num: np.ndarray,
    cat: np.ndarray,
    y: np.ndarray,
    task: str,
    cfg: Any,
    holdout: Holdout = None,
) -> Fit:
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.cpu_threads)
    try:
        fitted = _fit(
            net,
            num,
            cat,
            y,
            task,
            cfg,
            device=torch.device("cpu"),
            batch_size=cfg.batch_size,
            holdout=holdout,
        )
    finally:
        torch.set_num_threads(threads)
    return (*fitted[:3], {**_restore_best(net, fitted[3]), "cpu_threads": cfg.cpu_threads})


def _fit_xla(
    net: nn.Module,
    num: np.ndarray,
    cat: np.ndarray,
    y: np.ndarray,
    task: str,
    cfg: Any,
    holdout: Holdout = None,
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
            holdout=holdout,
        )
    except RuntimeError as err:
        if "device_ready_queues_" not in str(err):
            raise
        raise TrainingError(
            "this process ran a backward pass before torch-xla was imported, so autograd "
            "cannot use the XLA device; set PJRT_DEVICE before the process trains anything, "
            "or train in a fresh process"
        ) from None
    losses, step_seconds, compilations, fit_info = fitted
    net.to("cpu")
    fit_info = _restore_best(net, fit_info)
    info = {
        **fit_info,
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
    holdout: Holdout = None,
) -> Fit:
    """The training loop both paths share: static batch shapes, weighted loss, Adam; with a
    holdout, early stopping on its loss and the best epoch's weights restored.

    The holdout is scored by a CPU copy of the weights after each epoch (a transfer, not a
    graph): the device keeps running the one training-step graph and nothing else."""
    judge = _HoldoutJudge(net, holdout, task, cfg.early_stopping_patience)
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
        if judge.stop_after_epoch(net):
            break
    # The caller restores `best_state` once the weights are back on the CPU: loading them
    # into device parameters would run graphs of its own.
    info = {"device": "cpu", "batch_size": batch_size, **judge.info()}
    return losses, step_seconds, compilations, info


class _HoldoutJudge:
    """Early stopping on the holdout's loss, judged by a CPU copy of the weights."""

    def __init__(self, net: nn.Module, holdout: Holdout, task: str, patience: int) -> None:
        self.holdout = holdout
        self.patience = patience
        self.loss_fn = _loss_fn(task)
        self.copy = copy.deepcopy(net).eval() if holdout is not None else None
        self.best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        self.losses: list[float] = []

    def stop_after_epoch(self, net: nn.Module) -> bool:
        if self.holdout is None or self.copy is None:
            return False
        state = {k: v.detach().to("cpu").clone() for k, v in net.state_dict().items()}
        self.copy.load_state_dict(state)
        num, cat, y = (torch.from_numpy(a) for a in self.holdout)
        with torch.inference_mode():
            out = self.copy(num, cat)
            target = y.unsqueeze(1).expand_as(out) if out.dim() == 2 else y
            loss = float(self.loss_fn(out, target).mean())
        self.losses.append(loss)
        epoch = len(self.losses)
        if self.best is None or loss < self.best[0]:
            self.best = (loss, epoch, state)
        return epoch - self.best[1] >= self.patience

    def info(self) -> dict[str, Any]:
        if self.best is None:
            return {}
        return {
            "best_epoch": self.best[1],
            "holdout_losses": self.losses,
            "best_state": self.best[2],
        }


def _restore_best(net: nn.Module, info: dict[str, Any]) -> dict[str, Any]:
    """Load the best epoch's weights (CPU tensors) into the CPU network; the info without them."""
    best = info.pop("best_state", None)
    if best is not None:
        net.load_state_dict(best)
    return info


def hardware(kind: str, info: dict[str, Any]) -> str:
    """A line for the model card: what trained it."""
    host = f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}"
    if "fitted_by" in info:  # a family fitted outright (gbdt)
        return f"{info['fitted_by']} on CPU ({info.get('cpu_threads')} threads); host {host}"
    if kind == "xla":
        import torch_xla

        return (
            f"torch-xla {torch_xla.__version__} on {info['xla_devices']}× "
            f"{info['xla_device_type']} ({info['data_parallel']} data parallel); host {host}"
        )
    return f"eager PyTorch on CPU ({info.get('cpu_threads')} threads); host {host}"
