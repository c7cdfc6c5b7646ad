"""A user's own model family, both ways a user registers one — `training.model_factories` in
the home's config and the `lifecycle.model_families` entry-point group of an installed
package — through training, registration, loading and a real `bentoml serve`. The family's
package is written into a temp dir (with a dist-info for the entry point) and put on the
path, as an installed plugin would be."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from lifecycle_assets.config import example_config_path, parse_config
from lifecycle_assets.home import LifecycleHome, set_simulated_today
from lifecycle_assets.registry.registry import Registry, load_version
from lifecycle_assets.registry.registry import model_path as model_dir
from lifecycle_assets.serving.process import ServiceProcess
from lifecycle_assets.training.artifact import MANIFEST, save_artifact
from lifecycle_assets.training.train import train_model
from lifecycle_assets_tests.replay.deliveries import CONFIG as DELIVERY_CONFIG
from lifecycle_assets_tests.replay.deliveries import deliveries
from lifecycle_assets_tests.serving.conftest import DAY
from lifecycle_assets_tests.training.helpers import synthetic

DAY_NOON = dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC)

PLUGIN = "lifecycle_test_plugin"
# The two ways a user registers a family: the home config's factories, an entry point.
BOTH_ROUTES = pytest.mark.parametrize(
    ("family", "factories"),
    [("linear_cfg", {"linear_cfg": f"{PLUGIN}:make_linear"}), ("linear_ep", {})],
    ids=["config-factory", "entry-point"],
)
FAMILY_MODULE = """
import torch
from torch import nn


class Linear(nn.Module):
    def __init__(self, pre, params):
        super().__init__()
        self.numeric = nn.Linear(len(pre.numeric), 1)
        self.categorical = nn.ModuleList(nn.Embedding(c, 1) for c in pre.cardinalities())

    def forward(self, numeric, categorical):
        out = self.numeric(numeric).squeeze(1)
        for i, emb in enumerate(self.categorical):
            out = out + emb(categorical[:, i]).squeeze(1)
        return out


def make_linear(pre, params):
    return Linear(pre, params)
"""


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package as pip would install it: the module and a dist-info naming its entry point."""
    root = tmp_path_factory.mktemp("site")
    (root / f"{PLUGIN}.py").write_text(textwrap.dedent(FAMILY_MODULE))
    info = root / f"{PLUGIN}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLUGIN}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[lifecycle.model_families]\nlinear_ep = {PLUGIN}:make_linear\n"
    )
    return root


@pytest.fixture
def on_path(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(plugin_dir))
    return plugin_dir


def user_home(root: Path, family: str, factories: dict[str, str]) -> LifecycleHome:
    home = LifecycleHome(root)
    home.repo.mkdir(parents=True)
    config = yaml.safe_load(example_config_path().read_text())
    config["training"]["model"] = {"family": family}
    config["training"]["model_factories"] = factories
    home.config_path.write_text(yaml.safe_dump(config))
    set_simulated_today(home, DAY)
    return home


def train_and_register(home: LifecycleHome, tmp_path: Path) -> tuple[str, np.ndarray, list]:
    config = parse_config(yaml.safe_load(home.config_path.read_text()))
    config = config.model_copy(
        update={"training": config.training.model_copy(update={"epochs": 3, "device": "cpu"})}
    )
    artifact = train_model(synthetic(1500, seed=1), config, "v1").artifact
    save_artifact(artifact, tmp_path / "staged")
    registry = Registry(home, config.problem.name)
    version = registry.register(tmp_path / "staged", {"source": "test"})
    probes = synthetic(20, seed=5)
    rows = [
        {k: v for k, v in row.items() if k in config.problem.features} for row in probes.to_dicts()
    ]
    expected = load_version(home, config.problem.name, version).score_rows(rows)
    registry.move_alias("production", version, actor="test", reason="user family", when=DAY_NOON)
    return version, expected, rows


@BOTH_ROUTES
def test_a_user_family_registers_loads_and_serves(
    family: str, factories: dict[str, str], on_path: Path, tmp_path: Path
) -> None:
    home = user_home(tmp_path / "home", family, factories)
    version, expected, rows = train_and_register(home, tmp_path)
    assert version == "v1"
    env = {"PYTHONPATH": f"{on_path}:{':'.join(p for p in sys.path if p)}"}
    with ServiceProcess(home, extra_env=env) as service:
        client = httpx.Client(base_url=service.url, timeout=30)
        served = []
        for i, features in enumerate(rows):
            answer = client.post("/predict", json={"entity_id": f"e{i}", "features": features})
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == "v1"
            served.append(answer.json()["score"])
    np.testing.assert_allclose(served, expected, atol=1e-6)  # served == batch


def test_an_unregistered_user_family_is_refused_at_registration(
    on_path: Path, tmp_path: Path
) -> None:
    home = user_home(tmp_path / "home", "linear_cfg", {"linear_cfg": f"{PLUGIN}:make_linear"})
    config = parse_config(yaml.safe_load(home.config_path.read_text()))
    config = config.model_copy(
        update={"training": config.training.model_copy(update={"epochs": 1, "device": "cpu"})}
    )
    artifact = train_model(synthetic(500, seed=1), config, "v1").artifact
    save_artifact(artifact, tmp_path / "staged")
    # the home no longer registers the family: nothing is registered
    shutil.copyfile(example_config_path(), home.config_path)
    with pytest.raises(Exception, match="unknown model family 'linear_cfg'"):
        Registry(home, config.problem.name).register(tmp_path / "staged", {})
    assert Registry(home, config.problem.name).versions() == {}


@pytest.mark.slow
@BOTH_ROUTES
def test_a_user_family_runs_through_lifecycle_replay(
    family: str, factories: dict[str, str], plugin_dir: Path, tmp_path: Path
) -> None:
    """`lifecycle replay` (its own process, the plugin on its path): the loop trains,
    registers, gates and serves the user's family."""
    data = tmp_path / "deliveries.csv"
    deliveries(weeks=4, per_week=600, drift_week=9).write_csv(data)
    config = yaml.safe_load(DELIVERY_CONFIG)
    config["training"].update({"model": {"family": family}, "model_factories": factories})
    config["training"]["epochs"] = 3
    (tmp_path / "eta.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "LIFECYCLE_HOME"}
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_dir), env.get("PYTHONPATH", "")])
    root = tmp_path / "replay"
    out = subprocess.run(
        [
            sys.executable, "-m", "lifecycle_assets.cli", "replay", str(data),
            "--config", str(tmp_path / "eta.yaml"), "--workdir", str(root),
            "--policy", "periodic", "--json",
        ],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    periods = json.loads((root / "replay.json").read_text())["policies"]["periodic"]["periods"]
    decisions = [p["decision"] for p in periods if p["decision"]]
    assert decisions and decisions[0] == "FIRST_MODEL", decisions
    home = LifecycleHome(root / "periodic")
    versions = Registry(home, config["problem"]["name"]).versions()
    assert versions and all(
        json.loads((model_dir(home, config["problem"]["name"], v) / MANIFEST).read_text())[
            "architecture"
        ]["family"]
        == family
        for v in versions
    )
    served = [p for p in periods if p.get("quality") is not None]
    assert served, periods  # the user's model answered real traffic
