"""Fixtures shared by the serving tests: a home with the example config on the simulated day,
a stand-in model store, and a template home with a promoted model for the tests that serve
through a real `bentoml serve`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lifecycle_assets.config import example_config_path
from lifecycle_assets.home import LifecycleHome, set_simulated_today
from lifecycle_assets_tests.loadgen import in_child
from lifecycle_assets_tests.serving.helpers import DAY, FakeStore


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> LifecycleHome:
    """A home with a promoted model, built once for the session: each test serves from a copy
    (`test_reliability.make_home`), so none changes it."""
    home = LifecycleHome(tmp_path_factory.mktemp("template") / "home")
    home.repo.mkdir(parents=True)
    shutil.copyfile(example_config_path(), home.config_path)
    set_simulated_today(home, DAY)
    in_child(home, "register_untrained_model", str(home.root), "v1")
    return home


@pytest.fixture
def home(tmp_path: Path) -> LifecycleHome:
    home = LifecycleHome(tmp_path / "home")
    home.repo.mkdir(parents=True)
    shutil.copyfile(example_config_path(), home.config_path)
    set_simulated_today(home, DAY)
    return home


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()
