"""Model families: which network a model is, built from its hyperparameters.

A family is a factory `(preprocessor, params) -> torch.nn.Module` with the project's forward
contract: `module(numeric float32 [n, k], categorical int64 [n, m])` returns logits (binary)
or values (regression) of shape `[n]`, or `[n, e]` for an ensemble of `e` predictions
(averaged in probability space for binary, in value space for regression). Categorical
inputs are vocabulary indices (0 is the out-of-vocabulary bucket).

Built in: `mlp` (embeddings + a two-layer MLP), `tabm` (TabM, Gorishniy et al., ICLR 2025,
with piecewise-linear numeric embeddings) and `gbdt` (gradient-boosted trees fitted by
LightGBM and compiled into tensors: `training/trees.py`; it is fitted outright, not by the
gradient-descent loop). A user adds one in their own package, through the
`lifecycle.model_families` entry-point group or `training.model_factories` in their
`lifecycle.yaml` (`{name: "package.module:function"}`); see docs/training-and-registry.md.

An artifact records only the family's name and its parameters. Loading rebuilds the module
from a family registered in *this* process and loads the weights into it: no code is ever
imported because an artifact names it, and an unregistered family is refused.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.hyperparameters import (
    ENTRY_POINT_GROUP,
    GbdtParams,
    MlpParams,
    TabmParams,
)
from lifecycle_assets.training.features import Preprocessor
from lifecycle_assets.training.fitted import Fitted
from lifecycle_assets.training.model import TabularNet
from lifecycle_assets.training.trees import TreeEnsembleNet, fit_gbdt

Factory = Callable[[Preprocessor, dict[str, Any]], nn.Module]


class FamilyError(LifecycleError, ValueError):
    """An unknown family, a bad hyperparameter or a factory that cannot be loaded."""


@dataclass(frozen=True)
class Family:
    name: str
    build: Factory
    # The hyperparameter schema; None: the factory checks its own parameters.
    params: type[BaseModel] | None = None
    # Data-dependent parameters fitted before `build` (TabM's bin edges): (scaled numeric
    # training inputs, params) -> params with the fitted entries added.
    fit: Callable[[np.ndarray, dict[str, Any]], dict[str, Any]] | None = None
    # A family fitted outright instead of by the gradient-descent loop (gbdt: LightGBM):
    # called as train(preprocessor, params, task=, fit=(numeric, categorical, target),
    # holdout=the same or None, seed=, threads=); the target is standardised for
    # regression, as the loop's is.
    train: Callable[..., Fitted] | None = None

    def check(self, params: Mapping[str, Any], where: str = "training.model") -> dict[str, Any]:
        """`params` validated by the family's schema (defaults filled in), or one line
        naming the field."""
        if self.params is None:
            return dict(params)
        try:
            return self.params.model_validate(dict(params)).model_dump()
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            msg = "unknown hyperparameter" if first["type"] == "extra_forbidden" else first["msg"]
            raise FamilyError(f"{where}.{field}: {msg} (family {self.name})") from None


def _build_mlp(pre: Preprocessor, params: dict[str, Any]) -> nn.Module:
    return TabularNet(
        n_numeric=len(pre.numeric),
        cardinalities=pre.cardinalities(),
        embedding_dim=int(params["embedding_dim"]),
        hidden_units=int(params["hidden_units"]),
    )


class TabmNet(nn.Module):
    """TabM behind the project's forward contract: `[n, k]` predictions, one per member."""

    def __init__(self, pre: Preprocessor, params: dict[str, Any]) -> None:
        super().__init__()
        import rtdl_num_embeddings
        import tabm

        bins = params.get("bins")
        embeddings = None
        if pre.numeric:
            if not bins or len(bins) != len(pre.numeric):
                raise FamilyError(
                    "tabm needs fitted bins for every numeric feature (params.bins); "
                    "train the model, or fix the manifest"
                )
            embeddings = rtdl_num_embeddings.PiecewiseLinearEmbeddings(
                [torch.tensor(b, dtype=torch.float32) for b in bins],
                int(params["d_embedding"]),
                activation=False,
                version="B",
            )
        self.tabm = tabm.TabM.make(
            n_num_features=len(pre.numeric),
            cat_cardinalities=pre.cardinalities() or None,
            d_out=1,
            num_embeddings=embeddings,
            k=int(params["k"]),
            n_blocks=int(params["n_blocks"]),
            d_block=int(params["d_block"]),
            dropout=float(params["dropout"]),
        )
        self._numeric = bool(pre.numeric)
        self._categorical = bool(pre.categorical)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        out = self.tabm(
            numeric if self._numeric else None, categorical if self._categorical else None
        )
        return out.squeeze(-1)  # [n, k]


def _fit_tabm(numeric: np.ndarray, params: dict[str, Any]) -> dict[str, Any]:
    if numeric.shape[1] == 0:
        return {**params, "bins": []}
    import rtdl_num_embeddings

    x = torch.from_numpy(np.ascontiguousarray(numeric, dtype=np.float32))
    # Few distinct values (a flag, an hour) give fewer bins: compute_bins needs more than
    # one distinct value per feature, so constant features get two edges around the value.
    bins: list[list[float]] = []
    for j in range(x.shape[1]):
        column = x[:, j : j + 1]
        distinct = int(torch.unique(column).numel())
        if distinct < 2:
            v = float(column[0, 0]) if len(column) else 0.0
            bins.append([v - 1.0, v + 1.0])
            continue
        n_bins = max(1, min(int(params["n_bins"]), distinct - 1))
        (edges,) = rtdl_num_embeddings.compute_bins(column, n_bins=n_bins)
        bins.append([float(e) for e in edges.tolist()])
    return {**params, "bins": bins}


def _build_gbdt(pre: Preprocessor, params: dict[str, Any]) -> nn.Module:
    return TreeEnsembleNet(pre, params)


def _train_gbdt(pre: Preprocessor, params: dict[str, Any], **fit: Any) -> Fitted:
    return fit_gbdt(pre, params, **fit)


BUILT_IN: dict[str, Family] = {
    "mlp": Family("mlp", _build_mlp, MlpParams),
    "tabm": Family("tabm", TabmNet, TabmParams, fit=_fit_tabm),
    "gbdt": Family("gbdt", _build_gbdt, GbdtParams, train=_train_gbdt),
}


def _import_factory(spec: str, where: str) -> Factory:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise FamilyError(f"{where}: {spec!r} is not 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as err:
        raise FamilyError(f"{where}: cannot load {spec!r}: {err}") from None
    if not callable(target):
        raise FamilyError(f"{where}: {spec!r} is not callable")
    return target


def _user_family(name: str, factory: Any) -> Family:
    # A factory may carry its hyperparameter schema as `factory.hyperparameters`.
    schema = getattr(factory, "hyperparameters", None)
    params = schema if isinstance(schema, type) and issubclass(schema, BaseModel) else None
    return Family(name, factory, params)


def entry_point_names() -> set[str]:
    """Families installed through the entry-point group (names only: nothing is imported)."""
    return {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def resolve(name: str, factories: Mapping[str, str] | None = None) -> Family:
    """The family called `name`: built in, named in the config's `training.model_factories`,
    or installed through the `lifecycle.model_families` entry-point group."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    if factories and name in factories:
        where = f"training.model_factories.{name}"
        return _user_family(name, _import_factory(factories[name], where))
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                return _user_family(name, ep.load())
            except Exception as err:  # an installed plugin that does not load: one line
                raise FamilyError(
                    f"model family {name!r} ({ep.value}) does not load: {err}"
                ) from None
    known = sorted({*BUILT_IN, *(factories or {}), *entry_point_names()})
    raise FamilyError(
        f"unknown model family {name!r} (registered here: {', '.join(known)}); a user family "
        "is registered in training.model_factories or the lifecycle.model_families entry points"
    )


def build(
    pre: Preprocessor,
    architecture: Mapping[str, Any],
    factories: Mapping[str, str] | None = None,
) -> nn.Module:
    """The module an artifact's `architecture` describes (`{"family", "params"}`; the
    first format, `{"embedding_dim", "hidden_units"}`, is an `mlp`)."""
    if "family" not in architecture:
        architecture = {"family": "mlp", "params": dict(architecture)}
    family = resolve(str(architecture["family"]), factories)
    params = family.check(architecture.get("params", {}), "architecture.params")
    try:
        module = family.build(pre, params)
    except FamilyError:
        raise
    except Exception as err:
        raise FamilyError(f"model family {family.name!r} failed to build: {err}") from err
    if not isinstance(module, nn.Module):
        raise FamilyError(
            f"model family {family.name!r} returned {type(module).__name__}, not a torch.nn.Module"
        )
    return module
