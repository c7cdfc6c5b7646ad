"""`lifecycle ui` starts `dagster dev` on the home; its GraphQL endpoint lists every asset."""

from __future__ import annotations

import time

import httpx
import pytest

from lifecycle_assets_tests.daemon import dagster_dev
from lifecycle_assets_tests.test_definitions import EXPECTED_ASSETS

pytestmark = pytest.mark.slow

QUERY = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"


def test_ui_serves_every_asset(make_home) -> None:
    home = make_home()
    with dagster_dev(home) as port:
        deadline = time.monotonic() + 180
        nodes = None
        while time.monotonic() < deadline:
            try:
                resp = httpx.post(
                    f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=5
                )
                data = resp.json().get("data") or {}
                if data.get("assetNodes"):
                    nodes = data["assetNodes"]
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        assert nodes is not None, "dagster dev did not answer GraphQL in time"
        assert {"/".join(n["assetKey"]["path"]) for n in nodes} == EXPECTED_ASSETS | {
            "prediction_log_store"
        }
        # the graph closes the loop: the service's log store feeds both ingest assets
        upstream = {
            "/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]}
            for n in nodes
        }
        assert (
            upstream["raw_prediction_logs"] == upstream["ground_truth"] == {"prediction_log_store"}
        )
