"""A real `dagster dev` (webserver + daemon) on a home, for the tests that need the daemon:
start it, start a sensor and launch a run through the webserver (as the UI does), wait for
runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
import httpx

from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.serving.process import free_port
from lifecycle_assets_tests.conftest import subprocess_env


@contextmanager
def dagster_dev(home: LifecycleHome) -> Iterator[int]:
    """`lifecycle ui` on the home in its own process group; yields its port, stops the group."""
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "lifecycle_assets.cli", "ui", "--workdir", str(home.root),
         "--port", str(port)],
        env=subprocess_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield port
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()


ASSET_NODES = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"


def asset_graph(port: int, timeout_s: float = 180) -> dict[str, set[str]]:
    """{asset: its upstream assets} as the webserver's GraphQL API lists them (what the UI
    draws), polled while the webserver and the code location are still loading."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            resp = httpx.post(
                f"http://127.0.0.1:{port}/graphql", json={"query": ASSET_NODES}, timeout=5
            )
            nodes = (resp.json().get("data") or {}).get("assetNodes")
            if nodes:
                return {
                    "/".join(n["assetKey"]["path"]): {
                        "/".join(d["path"]) for d in n["dependencyKeys"]
                    }
                    for n in nodes
                }
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    raise AssertionError("dagster dev did not answer GraphQL in time")


ASSET_PARTITIONS = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode { partitionKeys partitionStats { numMaterialized numPartitions } }
  }
}"""


def asset_partitions(port: int, asset: str) -> dict[str, Any]:
    """The partition keys of `asset` as the webserver lists them, and how many of them the
    UI counts as materialised (what its "missing" share is made of)."""
    resp = httpx.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": ASSET_PARTITIONS, "variables": {"key": {"path": asset.split("/")}}},
        timeout=30,
    )
    node = resp.json()["data"]["assetNodeOrError"]
    return {"keys": node["partitionKeys"], **node["partitionStats"]}


START_SENSOR = """
mutation ($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}"""


def start_sensor(port: int, name: str, timeout_s: float = 180) -> None:
    """Start sensor NAME through the webserver (as its switch in the UI does), retried while
    the webserver and the code location are still loading."""
    selector = {
        "repositoryLocationName": "lifecycle",
        "repositoryName": "__repository__",
        "sensorName": name,
    }
    deadline = time.monotonic() + timeout_s
    answer: object = None
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": START_SENSOR, "variables": {"selector": selector}},
                timeout=30,
            ).json()
            result = (answer.get("data") or {}).get("startSensor") or {}
            if result.get("__typename") == "Sensor":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(2)
    raise AssertionError(f"could not start sensor {name}: {answer}")


def launch(port: int, assets: Sequence[str], partition: str, timeout_s: float = 120) -> str:
    """Launch the loop's job for `assets` of `partition` through the webserver (as the UI
    does): the instance's run coordinator queues it and the daemon starts it. The run id."""
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.submit_job_execution(
                "lifecycle_loop",
                repository_location_name="lifecycle",
                tags={"dagster/partition": partition},
                asset_selection=list(assets),
            )
        except DagsterGraphQLClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def wait_for_run(
    instance: dg.DagsterInstance,
    find: Callable[[dg.DagsterInstance], dg.DagsterRun | None],
    timeout_s: float = 240,
) -> dg.DagsterRun:
    """The run `find` returns, once it has finished."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = find(instance)
        if run is not None and run.is_finished:
            return run
        time.sleep(2)
    raise AssertionError("the daemon did not finish the run in time")


def run_by_id(run_id: str) -> Callable[[dg.DagsterInstance], dg.DagsterRun | None]:
    return lambda instance: instance.get_run_by_id(run_id)


def latest_run_tagged(key: str, value: str) -> Callable[[dg.DagsterInstance], dg.DagsterRun | None]:
    return lambda instance: next(
        iter(instance.get_runs(dg.RunsFilter(tags={key: value}), limit=1)), None
    )
