"""Model families: the built-in `mlp` and `tabm`, a user family defined only in this test,
and what is refused (unknown family or hyperparameter, a factory that raises, weights that
do not fit, an artifact naming a family this process has not registered)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from torch import nn

from lifecycle_assets.config import ConfigError, parse_config
from lifecycle_assets.metrics import log_loss, roc_auc
from lifecycle_assets.training.artifact import (
    MANIFEST,
    WEIGHTS,
    ArtifactError,
    calibrate,
    load_artifact,
    save_artifact,
)
from lifecycle_assets.training.features import Preprocessor
from lifecycle_assets.training.train import (
    TrainingError,
    fit_calibration,
    split_calibration,
    split_holdout,
    train_model,
)
from lifecycle_assets_tests.training.helpers import small_config, synthetic

TABM = {"family": "tabm", "k": 4, "n_blocks": 1, "d_block": 32, "n_bins": 8, "d_embedding": 4}
HERE = __name__


@pytest.fixture(scope="module")
def data():
    return synthetic(2000, seed=1), synthetic(1000, seed=2)


@pytest.fixture(scope="module")
def tabm(data):
    return train_model(data[0], small_config(TABM, epochs=6), "v1")


def test_tabm_learns_and_round_trips_through_the_artifact(tmp_path: Path, data, tabm) -> None:
    _, test = data
    assert roc_auc(test["is_fraud"].to_numpy(), tabm.artifact.score(test)) > 0.8
    save_artifact(tabm.artifact, tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    arch = manifest["architecture"]
    assert arch["family"] == "tabm" and arch["params"]["k"] == 4
    # the fitted bin edges, one list per numeric feature, so loading rebuilds the shapes
    assert len(arch["params"]["bins"]) == len(tabm.artifact.preprocessor.numeric)
    loaded = load_artifact(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(test), tabm.artifact.score(test))
    # one scoring function: a row at a time equals the batch (to float tolerance)
    rows = test.head(5).to_dicts()
    np.testing.assert_allclose(loaded.score_rows(rows), loaded.score(test.head(5)), atol=1e-6)


def test_tabm_is_reproducible_for_the_same_data_and_seed(data, tabm) -> None:
    again = train_model(data[0], small_config(TABM, epochs=6), "v1").artifact.net.state_dict()
    first = tabm.artifact.net.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_tabm_regression_predicts_in_label_units(data) -> None:
    train = data[0].with_columns((data[0]["amount"] * 3 + 1000).alias("is_fraud"))
    cfg = small_config(TABM, epochs=4)
    cfg = cfg.model_copy(
        update={
            "problem": cfg.problem.model_copy(update={"task": "regression"}),
            "labels": cfg.labels.model_copy(update={"unlabeled_after_maturity": "drop"}),
        }
    )
    model = train_model(train, cfg, "v1").artifact
    assert model.architecture["target"]["mean"] == pytest.approx(train["is_fraud"].mean(), rel=1e-5)
    predictions = model.score(train)
    assert abs(predictions.mean() - train["is_fraud"].mean()) < 0.2 * train["is_fraud"].std()


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ({"family": "xgboost"}, "training.model.family 'xgboost' is not registered"),
        ({"family": "tabm", "width": 3}, "unknown hyperparameter 'width' for family tabm"),
        ({"family": "mlp", "hidden_units": 0}, "training.model.hidden_units"),
        ({"family": "tabm", "dropout": 1.5}, "training.model.dropout"),
    ],
)
def test_bad_family_config_is_one_line_naming_the_field(model: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        parse_config({"training": {"model": model}})
    assert "\n" not in str(info.value)


# --- a user family, defined only here -----------------------------------------------------------


class Linear(nn.Module):
    """The forward contract: (numeric [n, k], categorical [n, m]) → logits [n]."""

    def __init__(self, pre: Preprocessor, params: dict[str, Any]) -> None:
        super().__init__()
        self.scale = float(params.get("scale", 1.0))
        self.numeric = nn.Linear(len(pre.numeric), 1)
        self.categorical = nn.ModuleList(nn.Embedding(c, 1) for c in pre.cardinalities())

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        out = self.numeric(numeric).squeeze(1) * self.scale
        for i, emb in enumerate(self.categorical):
            out = out + emb(categorical[:, i]).squeeze(1)
        return out


def make_linear(pre: Preprocessor, params: dict[str, Any]) -> nn.Module:
    return Linear(pre, params)


def make_broken(pre: Preprocessor, params: dict[str, Any]) -> nn.Module:
    raise RuntimeError("the factory's own failure")


def user_config(family: str, **params: Any):
    cfg = small_config(epochs=4)
    factories = {"linear": f"{HERE}:make_linear", "broken": f"{HERE}:make_broken"}
    training = cfg.training.model_copy(
        update={
            "model": type(cfg.training.model).model_validate({"family": family, **params}),
            "model_factories": factories,
        }
    )
    return cfg.model_copy(update={"training": training}), factories


def test_a_user_family_trains_saves_and_loads_only_where_registered(tmp_path: Path, data) -> None:
    train, test = data
    cfg, factories = user_config("linear", scale=0.5)
    artifact = train_model(train, cfg, "v1").artifact
    assert roc_auc(test["is_fraud"].to_numpy(), artifact.score(test)) > 0.75
    save_artifact(artifact, tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    assert manifest["architecture"] == {"family": "linear", "params": {"scale": 0.5}}
    loaded = load_artifact(tmp_path / "m", factories=factories)
    np.testing.assert_array_equal(loaded.score(test), artifact.score(test))
    # a process (a config) that has not registered the family refuses it, importing nothing
    with pytest.raises(ArtifactError, match="unknown model family 'linear'"):
        load_artifact(tmp_path / "m")


def test_a_factory_that_raises_fails_the_run_with_its_error(data) -> None:
    cfg, _ = user_config("broken")
    with pytest.raises(ArtifactError, match="the factory's own failure"):
        train_model(data[0], cfg, "v1")


def test_weights_that_do_not_fit_the_family_are_refused(tmp_path: Path, data, tabm) -> None:
    cfg, factories = user_config("linear")
    save_artifact(train_model(data[0], cfg, "v1").artifact, tmp_path / "linear")
    save_artifact(tabm.artifact, tmp_path / "tabm")
    # the linear model's weights under TabM's manifest
    (tmp_path / "tabm" / WEIGHTS).write_bytes((tmp_path / "linear" / WEIGHTS).read_bytes())
    manifest = json.loads((tmp_path / "tabm" / MANIFEST).read_text())
    from lifecycle_assets.training.artifact import sha256_file

    manifest["weights_sha256"] = sha256_file(tmp_path / "tabm" / WEIGHTS)
    (tmp_path / "tabm" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="weights do not fit the architecture"):
        load_artifact(tmp_path / "tabm", factories=factories)


def test_an_unknown_factory_path_is_one_line() -> None:
    cfg, _ = user_config("linear")
    cfg = cfg.model_copy(
        update={
            "training": cfg.training.model_copy(
                update={"model_factories": {"linear": "no_such_module:make"}}
            )
        }
    )
    with pytest.raises(TrainingError, match=r"training\.model_factories\.linear: cannot load"):
        train_model(synthetic(100, seed=3), cfg, "v1")


# --- the training recipe: early stopping and calibration on a time-ordered holdout ------------


def test_holdout_is_the_freshest_rows_and_decides_early_stopping_and_calibration(data) -> None:
    import datetime as dt

    train, _ = data
    start = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    # shuffled event times: the holdout must be the latest ones, not the last rows
    order = np.random.default_rng(0).permutation(train.height)
    timed = train.with_columns(
        pl.Series("event_time", [start + dt.timedelta(minutes=int(i)) for i in order])
    )
    cfg = small_config(epochs=30, holdout_fraction=0.2, early_stopping_patience=2)
    fit_rows, held = split_holdout(timed, cfg)
    assert held is not None and held.height == 400 and fit_rows.height == 1600
    assert held["event_time"].min() > fit_rows["event_time"].max()
    result = train_model(timed, cfg, "v1")
    meta = result.artifact.metadata
    # the holdout's older half stops early, its freshest half calibrates
    assert (meta["fit_rows"], meta["holdout_rows"], meta["calibration_rows"]) == (1600, 200, 200)
    stop, calibration_rows = split_calibration(held, cfg)
    assert stop is not None and calibration_rows is not None
    assert calibration_rows["event_time"].min() > stop["event_time"].max()
    losses = result.info["holdout_losses"]
    best = meta["best_epoch"]
    assert losses[best - 1] == min(losses)  # the best epoch's weights were kept
    assert len(result.losses) == meta["epochs_run"] <= 30
    if meta["epochs_run"] < 30:  # stopped early: `patience` epochs without improvement
        assert meta["epochs_run"] - best == 2
    calibration = result.artifact.architecture["calibration"]
    assert calibration["method"] == "platt" and meta["calibration_method"] == "platt"
    # calibrated on rows neither the fit nor early stopping saw: the mean prediction matches
    # the label rate there
    scores = result.artifact.score(calibration_rows)
    assert abs(scores.mean() - calibration_rows["is_fraud"].mean()) < 0.02


def test_platt_and_isotonic_calibration_fix_a_miscalibrated_score() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random(20_000)
    labels = (rng.random(20_000) < truth).astype(np.float64)
    skewed = truth**3  # ranks right, probabilities far too low
    for method in ("platt", "isotonic"):
        fitted = fit_calibration(skewed, labels, method)
        calibrated = calibrate(skewed, fitted)
        assert abs(calibrated.mean() - labels.mean()) < 0.01, method
        assert np.all(np.diff(calibrated[np.argsort(skewed)]) >= -1e-12)  # monotone
        assert log_loss(labels, calibrated) < log_loss(labels, skewed)


def test_isotonic_pools_ties_and_interpolates_between_block_centres() -> None:
    scores = np.array([0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.9, 0.9])
    labels = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    fitted = fit_calibration(scores, labels, "isotonic")
    # one point per tie, at its mean score, its mean label; no block mapped by its left edge
    assert fitted["x"] == pytest.approx([0.1, 0.5, 0.9])
    assert fitted["y"] == pytest.approx([0.25, 0.5, 1.0])
    between = calibrate(np.array([0.3, 0.7, 0.05, 0.95]), fitted)
    assert between == pytest.approx([0.375, 0.75, 0.25, 1.0])  # interpolated, flat outside


def test_a_platt_fit_with_a_slope_that_is_not_positive_is_not_kept() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(2000)
    labels = (rng.random(2000) > scores).astype(np.float64)  # the ranking is inverted
    fitted = fit_calibration(scores, labels, "platt")
    assert fitted["method"] is None and "not positive" in fitted["reason"]


def test_no_holdout_when_it_would_be_too_small(data) -> None:
    small = data[0].head(200)
    _, held = split_holdout(small, small_config(holdout_fraction=0.1))
    assert held is None  # 20 rows cannot judge an epoch
    result = train_model(small, small_config(holdout_fraction=0.1, epochs=2), "v1")
    assert result.artifact.metadata["holdout_rows"] == 0
    assert "calibration" not in result.artifact.architecture
