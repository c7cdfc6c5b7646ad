"""The transports the demo and replay send traffic through: the same batches in process and
over a real `bentoml serve`, labels with the token, and waiting for a version to serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.records import read_ground_truth, read_predictions
from lifecycle_assets.serving.process import ServiceProcess
from lifecycle_assets.serving.transport import (
    InProcess,
    OverHttp,
    ServiceCallError,
    Transport,
    wait_for_version,
)
from lifecycle_assets_tests.serving.helpers import DAY, NOON, PROBLEM, features
from lifecycle_assets_tests.serving.test_reliability import make_home


def requests(n: int) -> list[dict[str, Any]]:
    return [
        {
            "request_id": f"r{i}",
            "entity_id": f"c{i}",
            "event_time": NOON.isoformat(),
            "features": features(i),
        }
        for i in range(n)
    ]


def labels(n: int) -> list[dict[str, Any]]:
    return [
        {"request_id": f"r{i}", "label": float(i % 2), "observed_time": NOON.isoformat()}
        for i in range(n)
    ]


def round_trip(transport: Transport, home: LifecycleHome, version: str | None) -> list[Any]:
    """Serve a batch, then label it; returns the scores after checking what was logged."""
    wait_for_version(transport, version)
    preds = transport.predict(requests(3))
    assert [p["request_id"] for p in preds] == ["r0", "r1", "r2"]
    assert {p["model_version"] for p in preds} == {version}
    transport.sync()
    transport.feedback(labels(3))
    transport.sync()
    logged, bad = read_predictions(
        home.logs, DAY, PROBLEM.numeric_features, PROBLEM.categorical_features
    )
    assert bad.is_empty()
    assert sorted(logged["request_id"].to_list()) == ["r0", "r1", "r2"]
    truth, _ = read_ground_truth(home.logs, DAY)
    assert sorted(truth["request_id"].to_list()) == ["r0", "r1", "r2"]
    with pytest.raises(ServiceCallError, match="did not switch to v9"):
        wait_for_version(transport, "v9", timeout=0.3)
    return [p["score"] for p in preds]


def test_in_process_serves_labels_and_reports_its_version(home: LifecycleHome) -> None:
    transport = InProcess(home, "unit")
    try:
        # Cold start: no model yet, so the predictions are logged unscored.
        assert round_trip(transport, home, None) == [None, None, None]
    finally:
        transport.close()


@pytest.mark.slow
def test_over_http_serves_labels_and_stops_its_service(
    template: LifecycleHome, tmp_path: Path
) -> None:
    home = make_home(template, tmp_path / "home")
    service = ServiceProcess(home).start()
    transport = OverHttp(service)
    try:
        scores = round_trip(transport, home, "v1")
        assert all(isinstance(s, float) for s in scores)
        with pytest.raises(ServiceCallError, match="POST /predict_batch → 400"):
            transport.predict([{"entity_id": "c0"}])
    finally:
        transport.close()
    assert service.proc is not None and service.proc.poll() is not None
