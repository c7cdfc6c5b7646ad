"""The torch-xla path (`PJRT_DEVICE=CPU`): static shapes, compile counts from torch-xla's own
metrics, agreement with eager PyTorch, bitwise reproducibility, and the SPMD data-parallel
path on two CPU devices (in a subprocess: the device count is fixed when XLA starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from lifecycle_assets.training.train import TrainingError, batch_plan, resolve_device, train_model
from lifecycle_assets_tests.training.helpers import small_config, synthetic

ROWS, BATCH = 1000, 96  # 1000 = 10 × 96 + 40: the last batch of every epoch is padded


@pytest.fixture(scope="module")
def train_rows():
    return synthetic(ROWS, seed=11)


def test_batch_plan_has_static_shapes_and_masks_the_padding():
    index, weight = batch_plan(ROWS, BATCH, torch.Generator().manual_seed(0))
    assert index.shape == weight.shape == (11, BATCH)
    real = index.flatten()[weight.flatten() == 1]
    assert sorted(real.tolist()) == list(range(ROWS))  # every row exactly once at weight 1
    assert weight.sum() == ROWS and (weight[-1, 40:] == 0).all()
    small, w = batch_plan(5, 8, torch.Generator().manual_seed(0))  # fewer rows than a batch
    assert small.shape == (1, 8) and w.sum() == 5 and small.max() < 5


def test_one_training_step_graph_per_shape_bucket_and_no_compilation_after_epoch_one(
    train_rows,
):
    import torch_xla.debug.metrics as met

    def executions() -> int:
        data = met.metric_data("ExecuteTime")
        return int(data[0]) if data else 0

    # An architecture no other test uses, so this process has not compiled its graphs yet.
    cfg = small_config(
        {"family": "mlp", "hidden_units": 13, "embedding_dim": 3}, epochs=3, batch_size=BATCH
    )
    ran_before = executions()
    result = train_model(train_rows, cfg, "v1", device="xla")
    assert result.device == "xla" and result.steps_per_epoch == 11
    # One shape bucket (every batch is BATCH rows), so two graphs in all: the first step's,
    # which also creates Adam's state (exp_avg, exp_avg_sq), and the steady training step.
    # No evaluation graph: losses are read back as step outputs. After epoch 1: no new ones.
    assert result.compilations == [2, 2, 2]
    # One execution per step: no stray graph (a host read, an unsynced op) runs per step.
    assert executions() - ran_before == 3 * 11
    assert result.info["batch_size"] == BATCH and result.info["xla_devices"] == 1


def test_xla_agrees_with_eager_pytorch_on_the_cpu(train_rows):
    cfg = small_config(epochs=4)
    eager = train_model(train_rows, cfg, "v1", device="cpu")
    xla = train_model(train_rows, cfg, "v1", device="xla")
    np.testing.assert_allclose(xla.losses, eager.losses, rtol=0, atol=1e-6)
    scores = np.abs(xla.artifact.score(train_rows) - eager.artifact.score(train_rows))
    assert scores.max() <= 1e-6
    a, b = eager.artifact.net.state_dict(), xla.artifact.net.state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5
    assert all(t.device.type == "cpu" for t in b.values())  # the artifact is device-free


TABM = {"family": "tabm", "k": 3, "n_blocks": 1, "d_block": 24, "n_bins": 6, "d_embedding": 3}


def test_tabm_compiles_once_per_shape_bucket_and_agrees_with_eager(train_rows):
    """The same static-shape contract for the other built-in family (dropout off, so eager
    and XLA run the same arithmetic)."""
    cfg = small_config({**TABM, "dropout": 0.0}, epochs=3, batch_size=BATCH)
    xla = train_model(train_rows, cfg, "v1", device="xla")
    assert xla.compilations == [2, 2, 2]  # first step (Adam's state) + the steady step
    eager = train_model(train_rows, cfg, "v1", device="cpu")
    np.testing.assert_allclose(xla.losses, eager.losses, rtol=0, atol=1e-5)
    diff = np.abs(xla.artifact.score(train_rows) - eager.artifact.score(train_rows))
    assert diff.max() <= 1e-5


def test_xla_training_is_bitwise_reproducible(train_rows):
    cfg = small_config(epochs=2)
    first = train_model(train_rows, cfg, "v1", device="xla").artifact.net.state_dict()
    again = train_model(train_rows, cfg, "v1", device="xla").artifact.net.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_device_selection(monkeypatch):
    monkeypatch.setenv("PJRT_DEVICE", "CPU")
    assert resolve_device("auto") == "xla"
    assert resolve_device("cpu") == "cpu"
    monkeypatch.delenv("PJRT_DEVICE")
    assert resolve_device("auto") == "cpu"
    with pytest.raises(TrainingError, match="PJRT_DEVICE is not set"):
        resolve_device("xla")


MULTI_DEVICE = """
import json
from lifecycle_assets.training.train import train_model
from lifecycle_assets_tests.training.helpers import small_config, synthetic
rows = synthetic(400, seed=5)
cfg = small_config(epochs=2, batch_size=64)
eager = train_model(rows, cfg, "v1", device="cpu")
xla = train_model(rows, cfg, "v1", device="xla")
print(json.dumps({
    "info": xla.info, "compilations": xla.compilations,
    "score_diff": float(abs(xla.artifact.score(rows) - eager.artifact.score(rows)).max()),
}))
"""


def test_data_parallel_on_two_xla_devices():
    env = {**os.environ, "PJRT_DEVICE": "CPU", "CPU_NUM_DEVICES": "2"}
    out = subprocess.run(
        [sys.executable, "-c", MULTI_DEVICE], capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["info"]["xla_devices"] == 2
    assert result["info"]["data_parallel"] == "spmd"
    # Same graph count as one device, none after the first epoch.
    assert result["compilations"] == [2, 2]
    # Each device takes half of every batch; the all-reduced gradient is the full batch's.
    assert result["score_diff"] <= 1e-5


def test_an_xla_trained_artifact_has_the_same_format_and_no_skew(tmp_path, train_rows):
    from lifecycle_assets.training.artifact import MANIFEST, load_artifact, save_artifact

    cfg = small_config(epochs=1)
    for device in ("cpu", "xla"):
        save_artifact(train_model(train_rows, cfg, "v1", device=device).artifact, tmp_path / device)
    manifests = [json.loads((tmp_path / d / MANIFEST).read_text()) for d in ("cpu", "xla")]
    assert manifests[0].keys() == manifests[1].keys()
    assert manifests[0]["architecture"] == manifests[1]["architecture"]
    model = load_artifact(tmp_path / "xla")
    features = train_rows.drop("is_fraud", "request_id", "card_number")
    batch = model.score(features)
    served = np.array([model.score_rows([row])[0] for row in features.head(50).to_dicts()])
    np.testing.assert_allclose(served, batch[:50], rtol=0, atol=1e-6)
