"""The `gbdt` family: LightGBM's trees compiled into tensors score exactly as LightGBM does
(numeric thresholds, category sets, missing values), eagerly and under torch-xla at one
compilation per batch shape; the artifact round trip; training through `train_model`; and
what is refused (an unknown hyperparameter, tensors that do not match the manifest)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest
import torch

from lifecycle_assets.config import ConfigError, parse_config
from lifecycle_assets.hyperparameters import GbdtParams
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
from lifecycle_assets.training.families import FamilyError, resolve
from lifecycle_assets.training.features import Preprocessor
from lifecycle_assets.training.train import (
    cross_fitted_scores,
    fit_calibration,
    model_architecture,
    train_model,
)
from lifecycle_assets.training.trees import (
    TreeEnsembleNet,
    compile_booster,
    fit_booster,
    fit_gbdt,
    lightgbm_inputs,
)
from lifecycle_assets_tests.training.helpers import CATEGORICAL, NUMERIC, small_config

TOLERANCE = 1e-5
RISKY = [f"m{i:02d}" for i in (3, 6, 8, 11, 20, 27, 33, 41, 52)]


def frame(n: int, seed: int) -> pl.DataFrame:
    """The example config's features; `merchant_category` has 60 levels, fraud concentrated
    in a scattered set of them (LightGBM splits on category sets), and a regression label."""
    rng = np.random.default_rng(seed)
    merchant = rng.choice([f"m{i:02d}" for i in range(60)], n)
    country = rng.choice(["DE", "FR", "XX", "US"], n)
    amount = rng.lognormal(3.0, 1.0, n)
    risk = rng.random(n)
    hour = rng.integers(0, 24, n).astype(np.float64)
    logit = (
        3.0 * (risk - 0.5)
        + 1.2 * (np.log(amount) - 3.0)
        + 2.5 * np.isin(merchant, RISKY)
        + 1.5 * (country == "XX")
        - 1.5
    )
    start = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    return pl.DataFrame(
        {
            "event_time": [start + dt.timedelta(minutes=i) for i in range(n)],
            "amount": amount,
            "merchant_risk": risk,
            "hour": hour,
            "card_age_days": rng.integers(1, 2000, n).astype(np.float64),
            "txn_count_24h": rng.poisson(3, n).astype(np.float64),
            "merchant_category": merchant,
            "country": country,
            "channel": rng.choice(["web", "pos"], n),
            "is_fraud": (logit + rng.logistic(0, 0.5, n) > 0).astype(np.float64),
            "spend": 5.0 * logit + rng.normal(0, 1.0, n),
        }
    )


@pytest.fixture(scope="module")
def rows() -> pl.DataFrame:
    return frame(3000, seed=3)


@pytest.fixture(scope="module")
def arrays(rows: pl.DataFrame) -> dict[str, Any]:
    """The preprocessed fit and holdout rows, as train.py makes them (time-ordered)."""
    fit_rows, held = rows.head(2400), rows.tail(600)
    pre = Preprocessor.fit(fit_rows, NUMERIC, CATEGORICAL)
    num, cat = pre.transform(fit_rows)
    h_num, h_cat = pre.transform(held)
    # Scoring rows include categories the fit never saw (index past the vocabulary, the OOV
    # bucket) and a negative index: all must go right at every category split.
    s_num, s_cat = pre.transform(rows)
    s_cat = s_cat.copy()
    s_cat[:40, 0] = len(pre.vocabularies["merchant_category"]) + 7
    s_cat[40:80, 0] = 0
    s_cat[80:90, 1] = -1
    return {"pre": pre, "fit": (num, cat), "held": (h_num, h_cat), "score": (s_num, s_cat)}


def targets(rows: pl.DataFrame, task: str) -> np.ndarray:
    label = rows["is_fraud" if task == "binary" else "spend"].to_numpy().astype(np.float32)
    return label if task == "binary" else (label - label.mean()) / label.std()


@pytest.fixture(scope="module", params=["binary", "regression"])
def fitted(request, rows, arrays) -> dict[str, Any]:
    task = request.param
    y = targets(rows, task)
    booster, record = fit_booster(
        GbdtParams().model_dump(),
        task=task,
        fit=(*arrays["fit"], y[:2400]),
        holdout=(*arrays["held"], y[2400:]),
        seed=7,
        threads=1,
    )
    pre = arrays["pre"]
    shapes, state = compile_booster(booster, len(pre.numeric), len(pre.categorical))
    net = TreeEnsembleNet(pre, {"compiled": shapes})
    net.load_state_dict(state)
    num, cat = arrays["score"]
    reference = booster.predict(lightgbm_inputs(num, cat), raw_score=True)
    return {
        "task": task,
        "booster": booster,
        "record": record,
        "shapes": shapes,
        "net": net.eval(),
        "reference": reference,
    }


def test_compiled_trees_score_as_lightgbm_does(fitted, arrays) -> None:
    booster = fitted["booster"]
    # the fit stopped on the holdout and the compiled trees are the best round's
    cap = GbdtParams().num_trees
    assert 1 <= fitted["record"]["best_epoch"] == fitted["shapes"]["n_trees"] < cap
    assert len(fitted["record"]["holdout_losses"]) == len(fitted["record"]["losses"])
    splits = [
        node
        for tree in booster.dump_model()["tree_info"]
        for node in _nodes(tree["tree_structure"])
    ]
    assert any("||" in str(n["threshold"]) for n in splits if n["decision_type"] == "==")
    num, cat = arrays["score"]
    with torch.inference_mode():
        out = fitted["net"](torch.from_numpy(num), torch.from_numpy(cat)).double().numpy()
    delta = float(np.abs(out - fitted["reference"]).max())
    print(f"{fitted['task']} eager max |Δ| {delta:.3g}")
    assert delta <= TOLERANCE


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    if "split_feature" not in node:
        return []
    return [node, *_nodes(node["left_child"]), *_nodes(node["right_child"])]


def test_compiled_trees_under_xla_compile_once_per_batch_shape(fitted, arrays) -> None:
    import torch_xla
    import torch_xla.debug.metrics as met

    def compiles() -> int:
        data = met.metric_data("CompileTime")
        return int(data[0]) if data else 0

    device = torch_xla.device()
    net = copy.deepcopy(fitted["net"]).to(device)
    num, cat = arrays["score"]
    before = compiles()
    counts, deltas = [], []
    # three batches of 512 rows (one shape), then one of 200: two shape buckets
    for start, size in [(0, 512), (512, 512), (1024, 512), (2000, 200)]:
        rows = slice(start, start + size)
        x = torch.from_numpy(num[rows]).to(device)
        c = torch.from_numpy(cat[rows]).to(device)
        out = net(x, c).cpu().double().numpy()
        deltas.append(float(np.abs(out - fitted["reference"][rows]).max()))
        counts.append(compiles() - before)
    print(f"{fitted['task']} xla max |Δ| {max(deltas):.3g}; compilations {counts}")
    assert counts == [1, 1, 1, 2]
    assert max(deltas) <= TOLERANCE


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_bagged_boosters_compile_into_one_ensemble_of_their_mean(task, rows, arrays) -> None:
    """`bags` boosters with seeds seed, seed + 1, … (different row and feature draws, early
    stopping each) score as the mean of LightGBM's own raw scores, eagerly and under
    torch-xla at one compilation per batch shape."""
    import torch_xla
    import torch_xla.debug.metrics as met

    y = targets(rows, task)
    fit, held = (*arrays["fit"], y[:2400]), (*arrays["held"], y[2400:])
    params = GbdtParams(bags=3).model_dump()
    fitted = fit_gbdt(arrays["pre"], params, task=task, fit=fit, holdout=held, seed=7, threads=1)
    num, cat = arrays["score"]
    boosters = [
        fit_booster(params, task=task, fit=fit, holdout=held, seed=seed, threads=1)[0]
        for seed in (7, 8, 9)
    ]
    each = [b.predict(lightgbm_inputs(num, cat), raw_score=True) for b in boosters]
    reference = np.mean(each, axis=0)
    # the draws differ by seed, so the three boosters do, and their mean is a fourth model
    assert min(float(np.abs(a - reference).max()) for a in each) > 1e-3
    per_bag = [b.best_iteration or b.current_iteration() for b in boosters]
    assert fitted.info["trees_per_bag"] == per_bag
    assert fitted.params["compiled"]["n_trees"] == fitted.info["trees"] == sum(per_bag)
    assert fitted.info["bags"] == 3 and len(fitted.losses) == len(fitted.step_seconds)
    net = TreeEnsembleNet(arrays["pre"], fitted.params)
    net.load_state_dict(fitted.state)
    with torch.inference_mode():
        out = net.eval()(torch.from_numpy(num), torch.from_numpy(cat)).double().numpy()
    assert float(np.abs(out - reference).max()) <= TOLERANCE

    def compiles() -> int:
        data = met.metric_data("CompileTime")
        return int(data[0]) if data else 0

    device = torch_xla.device()
    on_device = copy.deepcopy(net).to(device)
    before, counts, deltas = compiles(), [], []
    for start in (0, 512):
        part = slice(start, start + 512)
        x, c = torch.from_numpy(num[part]).to(device), torch.from_numpy(cat[part]).to(device)
        deltas.append(float(np.abs(on_device(x, c).cpu().double().numpy() - reference[part]).max()))
        counts.append(compiles() - before)
    assert counts == [1, 1] and max(deltas) <= TOLERANCE


@pytest.mark.parametrize(
    ("extra", "missing_types"),
    [
        ({}, {"None", "NaN"}),
        ({"zero_as_missing": True}, {"Zero"}),
        ({"use_missing": False}, {"None"}),
    ],
)
def test_missing_values_follow_lightgbm(extra: dict[str, Any], missing_types: set[str]) -> None:
    """Our inputs are finite, but the rules are LightGBM's whole: NaN splits (default_left),
    zero-as-missing, NaN read as 0 elsewhere, |x| ≤ 1e-35 read as 0, and categories that are
    negative or beyond every set go right."""
    rng = np.random.default_rng(1)
    n = 2000
    num = rng.normal(size=(n, 2)).astype(np.float32)
    num[rng.random(n) < 0.3, 0] = 0.0
    num[rng.random(n) < 0.2, 1] = np.nan
    cat = rng.integers(0, 12, (n, 1))
    signal = np.nan_to_num(num[:, 0], nan=1.0) + 1.5 * np.isnan(num[:, 1]) + (num[:, 0] == 0)
    y = (signal + np.isin(cat[:, 0], [2, 5, 7]) + rng.normal(size=n)).astype(np.float32)
    params = {"objective": "regression", "verbosity": -1, "num_threads": 1, "seed": 1}
    params |= {"deterministic": True, "force_col_wise": True, "min_data_per_group": 5, **extra}
    data = lgb.Dataset(lightgbm_inputs(num, cat), y, categorical_feature=[2])
    booster = lgb.train(params, data, num_boost_round=30)
    trees = booster.dump_model()["tree_info"]
    numeric = [n for t in trees for n in _nodes(t["tree_structure"]) if n["decision_type"] == "<="]
    assert {node["missing_type"] for node in numeric} == missing_types
    shapes, state = compile_booster(booster, 2, 1)
    pre = Preprocessor(("a", "b"), ("c",), (0.0, 0.0), (1.0, 1.0), {"c": ()})
    net = TreeEnsembleNet(pre, {"compiled": shapes})
    net.load_state_dict(state)
    x, c = num.copy(), cat.copy()
    x[:20, 0], x[20:40, 0], x[40:60, 0], x[60:80, 1] = 1e-40, -0.0, np.nan, 0.0
    c[:30, 0], c[30:60, 0] = -1, 99
    reference = booster.predict(lightgbm_inputs(x, c), raw_score=True)
    out = net(torch.from_numpy(x), torch.from_numpy(c)).double().numpy()
    assert np.abs(out - reference).max() <= TOLERANCE


def test_the_artifact_round_trip_scores_identically(tmp_path: Path, fitted, rows, arrays) -> None:
    pre = arrays["pre"]
    task = fitted["task"]
    artifact = ModelArtifact(
        task=task,
        preprocessor=pre,
        net=fitted["net"],
        architecture={
            "family": "gbdt",
            "params": {**GbdtParams().model_dump(), "compiled": fitted["shapes"]},
        },
        thresholds={"review": 0.5, "decline": 0.9},
    )
    save_artifact(artifact, tmp_path / "m")
    loaded = load_artifact(tmp_path / "m")
    assert isinstance(loaded.net, TreeEnsembleNet)
    np.testing.assert_array_equal(loaded.score(rows), artifact.score(rows))
    batch = loaded.score(rows.head(5))
    np.testing.assert_array_equal(loaded.score_rows(rows.head(5).to_dicts()), batch)
    if task == "binary":  # the one scoring function: sigmoid of LightGBM's raw score
        expected = 1 / (1 + np.exp(-fitted["reference"][100:105]))
        np.testing.assert_allclose(loaded.score(rows.slice(100, 5)), expected, atol=1e-6)


def gbdt_config(task: str = "binary", **model: Any):
    cfg = small_config({"family": "gbdt", **model}, holdout_fraction=0.2)
    if task == "binary":
        return cfg
    return cfg.model_copy(
        update={
            "problem": cfg.problem.model_copy(update={"task": "regression", "label": "spend"}),
            "labels": cfg.labels.model_copy(update={"unlabeled_after_maturity": "drop"}),
        }
    )


def test_without_a_holdout_calibration_is_fitted_on_cross_fitted_scores(rows) -> None:
    """`training.calibration_folds: 3` with no holdout: the model fits every row, and its
    Platt calibration is the one fitted on every row's score by a model of the other two
    blocks; too few rows for the folds leaves the model uncalibrated, with the reason."""
    cfg = small_config({"family": "gbdt"}, calibration_folds=3)
    artifact = train_model(rows, cfg, "v1").artifact
    meta = artifact.metadata
    assert (meta["fit_rows"], meta["holdout_rows"]) == (3000, 0)
    assert (meta["calibration_rows"], meta["calibration_folds"]) == (3000, 3)
    scores, reason = cross_fitted_scores(rows, cfg, "v1", None)
    assert reason is None and scores is not None
    expected = fit_calibration(scores, rows["is_fraud"].cast(pl.Float64).to_numpy(), "platt")
    assert artifact.architecture["calibration"] == expected
    # the fit itself is the uncalibrated model's: the same trees, scores through Platt
    plain = train_model(rows, small_config({"family": "gbdt"}), "v1").artifact
    assert plain.metadata["calibration_rows"] == 0 and "calibration" not in plain.architecture
    first = plain.net.state_dict()
    assert all(torch.equal(first[k], artifact.net.state_dict()[k]) for k in first)
    a, b = expected["a"], expected["b"]
    raw = plain.score(rows.head(50))
    logit = np.log(raw) - np.log1p(-raw)
    np.testing.assert_allclose(
        artifact.score(rows.head(50)), 1 / (1 + np.exp(-(a * logit + b))), atol=1e-6
    )

    few = train_model(rows.head(120), cfg, "v1").artifact
    assert "calibration" not in few.architecture
    assert "50 rows per fold" in few.metadata["calibration_skipped"]
    with pytest.raises(ConfigError, match="calibration_folds"):
        parse_config({**cfg.model_dump(mode="json"), "training": {"calibration_folds": 1}})


def test_train_model_fits_compiles_and_calibrates_a_gbdt(tmp_path: Path, rows) -> None:
    test = frame(1000, seed=4)
    result = train_model(rows, gbdt_config(num_leaves=15), "v1")
    artifact = result.artifact
    meta, arch = artifact.metadata, artifact.architecture
    assert arch["family"] == "gbdt" and arch["params"]["num_leaves"] == 15
    assert arch["params"]["compiled"]["n_trees"] == meta["best_epoch"] == result.info["trees"]
    # the holdout (600 rows): its older half stops early, its freshest half calibrates
    assert (meta["fit_rows"], meta["holdout_rows"], meta["calibration_rows"]) == (2400, 300, 300)
    assert len(result.losses) == meta["epochs_run"] == len(result.info["holdout_losses"])
    assert result.device == "cpu" and result.compilations == [] and result.steps_per_epoch == 1
    assert "LightGBM 4.7.0" in result.info["hardware"]
    assert meta["calibration_method"] == "platt" and arch["calibration"]["method"] == "platt"
    assert roc_auc(test["is_fraud"].to_numpy(), artifact.score(test)) > 0.8
    save_artifact(artifact, tmp_path / "m")
    np.testing.assert_array_equal(load_artifact(tmp_path / "m").score(test), artifact.score(test))
    # deterministic for the seed
    again = train_model(rows, gbdt_config(num_leaves=15), "v1").artifact.net.state_dict()
    first = artifact.net.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_scoring_in_blocks_of_rows_gives_the_scores_of_one_call(task, rows, monkeypatch) -> None:
    """`ModelArtifact.score` feeds the module `SCORE_ROWS` rows at a time (a compiled
    ensemble's intermediates grow with the rows): blocks of 7 give the scores of one call, to
    the float32 rounding the service's one-row scores keep to the batch's."""
    from lifecycle_assets.training import artifact as artifact_module

    model = train_model(rows, gbdt_config(task, num_trees=30), "v1").artifact
    whole = model.score(rows)
    monkeypatch.setattr(artifact_module, "SCORE_ROWS", 7)
    blocks = model.score(rows)
    assert blocks.shape == whole.shape == (rows.height,)
    np.testing.assert_allclose(blocks, whole, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.score(rows.head(7)), whole[:7], rtol=0, atol=1e-6)


def test_a_gbdt_regression_predicts_in_label_units(rows) -> None:
    result = train_model(rows, gbdt_config("regression", num_trees=40), "v1")
    assert result.artifact.architecture["target"]["std"] > 1
    held = rows.tail(600)
    predictions = result.artifact.score(held)
    truth = held["spend"].to_numpy()
    assert np.corrcoef(predictions, truth)[0, 1] > 0.8
    assert abs(predictions.mean() - truth.mean()) < 0.2 * truth.std()


def test_an_unknown_hyperparameter_is_one_line_naming_it() -> None:
    with pytest.raises(ConfigError, match="unknown hyperparameter 'depth' for family gbdt") as e:
        parse_config({"training": {"model": {"family": "gbdt", "depth": 6}}})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"training\.model\.num_leaves") as e:
        parse_config({"training": {"model": {"family": "gbdt", "num_leaves": 1}}})
    assert "\n" not in str(e.value)
    with pytest.raises(FamilyError, match=r"^training\.model\.depth: unknown hyperparameter") as f:
        resolve("gbdt").check({"depth": 6})
    assert "\n" not in str(f.value)


def test_tensors_that_do_not_match_the_manifest_are_refused(tmp_path: Path, rows) -> None:
    artifact = train_model(rows, gbdt_config(num_trees=5), "v1").artifact
    save_artifact(artifact, tmp_path / "m")
    weights, manifest_path = tmp_path / "m" / WEIGHTS, tmp_path / "m" / MANIFEST
    from safetensors.torch import load_file, save_file

    # one tree's leaves dropped from the weights
    state = load_file(str(weights))
    state["leaf_value"] = state["leaf_value"][:-1]
    save_file(state, str(weights))
    manifest = json.loads(manifest_path.read_text())
    manifest["weights_sha256"] = sha256_file(weights)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="weights do not fit the architecture") as err:
        load_artifact(tmp_path / "m")
    assert "leaf_value" in str(err.value) and "\n" not in str(err.value)
    # the manifest claiming more trees than the weights hold
    save_artifact(artifact, tmp_path / "n")
    manifest_path = tmp_path / "n" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["architecture"]["params"]["compiled"]["n_trees"] += 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="weights do not fit the architecture") as err:
        load_artifact(tmp_path / "n")
    assert "\n" not in str(err.value)
    # a shape that is no shape: one line naming the field
    manifest["architecture"]["params"]["compiled"]["n_nodes"] = 0
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"architecture\.params\.compiled\.n_nodes") as err:
        load_artifact(tmp_path / "n")
    assert "\n" not in str(err.value)


def test_an_unfitted_gbdt_is_an_empty_ensemble(arrays) -> None:
    """What builds before any fit (a load test's untrained model of the configured family):
    no trees, a raw score of 0."""
    pre = arrays["pre"]
    net = build_net(pre, model_architecture(arrays["fit"][0], gbdt_config()))
    num, cat = arrays["score"]
    assert torch.equal(net(torch.from_numpy(num), torch.from_numpy(cat)), torch.zeros(len(num)))
