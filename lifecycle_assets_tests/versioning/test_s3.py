"""DVC over the S3 API against a real S3-compatible server (moto's, its own process on a free
port): a home whose `versioning.dvc_remote` is `s3://bucket/prefix` with the endpoint in
`versioning.dvc_remote_options` runs the loop for a few days, and its repo and the remote
are in sync (`dvc status -c`); a second node with only a clone of the registry repo and the
remote restores, serves the same predictions and rechecks the decision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest

from lifecycle_assets.automation.loop import DayOutcome, RunFailed, run_day
from lifecycle_assets.home import LifecycleHome
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


def s3_config(endpoint: str) -> str:
    return CONFIG.replace(
        "versioning:\n",
        f"versioning:\n  dvc_remote: s3://{BUCKET}/{PREFIX}\n"
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
