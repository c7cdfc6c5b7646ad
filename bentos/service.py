"""The prediction service: `bentoml serve bentos.service:Lifecycle` from the project root, with
`LIFECYCLE_HOME` (and `BENTOML_HOME`, from `LifecycleHome.tool_env()`) in the environment.

A thin HTTP layer over `lifecycle_assets.serving`: the request contract, validation, scoring,
alias following and logging live there and are unit-tested without a server. No Dagster here.

    POST /predict        {request_id?, entity_id, event_time?, features} -> Prediction
    POST /predict_batch  {"requests": [...]} (1..1000)                   -> {"predictions": [...]}
    POST /feedback       {request_id, label, observed_time?} | {"labels": [...]} -> {"count"}
    GET  /healthz        {"status", "model_version", "alias_version", "error"}
"""

import json
import logging
from http import HTTPStatus
from typing import Any, cast

import bentoml
from bentoml.exceptions import BentoMLException, InvalidArgument

from lifecycle_assets.serving.requests import (
    FeedbackRequest,
    FeedbackResponse,
    PredictBatchRequest,
    PredictBatchResponse,
    Prediction,
    PredictRequest,
    RequestError,
)
from lifecycle_assets.serving.runtime import ServingRuntime


def _http_error(err: RequestError) -> BentoMLException:
    if err.status == HTTPStatus.BAD_REQUEST:
        return InvalidArgument(str(err))
    return BentoMLException(str(err), error_code=HTTPStatus(err.status))


# The access log is off: every prediction is already logged, with more detail, by the service.
@bentoml.service(name="lifecycle", logging={"access": {"enabled": False}})
class Lifecycle:
    def __init__(self) -> None:
        # BentoML's logging config shows warnings only for loggers it does not own; model
        # swaps are worth an INFO line in the server log.
        if logging.getLogger("lifecycle").level == logging.NOTSET:
            logging.getLogger("lifecycle").setLevel(logging.INFO)
        self.runtime = ServingRuntime.from_environment()

    # Async endpoints run on the worker's event loop: scoring one small batch on the CPU is
    # shorter than a hop to a thread pool and back.
    @bentoml.api(route="/predict")
    async def predict(self, request: PredictRequest, /) -> Prediction:
        try:
            return self.runtime.predict([request])[0]
        except RequestError as err:
            raise _http_error(err) from None

    @bentoml.api(route="/predict_batch")
    async def predict_batch(self, batch: PredictBatchRequest, /) -> PredictBatchResponse:
        try:
            return PredictBatchResponse(predictions=self.runtime.predict(batch.requests))
        except RequestError as err:
            raise _http_error(err) from None

    @bentoml.api(route="/feedback")
    async def feedback(self, body: FeedbackRequest, /, ctx: bentoml.Context) -> FeedbackResponse:
        try:
            count = self.runtime.feedback(body, ctx.request.headers.get("authorization"))
        except RequestError as err:
            raise _http_error(err) from None
        return FeedbackResponse(count=count)

    @bentoml.on_shutdown
    def close(self) -> None:
        self.runtime.close()


API_ROUTES = frozenset({"/predict", "/predict_batch", "/feedback"})
MAX_BODY_BYTES = 8 << 20  # a full 1000-request batch is well under 1 MiB


class Edge:
    """ASGI middleware in front of BentoML's routing.

    - `GET /healthz` answers with the model version. BentoML's own `/healthz` (a bare liveness
      probe, kept at `/livez`) is routed before any API, so it is answered here first.
    - The JSON APIs take JSON only: BentoML would hand a multipart or form body to other
      parsers, some of which fail with a 500; here such a request gets 415, and a body larger
      than `MAX_BODY_BYTES` (by its Content-Length) gets 413.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path == "/healthz" and method == "GET":
                await self._health(send)
                return
            if path in API_ROUTES and method == "POST":
                refusal = _refuse_body(scope["headers"])
                if refusal is not None:
                    await _send_json(send, refusal[0], {"error": refusal[1]})
                    return
        await self.app(scope, receive, send)

    @staticmethod
    async def _health(send: Any) -> None:
        try:
            service = bentoml.get_current_service()
        except BentoMLException:
            await _send_json(send, 503, {"status": "starting", "model_version": None})
            return
        await _send_json(send, 200, service.runtime.health().model_dump())


def _refuse_body(headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
    for name, value in headers:
        if name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            if media_type not in (b"application/json", b""):
                return (
                    415,
                    f"send JSON (Content-Type: application/json), not {media_type.decode('latin-1')!r}",
                )
        elif name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return 400, "malformed Content-Length"
            if length > MAX_BODY_BYTES:
                return 413, f"request body over {MAX_BODY_BYTES} bytes"
    return None


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# `@bentoml.service` returns a Service (typed as the class it wraps).
cast(Any, Lifecycle).add_asgi_middleware(Edge)
