"""Shared fixtures: real lifecycle homes in temp dirs, with every tool's state inside them."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lifecycle_assets.home import LifecycleHome

# The tests run the torch-xla path on the CPU (docs/architecture.md), whatever subset is collected; the
# runtime must be up before the process's first backward pass, so set it before any test.
os.environ.setdefault("PJRT_DEVICE", "CPU")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_module(name: str) -> ModuleType:
    """`benchmarks/<name>.py` as a module (the scripts are not a package), imported once."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # quality.py imports public_data by this name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", autouse=True)
def _xla_runtime_before_any_backward_pass() -> None:
    """Autograd sizes its device queues at a process's first backward pass: a test that
    trains by hand (not through `train_model`, which starts the runtime itself) must not be
    the first, or every later XLA test in the session fails whichever subset runs."""
    from lifecycle_assets.training.train import _register_xla

    _register_xla()


def _isolate(home_root: Path, mp: pytest.MonkeyPatch) -> None:
    for key, value in LifecycleHome(home_root).tool_env().items():
        mp.setenv(key, value)


@pytest.fixture
def make_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., LifecycleHome]:
    """`make_home(config_text=None)` → an initialised home under tmp_path."""
    from lifecycle_assets.home_setup import init_home

    def make(config_text: str | None = None, name: str = "home") -> LifecycleHome:
        root = tmp_path / name
        _isolate(root, monkeypatch)
        config_file = None
        if config_text is not None:
            config_file = tmp_path / f"{name}.yaml"
            config_file.write_text(config_text)
        return init_home(root, config_file)

    return make


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LifecycleHome]:
    """One home shared by a module's slow tests (the loop over several simulated days)."""
    from lifecycle_assets.home_setup import init_home

    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("module") / "home"
    _isolate(root, mp)
    try:
        yield init_home(root)
    finally:
        mp.undo()


def subprocess_env(home: LifecycleHome) -> dict[str, str]:
    return {**os.environ, **home.tool_env()}


def bentoml_json(home: LifecycleHome, *args: str) -> Any:
    """`bentoml <args> -o json` on the home's BentoML store (its public CLI, in a child
    process with the home's environment), parsed."""
    done = subprocess.run(
        [sys.executable, "-m", "bentoml", *args, "-o", "json"],
        capture_output=True, text=True, env=subprocess_env(home), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)
