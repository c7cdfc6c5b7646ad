"""What the serving unit tests share: the example problem, a small untrained artifact, request
features, a stand-in model store, and a runtime over a home (fixtures in `conftest.py`)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import polars as pl
import torch

from lifecycle_assets.config import load_config
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.registry.registry import Registry, registry_dir
from lifecycle_assets.serving.runtime import ServingRuntime
from lifecycle_assets.training.artifact import ModelArtifact, build_net
from lifecycle_assets.training.features import Preprocessor

PROBLEM = load_config().problem
DAY = dt.date(2026, 6, 5)
NOON = dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC)


def make_artifact(version: str, seed: int = 0, problem: Any = PROBLEM) -> ModelArtifact:
    rng = np.random.default_rng(seed)
    n = 64
    frame = pl.DataFrame(
        {
            **{c: rng.normal(size=n) for c in problem.numeric_features},
            **{c: rng.choice(["a", "b", "c"], n) for c in problem.categorical_features},
        }
    )
    pre = Preprocessor.fit(frame, problem.numeric_features, problem.categorical_features)
    arch = {"embedding_dim": 4, "hidden_units": 8}
    torch.manual_seed(seed)
    return ModelArtifact(
        task="binary",
        preprocessor=pre,
        net=build_net(pre, arch),
        architecture=arch,
        thresholds={"review": 0.3, "decline": 0.7},
        version=version,
    )


def features(i: int = 0) -> dict[str, Any]:
    return {
        "amount": 10.0 + i,
        "merchant_risk": 0.1,
        "hour": i % 24,
        "card_age_days": 100,
        "txn_count_24h": 2,
        "merchant_category": "a",
        "country": "b",
        "channel": "never-seen",
    }


class FakeStore:
    """Stands in for the BentoML model store: `load_version(home, name, version)`."""

    def __init__(self) -> None:
        self.models: dict[str, ModelArtifact] = {}
        self.loads: list[str] = []

    def __call__(self, home: LifecycleHome, name: str, version: str) -> ModelArtifact:
        assert name == PROBLEM.name
        self.loads.append(version)
        if version not in self.models:
            raise RuntimeError(f"{version} is not in the store")
        return self.models[version]


def point(home: LifecycleHome, version: str | None, alias: str = "production") -> None:
    """Move `alias` with the registry's own alias writer."""
    reg = Registry(home, PROBLEM.name)
    versions = reg.versions()
    if version is not None and version not in versions:
        versions[version] = {"weights_sha256": "0" * 64}
        (registry_dir(home) / "versions.json").parent.mkdir(parents=True, exist_ok=True)
        (registry_dir(home) / "versions.json").write_text(json.dumps(versions))
    reg.move_alias(alias, version, actor="test", reason="test", when=NOON)


def runtime(home: LifecycleHome, store: FakeStore, **kwargs: Any) -> ServingRuntime:
    return ServingRuntime(home, writer_id="unit", loader=store, check_interval_s=0.0, **kwargs)
