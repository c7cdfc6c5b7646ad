"""The service as its traffic drivers (the demo, replay) reach it: the serving code path in
process, or a real `bentoml serve` over HTTP, behind one small protocol.

Each call takes one batch as the JSON bodies hold it (`/predict_batch`'s `requests`,
`/feedback`'s `labels`); how traffic is cut into batches is the caller's choice.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Protocol

import httpx

from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.serving.process import ServiceProcess
from lifecycle_assets.serving.requests import FeedbackRequest, Label, PredictRequest


class ServiceCallError(LifecycleError, RuntimeError):
    """The service refused a call, or did not switch to a version in time."""


class Transport(Protocol):
    """Where the traffic goes: the serving code path, in process or over HTTP."""

    def predict(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def feedback(self, labels: list[dict[str, Any]]) -> None: ...

    def health(self) -> dict[str, Any]: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class InProcess:
    """`ServingRuntime` in this process: the service's own steps without HTTP (fast; the
    BentoML service is a thin wrapper over the same object)."""

    def __init__(self, home: LifecycleHome, writer_id: str) -> None:
        from lifecycle_assets.serving.runtime import ServingRuntime

        self.token = secrets.token_urlsafe(16)
        # No background loads and a check on every call: an alias move made by the loop is
        # served from the next request, as a real service would within 0.5 s.
        self.runtime = ServingRuntime(
            home,
            writer_id=writer_id,
            feedback_token=self.token,
            background_loads=False,
            check_interval_s=0.0,
        )

    def predict(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        preds = self.runtime.predict([PredictRequest.model_validate(b) for b in batch])
        return [p.model_dump() for p in preds]

    def feedback(self, labels: list[dict[str, Any]]) -> None:
        request = FeedbackRequest(labels=[Label.model_validate(x) for x in labels])
        self.runtime.feedback(request, authorization=f"Bearer {self.token}")

    def health(self) -> dict[str, Any]:
        return self.runtime.health().model_dump(mode="json")

    def sync(self) -> None:
        self.runtime.log.sync()

    def close(self) -> None:
        self.runtime.close()


class OverHttp:
    """A real `bentoml serve` of a home (`ServiceProcess`): the full HTTP path, slower to start
    and per call. Closing the transport stops the service."""

    def __init__(self, service: ServiceProcess, timeout: float = 120.0) -> None:
        self.service = service
        self.client = httpx.Client(base_url=service.url, timeout=timeout)

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None):
        resp = self.client.post(path, json=body, headers=headers)
        if resp.status_code != 200:
            raise ServiceCallError(f"POST {path} → {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def predict(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(self._post("/predict_batch", {"requests": batch})["predictions"])

    def feedback(self, labels: list[dict[str, Any]]) -> None:
        self._post("/feedback", {"labels": labels}, self.service.auth_headers)

    def health(self) -> dict[str, Any]:
        return dict(self.client.get("/healthz").json())

    def sync(self) -> None:
        # The service writes its log off the request path every few ms (serving config).
        time.sleep(0.5)

    def close(self) -> None:
        self.client.close()
        self.service.stop()


def wait_for_version(transport: Transport, version: str | None, timeout: float = 60.0) -> None:
    """Return once the service serves `version` (None: no model yet), so traffic sent after an
    alias move is answered by the model it names."""
    deadline = time.monotonic() + timeout
    while transport.health().get("model_version") != version:
        if time.monotonic() > deadline:
            raise ServiceCallError(f"the service did not switch to {version} in {timeout:.0f}s")
        time.sleep(0.2)
