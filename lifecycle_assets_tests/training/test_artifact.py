"""Preprocessing, training and the model artifact: one format, one scoring function."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import polars as pl
import pytest
import torch

from lifecycle_assets.config import load_config
from lifecycle_assets.defs.training.assets import _train as candidate_lineage
from lifecycle_assets.metrics import roc_auc
from lifecycle_assets.training.artifact import (
    MANIFEST,
    WEIGHTS,
    ArtifactError,
    ModelArtifact,
    build_net,
    load_artifact,
    save_artifact,
    sha256_file,
)
from lifecycle_assets.training.card import model_card_markdown
from lifecycle_assets.training.features import OOV_INDEX, Preprocessor
from lifecycle_assets.training.train import TrainingError, cap_rows, train_model
from lifecycle_assets_tests.training.helpers import CATEGORICAL, NUMERIC, small_config, synthetic


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    return synthetic(2000, seed=1), synthetic(1000, seed=2)


@pytest.fixture(scope="module")
def trained(data) -> ModelArtifact:
    train, _ = data
    return train_model(train, small_config(), "v7").artifact


# --- preprocessing ---------------------------------------------------------------------------

FRAME = pl.DataFrame(
    {
        "x": [1.0, 2.0, 3.0, 6.0],
        "const": [5.0, 5.0, 5.0, 5.0],
        "c": ["b", "a", None, "b"],
        "d": ["z", "z", "y", "x"],
    }
)


def test_preprocessor_fit_learns_scaling_and_sorted_vocabularies():
    pre = Preprocessor.fit(FRAME, ("x", "const"), ("c", "d"))
    x = FRAME["x"].to_numpy()
    assert pre.means == pytest.approx((x.mean(), 5.0))
    assert pre.stds == pytest.approx((x.std(ddof=1), 1.0))  # a constant column is not divided by 0
    assert pre.vocabularies == {"c": ("a", "b"), "d": ("x", "y", "z")}
    assert pre.cardinalities() == [3, 4]  # + the out-of-vocabulary bucket


def test_preprocessor_transform_scales_and_indexes_with_oov_zero():
    pre = Preprocessor.fit(FRAME, ("x", "const"), ("c", "d"))
    new = pl.DataFrame(
        {"x": [3.0, 0.0], "const": [5.0, 7.0], "c": ["a", "unseen"], "d": [None, "x"]}
    )
    num, cat = pre.transform(new)
    mean, std = FRAME["x"].mean(), FRAME["x"].std()
    expected_num = np.array([[(3.0 - mean) / std, 0.0], [(0.0 - mean) / std, 2.0]], np.float32)
    assert num.dtype == np.float32 and cat.dtype == np.int64
    np.testing.assert_allclose(num, expected_num, rtol=1e-6)
    np.testing.assert_array_equal(cat, np.array([[1, OOV_INDEX], [OOV_INDEX, 1]]))
    assert OOV_INDEX == 0
    assert num.flags["C_CONTIGUOUS"] and cat.flags["C_CONTIGUOUS"]


def test_transform_keeps_row_order():
    pre = Preprocessor.fit(FRAME, ("x",), ("d",))
    _, cat = pre.transform(pl.DataFrame({"x": [0.0] * 5, "d": ["z", "x", "q", "y", "z"]}))
    np.testing.assert_array_equal(cat[:, 0], [3, 1, 0, 2, 3])


def test_preprocessor_json_round_trip():
    pre = Preprocessor.fit(FRAME, ("x", "const"), ("c", "d"))
    text = json.dumps(pre.to_json())
    again = Preprocessor.from_json(json.loads(text))
    assert again == pre
    for a, b in zip(pre.transform(FRAME), again.transform(FRAME), strict=True):
        np.testing.assert_array_equal(a, b)


def test_preprocessor_with_only_one_kind_of_feature():
    numeric_only = Preprocessor.fit(FRAME, ("x",), ())
    num, cat = numeric_only.transform(FRAME)
    assert (num.shape, cat.shape) == ((4, 1), (4, 0))
    categorical_only = Preprocessor.fit(FRAME, (), ("d",))
    num, cat = categorical_only.transform(FRAME)
    assert (num.shape, cat.shape) == ((4, 0), (4, 1))


def test_transform_rows_equals_transform(data):
    train, test = data
    pre = Preprocessor.fit(train, NUMERIC, CATEGORICAL)
    rows = test.select(*NUMERIC, *CATEGORICAL).head(50).to_dicts()
    rows[0]["country"] = "never-seen"
    rows[1]["hour"] = 7  # ints arrive from JSON payloads
    frame = pl.DataFrame(rows, schema=test.select(*NUMERIC, *CATEGORICAL).schema)
    for a, b in zip(pre.transform(frame), pre.transform_rows(rows), strict=True):
        np.testing.assert_array_equal(a, b)
    assert pre.transform_rows(rows)[1][0, CATEGORICAL.index("country")] == OOV_INDEX


# --- training --------------------------------------------------------------------------------


def test_train_model_learns_a_separable_problem(data, trained):
    _, test = data
    auc = roc_auc(test["is_fraud"].to_numpy(), trained.score(test))
    assert auc > 0.8
    assert trained.version == "v7"
    assert trained.task == "binary"
    assert trained.preprocessor.numeric == NUMERIC
    assert trained.preprocessor.categorical == CATEGORICAL
    cfg = small_config()
    assert trained.thresholds == {
        "review": cfg.postprocessing.review_threshold,
        "decline": cfg.postprocessing.decline_threshold,
    }
    ranges = trained.metadata.pop("feature_ranges")
    assert trained.metadata == {
        "train_rows": 2000,
        "epochs": 12,
        "seed": cfg.training.seed,
        # no holdout in these tests (small_config): every row fits, no early stop, no calibration
        "fit_rows": 2000,
        "holdout_rows": 0,
        "calibration_rows": 0,
        "best_epoch": None,
        "epochs_run": 12,
        "calibration_method": None,
    }
    trained.metadata["feature_ranges"] = ranges
    train, _ = data
    # configured ranges as given; the others the training range widened by the slack
    assert ranges["hour"] == [0.0, 23.0] and ranges["merchant_risk"] == [0.0, 1.0]
    lo, hi = train["amount"].min(), train["amount"].max()
    slack = cfg.problem.feature_range_slack * (hi - lo)
    assert ranges["amount"] == pytest.approx([lo - slack, hi + slack])
    assert set(ranges) == set(NUMERIC)


def test_training_loss_goes_down(data):
    train, _ = data
    losses = train_model(train, small_config(epochs=4), "v1").losses
    assert len(losses) == 4
    assert losses[-1] < losses[0]


def test_same_data_and_seed_give_bitwise_identical_weights(data, trained):
    train, _ = data
    again = train_model(train, small_config(), "v7").artifact
    first, second = trained.net.state_dict(), again.net.state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    seed = small_config().training.seed
    other_seed = train_model(train, small_config(seed=seed + 1), "v7").artifact.net.state_dict()
    assert not all(torch.equal(first[k], other_seed[k]) for k in first)


def test_training_on_one_class_is_refused(data):
    train, _ = data
    with pytest.raises(TrainingError, match="single class"):
        train_model(train.with_columns(pl.lit(0.0).alias("is_fraud")), small_config(), "v1")


def test_training_on_no_rows_is_refused(data):
    train, _ = data
    with pytest.raises(TrainingError, match="no labelled rows"):
        train_model(train.clear(), small_config(), "v1")


# --- training.max_rows ------------------------------------------------------------------------


def test_max_rows_samples_the_same_rows_in_their_order(data):
    train, _ = data
    rows, sample = cap_rows(train, small_config(max_rows=500))
    again, _ = cap_rows(train, small_config(max_rows=500))
    assert rows.equals(again)
    assert sample == {"max_rows": 500, "of_rows": 2000, "rows": 500, "seed": 7}
    assert rows["request_id"].is_unique().all()
    order = rows["request_id"].str.slice(1).cast(pl.Int64)
    assert order.is_sorted()  # the split's order kept: the holdout and history read it
    other, _ = cap_rows(train, small_config(max_rows=500, seed=8))
    assert not other.equals(rows)


def test_max_rows_fits_the_sample_and_records_it(data):
    train, _ = data
    cfg = small_config(max_rows=500, epochs=2)
    first = train_model(train, cfg, "v1").artifact
    second = train_model(train, cfg, "v1").artifact
    for key, tensor in first.net.state_dict().items():
        assert torch.equal(tensor, second.net.state_dict()[key]), key
    meta = first.metadata
    assert meta["train_rows"] == 2000 and meta["fit_rows"] == 500
    assert meta["training_sample"] == {"max_rows": 500, "of_rows": 2000, "rows": 500, "seed": 7}
    card = model_card_markdown(first, cfg)
    assert "Fitted on a sample: 500 of 2000 rows (training.max_rows 500" in card
    lineage = candidate_lineage(train, cfg, "v1", {})[1]
    assert lineage["training_sample"] == meta["training_sample"]
    assert lineage["train_rows"] == 2000 and lineage["training_params"]["max_rows"] == 500


def test_no_cap_or_a_cap_above_the_split_trains_every_row(data, trained):
    train, _ = data
    assert cap_rows(train, small_config()) == (train, None)
    capped = train_model(train, small_config(max_rows=train.height), "v7").artifact
    assert "training_sample" not in capped.metadata and "training_sample" not in trained.metadata
    for key, tensor in trained.net.state_dict().items():
        assert torch.equal(tensor, capped.net.state_dict()[key]), key
    assert "Fitted on a sample" not in model_card_markdown(trained, small_config())


def test_regression_scores_are_not_squashed():
    cfg = load_config()
    cfg = cfg.model_copy(
        update={
            "problem": cfg.problem.model_copy(update={"task": "regression"}),
            "training": cfg.training.model_copy(update={"epochs": 20, "batch_size": 64}),
        }
    )
    frame = synthetic(1000, seed=3)
    frame = frame.with_columns((pl.col("merchant_risk") * 10.0 + 5.0).alias("is_fraud"))
    model = train_model(frame, cfg, "v1").artifact
    scores = model.score(frame)
    assert scores.max() > 1.0
    assert np.corrcoef(scores, frame["is_fraud"].to_numpy())[0, 1] > 0.8


# --- the artifact ----------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_scores(tmp_path, data, trained):
    _, test = data
    digest = save_artifact(trained, tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [MANIFEST, WEIGHTS]
    assert digest == sha256_file(tmp_path / "model" / WEIGHTS)
    loaded = load_artifact(tmp_path / "model")
    np.testing.assert_array_equal(loaded.score(test), trained.score(test))
    assert loaded.version == "v7"
    assert loaded.task == trained.task
    assert loaded.preprocessor == trained.preprocessor
    assert loaded.architecture == trained.architecture
    assert loaded.thresholds == trained.thresholds
    assert loaded.metadata == trained.metadata
    manifest = json.loads((tmp_path / "model" / MANIFEST).read_text())
    assert manifest["weights_sha256"] == digest
    assert manifest["format_version"] == 1


def test_score_rows_equals_score(data, trained):
    _, test = data
    rows = test.select(*NUMERIC, *CATEGORICAL).to_dicts()
    batch = trained.score(test)
    served = trained.score_rows(rows)
    assert batch.dtype == served.dtype == np.float64
    np.testing.assert_allclose(served, batch, rtol=0, atol=1e-6)
    single = np.array([trained.score_rows([row])[0] for row in rows[:20]])
    np.testing.assert_allclose(single, batch[:20], rtol=0, atol=1e-6)
    assert np.all((batch >= 0) & (batch <= 1))


def test_scoring_no_rows(trained):
    assert trained.score_rows([]).shape == (0,)


def test_tampered_weights_are_refused(tmp_path, trained):
    directory = tmp_path / "model"
    save_artifact(trained, directory)
    weights = directory / WEIGHTS
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    weights.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="sha256") as info:
        load_artifact(directory)
    assert "tampered" in str(info.value)


def test_missing_manifest_is_refused(tmp_path, trained):
    directory = tmp_path / "model"
    save_artifact(trained, directory)
    (directory / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match=r"no model\.json"):
        load_artifact(directory)


def test_missing_directory_is_refused(tmp_path):
    with pytest.raises(ArtifactError):
        load_artifact(tmp_path / "nothing-here")


def test_missing_weights_are_refused(tmp_path, trained):
    directory = tmp_path / "model"
    save_artifact(trained, directory)
    (directory / WEIGHTS).unlink()
    with pytest.raises(ArtifactError, match=r"no model\.safetensors"):
        load_artifact(directory)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda text: text[: len(text) // 2], "malformed manifest"),
        (
            lambda text: json.dumps({**json.loads(text), "format_version": 99}),
            "unsupported format_version",
        ),
        (
            # a consistent hash but an architecture the weights do not fit
            lambda text: json.dumps(
                {**json.loads(text), "architecture": {"embedding_dim": 4, "hidden_units": 5}}
            ),
            "do not fit",
        ),
    ],
    ids=["torn", "future-format", "wrong-architecture"],
)
def test_broken_manifest_is_refused(tmp_path, trained, edit, match):
    directory = tmp_path / "model"
    save_artifact(trained, directory)
    manifest = directory / MANIFEST
    manifest.write_text(edit(manifest.read_text()))
    with pytest.raises(ArtifactError, match=match):
        load_artifact(directory)


@pytest.mark.parametrize(
    ("score", "decision"),
    [
        (0.0, "approve"),
        (0.2999, "approve"),
        (0.3, "review"),
        (0.6999, "review"),
        (0.7, "decline"),
        (1.0, "decline"),
    ],
)
def test_decide_maps_scores_by_the_thresholds(trained, score, decision):
    artifact = dataclasses.replace(trained, thresholds={"review": 0.3, "decline": 0.7})
    assert artifact.decide(np.array([score])) == [decision]


def test_decide_uses_the_artifacts_own_thresholds():
    pre = Preprocessor.fit(FRAME, ("x",), ())
    architecture = {"embedding_dim": 2, "hidden_units": 3}
    artifact = ModelArtifact(
        task="binary",
        preprocessor=pre,
        net=build_net(pre, architecture),
        architecture=architecture,
        thresholds={"review": 0.1, "decline": 0.2},
    )
    assert artifact.decide(np.array([0.05, 0.15, 0.25])) == ["approve", "review", "decline"]
