"""The version fence between workers, in process: two alias followers (two "workers") on one
home switch only once both have the new model loaded; a stuck worker cannot hold the switch
back past the timeout; a worker started mid-switch serves what the fence names."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from lifecycle_assets.config import load_config
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.registry.registry import _write_json_atomic, registry_dir
from lifecycle_assets.serving import model_source
from lifecycle_assets.serving.fence import VersionFence
from lifecycle_assets.serving.model_source import AliasFollower
from lifecycle_assets.training.artifact import ModelArtifact
from lifecycle_assets_tests.serving.helpers import make_artifact

PROBLEM = load_config().problem
NOON = dt.datetime(2026, 6, 5, 12, tzinfo=dt.UTC)


class Store:
    def __init__(self) -> None:
        self.models = {v: make_artifact(v, seed=i) for i, v in enumerate(["v1", "v2"], 1)}
        self.blocked: set[tuple[int, str]] = set()  # (worker, version) loads that fail

    def loader(self, worker: int):
        def load(_home: LifecycleHome, _name: str, version: str) -> ModelArtifact:
            if (worker, version) in self.blocked:
                raise RuntimeError(f"worker {worker} cannot load {version}")
            return self.models[version]

        return load


def point(home: LifecycleHome, version: str) -> None:
    _write_json_atomic(
        registry_dir(home) / "aliases.json",
        {"production": {"version": version, "since": NOON.isoformat(), "actor": "t"}},
    )


@pytest.fixture
def home(tmp_path: Path) -> LifecycleHome:
    home = LifecycleHome(tmp_path / "home")
    home.repo.mkdir(parents=True)
    return home


def worker(home: LifecycleHome, store: Store, wid: int, workers: int = 2) -> AliasFollower:
    # worker ids are pids, and only live ones count as ready: use two that surely are
    pid = {1: os.getpid(), 2: os.getppid()}[wid]
    fence = VersionFence(home.root / "serving", workers=workers, worker_id=pid)
    follower = AliasFollower(home, PROBLEM, background=False, loader=store.loader(wid), fence=fence)
    follower.start()
    return follower


def test_workers_switch_only_when_all_have_loaded(home: LifecycleHome) -> None:
    store = Store()
    point(home, "v1")
    a, b = worker(home, store, 1), worker(home, store, 2)
    assert a.served.version == b.served.version == "v1"
    point(home, "v2")
    a.check()  # a loads v2 and is ready; b has not looked yet
    assert a.served.version == "v1" and b.served.version == "v1"
    b.check()  # b is ready too: the fence moves, both answer v2 from their next request
    assert a.served.version == "v2" and b.served.version == "v2"
    assert VersionFence(home.root / "serving").current() == (True, "v2")


def test_a_stuck_worker_holds_the_switch_only_until_the_timeout(
    home: LifecycleHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store()
    point(home, "v1")
    a, b = worker(home, store, 1), worker(home, store, 2)
    store.blocked.add((2, "v2"))
    point(home, "v2")
    a.check()
    b.check()
    assert (a.served.version, b.served.version) == ("v1", "v1")
    monkeypatch.setattr(model_source, "FENCE_TIMEOUT_S", 0.0)
    a.check()
    assert a.served.version == "v2"
    assert b.served.version == "v1"  # it keeps serving what it has, and says why
    assert b.last_error is not None and "cannot load" in b.last_error


def test_a_worker_started_mid_switch_serves_the_fenced_version(home: LifecycleHome) -> None:
    store = Store()
    point(home, "v1")
    a = worker(home, store, 1)
    point(home, "v2")
    a.check()  # a is ready for v2; the fence still says v1 (one of two ready)
    late = worker(home, store, 2)  # starts now: loads v2 (the alias) and v1 (the fence)
    assert late.served.version == "v2"  # it was the second ready worker: the fence moved
    assert a.served.version == "v2"


def test_a_version_loaded_at_start_for_the_fence_counts_as_ready(home: LifecycleHome) -> None:
    """A worker started after the alias moved but before the fence did loads the alias's
    version and the fenced one; when the alias moves back to the fenced one, both workers
    already hold it and the fence moves at once (it used to wait for the timeout, since the
    version loaded for the fence was never marked ready)."""
    store = Store()
    point(home, "v1")
    a = worker(home, store, 1)
    point(home, "v2")
    late = worker(home, store, 2)  # a has not looked yet: the fence still names v1
    assert late.served.version == "v1"
    a.check()  # both ready for v2: the fence moves
    assert (a.served.version, late.served.version) == ("v2", "v2")
    point(home, "v1")
    a.check()
    late.check()
    assert (a.served.version, late.served.version) == ("v1", "v1")
    assert VersionFence(home.root / "serving").current() == (True, "v1")


def test_a_version_freed_by_a_worker_no_longer_counts_it_ready(home: LifecycleHome) -> None:
    store = Store()
    store.models["v3"] = make_artifact("v3", seed=3)
    point(home, "v1")
    only = worker(home, store, 1, workers=1)
    for version in ("v2", "v3"):  # v1 is freed once v3 is loaded and v2 serves
        point(home, version)
        only.check()
        assert only.served.version == version  # a request: it answers with what it loaded
    fence = VersionFence(home.root / "serving", workers=1, worker_id=os.getpid())
    assert only.served.version == "v3"
    assert fence.ready_count("v1") == 0
    assert fence.ready_count("v2") == fence.ready_count("v3") == 1


def test_a_single_worker_switches_as_soon_as_it_has_loaded(home: LifecycleHome) -> None:
    store = Store()
    point(home, "v1")
    only = worker(home, store, 1, workers=1)
    point(home, "v2")
    only.check()
    assert only.served.version == "v2"


def test_dead_workers_do_not_count_as_ready(home: LifecycleHome) -> None:
    fence = VersionFence(home.root / "serving", workers=2, worker_id=os.getpid())
    fence.mark_ready("v9")
    (home.root / "serving" / "ready" / "v9" / "999999999").touch()  # no such process
    assert fence.ready_count("v9") == 1
