"""DVC over the S3 API against a real S3-compatible server (moto's, its own process on a free
port): a home whose `versioning.dvc_remote` is `s3://bucket/prefix` with the endpoint in
`versioning.dvc_remote_options` runs the loop for a few days, and its repo and the remote
are in sync (`dvc status -c`); a second node with only a clone of the registry repo and the
remote restores, serves the same predictions and rechecks the decision. The endpoint down at
the day's first push, at the model's and at the promotion's fails the day in one line, and
the day's rerun pushes what is missing and records nothing twice."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest

from lifecycle_assets.automation.loop import DayOutcome, RunFailed, run_day
from lifecycle_assets.defs.resources import versioning as versioning_resource
from lifecycle_assets.home import LifecycleHome, today
from lifecycle_assets.home_setup import init_home
from lifecycle_assets.registry.registry import Registry
from lifecycle_assets.serving.process import ServiceProcess
from lifecycle_assets.simulator.fraud import FraudSimulator
from lifecycle_assets_tests.automation.test_loop import simulate_day
from lifecycle_assets_tests.conftest import _isolate
from lifecycle_assets_tests.data.test_pipeline_home import CONFIG, cli
from lifecycle_assets_tests.servers import TcpGate, s3_environment, s3_server

pytestmark = pytest.mark.slow

BUCKET = "lifecycle-datasets"
PREFIX = "card-fraud"
DAYS = 4  # the fourth decides the first challenger (CONFIG's small days)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TcpGate]:
    """The S3 endpoint, behind a gate the fault test closes."""
    mp = pytest.MonkeyPatch()
    for key, value in s3_environment(tmp_path_factory.mktemp("aws")).items():
        mp.setenv(key, value)
    try:
        with s3_server(BUCKET) as endpoint:
            gate = TcpGate(int(endpoint.rsplit(":", 1)[1]))
            yield gate
            gate.close()
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def s3(gate: TcpGate) -> str:
    return gate.url


def s3_config(endpoint: str, prefix: str = PREFIX) -> str:
    return CONFIG.replace(
        "versioning:\n",
        f"versioning:\n  dvc_remote: s3://{BUCKET}/{prefix}\n"
        f"  dvc_remote_options: {{endpointurl: '{endpoint}'}}\n",
    )


@pytest.fixture(scope="module")
def first_node(
    s3: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LifecycleHome, list[DayOutcome]]]:
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("node1")
    _isolate(base / "home", mp)
    (base / "lifecycle.yaml").write_text(s3_config(s3))
    try:
        home = init_home(base / "home", base / "lifecycle.yaml")
        days = [run_day(home, simulate_day(home, i)) for i in range(DAYS)]
        yield home, days
    finally:
        mp.undo()


def dvc(home: LifecycleHome, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=home.repo, env={**os.environ, **home.tool_env()}, capture_output=True, text=True,
    )  # fmt: skip


def test_the_loop_pushes_through_the_s3_endpoint_and_the_remote_is_in_sync(
    s3: str, first_node: tuple[LifecycleHome, list[DayOutcome]]
) -> None:
    import boto3

    home, days = first_node
    assert days[-1].decision is not None and days[-1].decision["decision"] == "FIRST_MODEL"
    config = (home.repo / ".dvc" / "config").read_text()
    assert f"url = s3://{BUCKET}/{PREFIX}" in config and f"endpointurl = {s3}" in config
    status = dvc(home, "status", "--cloud", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout or "{}") == {}, status.stdout
    objects = boto3.client("s3", endpoint_url=s3).list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)
    assert objects["KeyCount"] > 0
    assert all(o["Key"].startswith(f"{PREFIX}/files/md5/") for o in objects["Contents"])


def scores(home: LifecycleHome, requests: list[dict]) -> list[float]:
    with ServiceProcess(home) as service:
        client = httpx.Client(base_url=service.url, timeout=30)
        answers = [client.post("/predict", json=r) for r in requests]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert {a.json()["model_version"] for a in answers} == {"v1"}
    return [a.json()["score"] for a in answers]


def test_a_second_node_restores_from_the_remote_alone(
    s3: str,
    first_node: tuple[LifecycleHome, list[DayOutcome]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fresh, empty home that shares only a clone of the registry repo and the S3 remote
    restores a dataset version and the production model, serves the same predictions as the
    first node, and rechecks the first decision."""
    home1, days = first_node
    day = days[-1].day.isoformat()
    root = tmp_path / "node2" / "home"
    _isolate(root, monkeypatch)
    root.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", str(home1.repo), str(root / "repo")], check=True)
    (tmp_path / "lifecycle.yaml").write_text(s3_config(s3))
    home2 = LifecycleHome(root)
    assert cli(home2, "init", "--config", str(tmp_path / "lifecycle.yaml")).returncode == 0
    assert not (home2.repo / ".dvc" / "cache").exists(), "the node starts with no DVC cache"

    done = cli(home2, "data", "restore", f"train_split/{day}")
    assert done.returncode == 0, done.stderr
    restored = pl.read_parquet(root / "restored" / "train_split" / day / "data.parquet")
    original = pl.read_parquet(home1.repo / "datasets" / "train_split" / "data.parquet")
    assert restored.equals(original) and restored.height > 0

    done = cli(home2, "models", "restore")
    assert done.returncode == 0 and "v1 restored from the DVC remote" in done.stdout, done.stderr
    assert Registry(home2, home2.config().problem.name).load("v1").version == "v1"

    done = cli(home2, "validation", "recheck", day)
    assert done.returncode == 0 and "FIRST_MODEL reproduced" in done.stdout, done.stderr

    # The same requests to each node's `bentoml serve`: the same scores.
    sim = FraudSimulator(home1.config())
    requests = [{"entity_id": p.card_id, "features": p.features} for p in sim.payments(DAYS)[:40]]
    np.testing.assert_allclose(scores(home2, requests), scores(home1, requests), atol=1e-6)


def test_the_endpoint_down_fails_the_day_and_a_rerun_pushes_what_is_missing(
    gate: TcpGate, first_node: tuple[LifecycleHome, list[DayOutcome]]
) -> None:
    """The S3 endpoint down while a day's versions are pushed: the run fails naming the
    endpoint, production stays; once it is back, the day again pushes what was missing,
    with no version made twice."""
    home = first_node[0]
    registry = Registry(home, home.config().problem.name)
    before = (registry.alias("production"), sorted(registry.versions()))
    day = simulate_day(home, DAYS)
    gate.close()
    try:
        with pytest.raises(RunFailed) as failed:
            run_day(home, day)
    finally:
        gate.open()
    message = str(failed.value)
    assert gate.url.removeprefix("http://") in message and "\n" not in message
    assert (registry.alias("production"), sorted(registry.versions())) == before
    assert dvc(home, "status", "--cloud", "--json").stdout.strip() not in ("", "{}")

    again = run_day(home, day)
    assert again.decision is not None
    assert sorted(registry.versions()) == [*before[1], f"v{len(before[1]) + 1}"]
    status = dvc(home, "status", "--cloud", "--json")
    assert status.returncode == 0 and json.loads(status.stdout or "{}") == {}, status.stdout


@contextlib.contextmanager
def endpoint_down_at(gate: TcpGate, stage: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The endpoint goes down at `stage`'s push: what the stages before it published is in
    the remote, and the stage's own version is recorded (and, for `candidate_model`, its model
    registered) before its push fails. Opened again on leaving. The runs execute in this
    process (`automation.loop.materialize`), so patching the resource's `publish_stage` is
    enough to time it."""
    publish = versioning_resource.publish_stage

    def closing(repo: Any, name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if name != stage:
            return publish(repo, name, *args, **kwargs)
        push = repo.push

        def push_with_the_endpoint_down(*a: Any, **k: Any) -> int:
            gate.close()
            return push(*a, **k)

        repo.push = push_with_the_endpoint_down
        return publish(repo, name, *args, **kwargs)

    monkeypatch.setattr(versioning_resource, "publish_stage", closing)
    try:
        yield
    finally:
        monkeypatch.setattr(versioning_resource, "publish_stage", publish)
        gate.open()


def next_day(home: LifecycleHome) -> dt.date:
    """The simulator's day after the home's "today", its traffic in the logs."""
    sim = FraudSimulator(home.config())
    return simulate_day(home, sim.day_index(today(home)) + 1)


def git(home: LifecycleHome, *args: str) -> list[str]:
    return subprocess.run(
        ["git", "-C", str(home.repo), *args],
        capture_output=True, text=True, check=True, env={**os.environ, **home.tool_env()},
    ).stdout.splitlines()  # fmt: skip


def moves(registry: Registry, alias: str) -> list[dict[str, Any]]:
    return [e for e in registry.history() if e["alias"] == alias]


def in_sync(home: LifecycleHome) -> None:
    status = dvc(home, "status", "--cloud", "--json")
    assert status.returncode == 0 and json.loads(status.stdout or "{}") == {}, status.stdout


def test_the_endpoint_down_during_the_model_push_leaves_one_version_after_the_rerun(
    gate: TcpGate,
    first_node: tuple[LifecycleHome, list[DayOutcome]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The endpoint goes down after the day's datasets were pushed, while the challenger's
    model is: its version is registered and tagged, the push fails and the run fails naming
    the endpoint; production stays. Once the endpoint is back, the rerun of the day trains
    no second version of the same model: it takes the registered one, pushes what the
    remote lacks and records the decision on it."""
    home = first_node[0]
    registry = Registry(home, home.config().problem.name)
    production, versions = registry.alias("production"), sorted(registry.versions())
    new = f"v{len(versions) + 1}"
    day = next_day(home)
    with endpoint_down_at(gate, "candidate_model", monkeypatch), pytest.raises(RunFailed) as failed:
        run_day(home, day)
    message = str(failed.value)
    assert "\n" not in message and "failed: candidate_model: " in message, message
    assert gate.url.removeprefix("http://") in message, message
    assert sorted(registry.versions()) == [*versions, new]  # registered before its push
    assert registry.alias("production") == production
    assert dvc(home, "status", "--cloud", "--json").stdout.strip() not in ("", "{}")
    candidate_moves = len(moves(registry, "candidate"))

    again = run_day(home, day)
    assert again.decision is not None and again.decision["challenger_version"] == new
    assert again.decision["day"] == day.isoformat()
    assert sorted(registry.versions()) == [*versions, new], "a second version of one model"
    assert len(moves(registry, "candidate")) == candidate_moves
    # One registration, one model tag, one commit of each.
    assert git(home, "tag", "-l", f"registry/{new}", f"model/{new}") == [
        f"model/{new}",
        f"registry/{new}",
    ]
    assert len(git(home, "log", "--format=%s", "--grep", f"^model {new}:")) == 1
    assert len(git(home, "log", "--format=%s", "--grep", f"register .*:{new} ")) == 1
    promoted = again.decision["decision"] in ("PASS", "FIRST_MODEL")
    assert registry.alias("production") == (new if promoted else production)
    in_sync(home)


def test_the_endpoint_down_during_the_promotion_push_leaves_one_move(
    gate: TcpGate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint goes down while the day's promotion is pushed (`models/production`):
    the move is made and committed before the push (the promotion's kill-safe order), the
    run fails naming the endpoint. The rerun moves nothing again, records the same decision
    and pushes what the remote lacks: one move, one commit of it."""
    _isolate(tmp_path / "home", monkeypatch)
    (tmp_path / "lifecycle.yaml").write_text(s3_config(gate.url, prefix="promotion"))
    home = init_home(tmp_path / "home", tmp_path / "lifecycle.yaml")
    registry = Registry(home, home.config().problem.name)
    for index in range(DAYS - 1):
        run_day(home, simulate_day(home, index))
    day = simulate_day(home, DAYS - 1)  # decides the first model: v1 is promoted
    with (
        endpoint_down_at(gate, "production_model", monkeypatch),
        pytest.raises(RunFailed) as failed,
    ):
        run_day(home, day)
    message = str(failed.value)
    assert "\n" not in message and "failed: production_model: " in message, message
    assert gate.url.removeprefix("http://") in message, message
    assert [(m["from"], m["to"]) for m in moves(registry, "production")] == [(None, "v1")]
    assert dvc(home, "status", "--cloud", "--json").stdout.strip() not in ("", "{}")

    again = run_day(home, day)
    assert again.decision is not None and again.decision["decision"] == "FIRST_MODEL"
    assert sorted(registry.versions()) == ["v1"]
    assert [(m["from"], m["to"]) for m in moves(registry, "production")] == [(None, "v1")]
    assert registry.alias("production") == "v1"
    assert len(git(home, "log", "--format=%s", "--grep", "registry: production (none) → v1")) == 1
    assert len(git(home, "tag", "-l", "validation/*")) == 1
    in_sync(home)
    done = cli(home, "validation", "recheck", day.isoformat())
    assert done.returncode == 0 and "FIRST_MODEL reproduced" in done.stdout, done.stderr


def test_wrong_credentials_fail_the_day_in_one_line(tmp_path: Path) -> None:
    """An endpoint that refuses the credentials: the first day that pushes a version fails
    with one line naming the refusal, and the command line says it in one line, with no
    traceback; production does not move."""
    mp = pytest.MonkeyPatch()
    for key, value in s3_environment(tmp_path / "aws").items():
        mp.setenv(key, value)
    _isolate(tmp_path / "home", mp)
    try:
        with s3_server(BUCKET, authenticating=True) as endpoint:
            (tmp_path / "lifecycle.yaml").write_text(s3_config(endpoint))
            home = init_home(tmp_path / "home", tmp_path / "lifecycle.yaml")
            registry = Registry(home, home.config().problem.name)
            failed: RunFailed | None = None
            for index in range(DAYS):
                day = simulate_day(home, index)
                try:
                    run_day(home, day)
                except RunFailed as err:
                    failed = err
                    break
            assert failed is not None, "no day pushed a version"
            message = str(failed)
            assert "\n" not in message, message
            assert f"s3://{BUCKET}/{PREFIX}" in message and "403" in message, message
            assert registry.alias("production") is None
            proc = cli(
                home, "materialize", "--partition", day.isoformat(), "--select", "train_split"
            )
    finally:
        mp.undo()
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "403" in lines[0] and "credentials" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
