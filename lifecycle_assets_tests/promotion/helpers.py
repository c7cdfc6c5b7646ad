"""Real models and versioned test splits without running the whole loop: a labelled frame
with the example config's columns, small nets fitted here (or left untrained, a bad model),
registered in the home's registry (its model store), and splits published with DVC."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import torch

from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.defs.resources.versioning import VersioningResource
from lifecycle_assets.files import write_json
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.registry.registry import Registry
from lifecycle_assets.training.artifact import ModelArtifact, build_net, save_artifact
from lifecycle_assets.training.features import Preprocessor

CATEGORIES = {
    "merchant_category": ["grocery", "restaurant", "fuel", "retail", "electronics", "travel"],
    "country": ["US", "GB", "DE", "FR"],
    "channel": ["online", "pos"],
}


def labelled_frame(n: int, seed: int, start: int = 0) -> pl.DataFrame:
    """Payments whose fraud label depends on risk, amount and channel (about 8 % positive)."""
    rng = np.random.default_rng(seed)
    risk = rng.random(n)
    amount = rng.lognormal(3.5, 1.0, n)
    channel = rng.choice(CATEGORIES["channel"], n, p=[0.5, 0.5])
    logit = -4.2 + 3.5 * risk + 0.6 * np.log(amount / 30) + 0.8 * (channel == "online")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pl.DataFrame(
        {
            "request_id": [f"r{start + i}" for i in range(n)],
            "amount": amount,
            "merchant_risk": risk,
            "hour": rng.integers(0, 24, n).astype(np.float64),
            "card_age_days": rng.integers(0, 2000, n).astype(np.float64),
            "txn_count_24h": rng.integers(0, 6, n).astype(np.float64),
            "merchant_category": rng.choice(CATEGORIES["merchant_category"], n),
            "country": rng.choice(CATEGORIES["country"], n),
            "channel": channel,
            "is_fraud": y,
        }
    )


def fit_model(
    home: LifecycleHome, frame: pl.DataFrame, version: str, steps: int = 300, seed: int = 0
) -> ModelArtifact:
    """A TabularNet fitted full-batch with Adam; `steps=0` leaves it untrained (a bad model)."""
    problem = home.config().problem
    pre = Preprocessor.fit(frame, problem.numeric_features, problem.categorical_features)
    arch = {"embedding_dim": 4, "hidden_units": 16}
    torch.manual_seed(seed)
    net = build_net(pre, arch)
    num, cat = pre.transform(frame)
    x_num, x_cat = torch.from_numpy(num), torch.from_numpy(cat)
    y = torch.from_numpy(frame[problem.label].cast(pl.Float32).to_numpy().copy())
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    net.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(net(x_num, x_cat), y).backward()
        optimizer.step()
    net.eval()
    return ModelArtifact(
        task="binary",
        preprocessor=pre,
        net=net,
        architecture=arch,
        thresholds={"review": 0.3, "decline": 0.7},
        metadata={"train_split_tag": None},
        version=version,
    )


def register(home: LifecycleHome, artifact: ModelArtifact, version: str) -> str:
    """Save `artifact` as `version` and register it (versions.json + BentoML store)."""
    artifact.version = version
    staged = home.root / "staging" / version
    shutil.rmtree(staged, ignore_errors=True)
    save_artifact(artifact, staged)
    registry = Registry(home, home.config().problem.name)
    return registry.register(staged, {"source": "test"})


def _versioning(home: LifecycleHome) -> VersioningResource:
    return VersioningResource(home=LifecycleHomeResource(workdir=str(home.root)))


def publish_split(home: LifecycleHome, which: str, day: dt.date, frame: pl.DataFrame) -> dict:
    """`which` (train/test) split of `day`, versioned as the loop does it (DVC commit, git
    tag, push) and stored where the IO manager hands it downstream."""

    def write(folder: Path) -> None:
        folder.mkdir(parents=True)
        frame.write_parquet(folder / "data.parquet")
        write_json(folder / "data_card.json", {"rows": frame.height})

    stage = f"{which}_split"
    meta = _versioning(home).publish(
        stage,
        day.isoformat(),
        f"datasets/{stage}",
        write,
        message=f"{stage} {day}: {frame.height} rows",
        tag=f"{stage}/{day}",
    )
    target = home.assets / stage / f"{day}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(target)
    return meta


def stage_day(
    home: LifecycleHome, day: dt.date, test: pl.DataFrame, candidate: ModelArtifact
) -> None:
    """Day D's inputs of `validation_report`: the versioned train/test splits and the
    candidate (`models/candidate` in the repo, and where the IO manager keeps it)."""
    publish_split(home, "train", day, test.head(100))
    publish_split(home, "test", day, test)
    candidate.metadata["train_split_tag"] = f"train_split/{day}"
    _versioning(home).publish(
        "candidate_model",
        day.isoformat(),
        "models/candidate",
        lambda folder: save_artifact(candidate, folder),
        message=f"candidate {candidate.version} for {day}",
        tag=None,
    )
    target = home.assets / "candidate_model" / day.isoformat()
    shutil.rmtree(target, ignore_errors=True)
    save_artifact(candidate, target)
