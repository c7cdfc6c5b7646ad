"""The prediction service, served two ways:

- from the project on a lifecycle home: `bentoml serve bentos.service:Lifecycle` from the
  project root, with `LIFECYCLE_HOME` (and `BENTOML_HOME`, from `LifecycleHome.tool_env()`) in
  the environment. It follows the home's `production` alias and swaps models live.
- as a built Bento, `lifecycle:<version>` (`serving/bento.py`: `bentoml build --arg
  model=<name>:<version>`): it serves the model the Bento packs (`bentoml.models.BentoModel`),
  under the config packed with it, with no lifecycle home; its prediction log, lookup store
  and request index go under `LIFECYCLE_SERVING_DIR`.

A thin HTTP layer over `lifecycle_assets.serving`: the request contract, validation, scoring,
alias following and logging live there and are unit-tested without a server. No Dagster here.

    POST /predict        {request_id?, entity_id, event_time?, features} -> Prediction
    POST /predict_batch  {"requests": [...]} (1..1000)                   -> {"predictions": [...]}
    POST /feedback       {request_id, label, observed_time?} | {"labels": [...]}
                                                              -> {"count", "duplicates"}
    GET  /lookup/{scheduled_payment_id}   precomputed (or rescored) answer -> LookupResponse
    POST /lookup         {"scheduled_payment_id"}  the same, for clients that prefer a body
    GET  /healthz        {"status", "model_version", "alias_version", "error", "ready", ...}
    GET  /readyz         200 only while a verified model serves (or none exists yet), else 503
    GET  /docs.json      the OpenAPI document (BentoML's)
"""

import asyncio
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import bentoml
from bentoml.exceptions import BentoMLException, InvalidArgument
from pydantic import BaseModel, ValidationError

from lifecycle_assets.config import load_config
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.home import LifecycleHome, resolve_home
from lifecycle_assets.serving.openapi import openapi_document
from lifecycle_assets.serving.requests import (
    API_VERSION,
    FeedbackRequest,
    FeedbackResponse,
    LookupRequest,
    LookupResponse,
    PredictBatchRequest,
    PredictBatchResponse,
    Prediction,
    PredictRequest,
    RequestError,
    is_valid_id,
    validation_error_body,
)
from lifecycle_assets.serving.setup import packed_config_path, serving_dir_from_env, token_problem

if TYPE_CHECKING:
    # The runtime (it brings PyTorch) is imported by the worker that serves
    # (`Lifecycle.__init__`): BentoML's serving process imports this module too, to run the
    # start-up checks, and never scores.
    from lifecycle_assets.serving.runtime import ServingRuntime

logger = logging.getLogger("lifecycle.serving")


def _http_error(err: RequestError) -> BentoMLException:
    if err.status == HTTPStatus.BAD_REQUEST:
        return InvalidArgument(str(err))
    return BentoMLException(str(err), error_code=HTTPStatus(err.status))


# The access log is off: every prediction is already logged, with more detail, by the service.
# The hot routes are not traced either: an OpenTelemetry span per request cost about as much
# as the model (see docs/serving.md); every other route still is.
# Bound to the loopback interface by default, on a port of its own (`lifecycle ui` takes
# Dagster's 3000); the Bento's image sets BENTOML_HOST and BENTOML_PORT (bentofile.yaml).
SERVER_SETTINGS: dict[str, Any] = {
    "http": {"host": "127.0.0.1", "port": 3100},
    "logging": {"access": {"enabled": False}},
    "tracing": {"excluded_urls": ["/predict", "/predict_batch", "/lookup", "/healthz"]},
}


class BentoArguments(BaseModel):
    """The Bento's build arguments (`bentoml build --arg model=NAME:VERSION`, kept in the
    Bento and read again when it serves)."""

    # The registered model this Bento packs and serves; unset when the project is served
    # on a home, which follows the `production` alias instead.
    model: str | None = None


ARGS = bentoml.use_arguments(BentoArguments)


def startup_problem() -> str | None:
    """Why this service cannot start in this environment, in one line, or None: checked
    before its workers start (`Lifecycle.refuse_to_start_unconfigured`)."""
    try:
        if ARGS.model is None:
            home = LifecycleHome(resolve_home())
            return token_problem(home.config().serving, home.config_path)
        serving_dir_from_env(ARGS.model)
        packed = packed_config_path(Path(bentoml.models.get(ARGS.model).path))
        return token_problem(load_config(packed).serving, None)
    except (LifecycleError, OSError, ValueError, BentoMLException) as err:
        return str(err).splitlines()[0] if str(err) else type(err).__name__


@bentoml.service(name="lifecycle", **SERVER_SETTINGS)
class Lifecycle:
    # A declared model is packed into the Bento by `bentoml build` and resolved from the
    # Bento's own model store when it serves.
    packed = bentoml.models.BentoModel(ARGS.model) if ARGS.model else None

    def __init__(self) -> None:
        # BentoML's logging config shows warnings only for loggers it does not own; model
        # swaps are worth an INFO line in the server log.
        if logging.getLogger("lifecycle").level == logging.NOTSET:
            logging.getLogger("lifecycle").setLevel(logging.INFO)
        from lifecycle_assets.serving.runtime import ServingRuntime

        if self.packed is None:
            self.runtime = ServingRuntime.from_environment()
            return
        stored = cast(bentoml.Model, self.packed)
        self.runtime = ServingRuntime.from_packed(
            Path(stored.path),
            str(stored.info.metadata["artifact_sha256"]),
            serving_dir_from_env(str(ARGS.model)),
        )

    # Async endpoints run on the worker's event loop: scoring one small batch on the CPU is
    # shorter than a hop to a thread pool and back. The edge answers these routes itself
    # (`Edge._answer`), through the same `HANDLERS`; these methods give BentoML the
    # contract for its OpenAPI document and its clients. Each request model's fields are the
    # API's parameters (not one root input), so the JSON body is the same object and
    # `bentoml.SyncHTTPClient` takes them as keywords: `client.predict(entity_id=...,
    # features={...})`, `client.feedback(request_id=..., label=...)`.
    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=Prediction)
    async def predict(self, **fields: Any) -> Prediction:
        return cast(Prediction, _handle(self.runtime, "/predict", fields, None))

    @bentoml.api(
        route="/predict_batch", input_spec=PredictBatchRequest, output_spec=PredictBatchResponse
    )
    async def predict_batch(self, **fields: Any) -> PredictBatchResponse:
        return cast(PredictBatchResponse, _handle(self.runtime, "/predict_batch", fields, None))

    @bentoml.api(route="/feedback", input_spec=FeedbackRequest, output_spec=FeedbackResponse)
    async def feedback(self, ctx: bentoml.Context, **fields: Any) -> FeedbackResponse:
        authorization = ctx.request.headers.get("authorization")
        return cast(FeedbackResponse, _handle(self.runtime, "/feedback", fields, authorization))

    @bentoml.api(route="/lookup", input_spec=LookupRequest, output_spec=LookupResponse)
    async def lookup(self, **fields: Any) -> LookupResponse:
        return cast(LookupResponse, _handle(self.runtime, "/lookup", fields, None))

    @bentoml.on_deployment
    def refuse_to_start_unconfigured() -> None:
        """Once, before any worker starts: a service that could not answer (a required token
        unset, no lifecycle home, a Bento without its serving directory) exits with one line
        instead of restarting its workers, each with a traceback, for ever."""
        problem = startup_problem()
        if problem is not None:
            raise SystemExit(f"lifecycle: cannot serve: {problem}")

    @bentoml.on_shutdown
    def close(self) -> None:
        self.runtime.close()


def _found(runtime: "ServingRuntime", body: LookupRequest) -> LookupResponse:
    found = runtime.lookup(body.scheduled_payment_id)
    if found is None:
        raise RequestError(_not_found(body.scheduled_payment_id), status=404)
    return found


Handler = Callable[["ServingRuntime", Any, str | None], BaseModel]
# Each API route: its request model, and what answers it (runtime, the validated body, the
# Authorization header). The edge and the `@bentoml.api` methods both answer through these.
HANDLERS: dict[str, tuple[type[BaseModel], Handler]] = {
    "/predict": (PredictRequest, lambda rt, body, _: rt.predict([body])[0]),
    "/predict_batch": (
        PredictBatchRequest,
        lambda rt, body, _: PredictBatchResponse(predictions=rt.predict(body.requests)),
    ),
    "/feedback": (FeedbackRequest, lambda rt, body, auth: rt.feedback(body, auth)),
    "/lookup": (LookupRequest, lambda rt, body, _: _found(rt, body)),
}
API_ROUTES = frozenset(HANDLERS)


def _handle(
    runtime: "ServingRuntime", path: str, fields: dict[str, Any], authorization: str | None
) -> BaseModel:
    """A route's answer through BentoML's dispatch (the request model's fields, validated
    by BentoML): a refusal becomes BentoML's error."""
    model, handler = HANDLERS[path]
    try:
        return handler(runtime, model.model_validate(fields), authorization)
    except RequestError as err:
        raise _http_error(err) from None


MAX_BODY_BYTES = 8 << 20  # a full 1000-request batch is well under 1 MiB
# One request or one lookup is a few hundred bytes: a larger body is refused before it is
# parsed, so no single request can hold the event loop for long.
SINGLE_BODY_BYTES = 64 << 10
SINGLE_ROUTES = frozenset({"/predict", "/lookup"})


def body_limit(path: str) -> int:
    return SINGLE_BODY_BYTES if path in SINGLE_ROUTES else MAX_BODY_BYTES


LOOKUP_PREFIX = "/lookup/"
DOCS_PATH = "/docs.json"
_docs_json: bytes | None = None  # this worker's OpenAPI document, made on first request
# Routes under `serving.predict_auth`: scoring, and reading scores.
PREDICT_ROUTES = frozenset({"/predict", "/predict_batch", "/lookup"})
# A body still arriving holds a connection and a little memory: at most
# `serving.max_pending_bodies` at once per worker, each within `serving.body_timeout_s`.
_pending_bodies = 0
STARTING = "the service is starting"


class Coalescer:
    """`/predict` requests that reach the service in the same event-loop turn, scored in
    one call (`ServingRuntime.predict_each`): under concurrent load the forward pass, the
    model and clock lookups and the log hand-off are paid once per group, not per request.
    The first request of a turn schedules the group's scoring after the turn's other ready
    work (`loop.call_soon`), so a lone request is a group of one, answered one loop step
    later. Each request gets its own answer or refusal; the group is at most `limit`."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._pending: list[tuple[PredictRequest, asyncio.Future[Any]]] = []
        self.groups = 0  # groups scored by this worker (for tests and benchmarks)

    async def predict(self, runtime: "ServingRuntime", request: PredictRequest) -> Prediction:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        self._pending.append((request, answer))
        if len(self._pending) == 1:
            loop.call_soon(self._score, runtime)
        elif len(self._pending) >= self.limit:
            self._score(runtime)
        result = await answer
        if isinstance(result, Exception):
            raise result
        return cast(Prediction, result)

    def _score(self, runtime: "ServingRuntime") -> None:
        group, self._pending = self._pending, []
        if not group:
            return  # scored already, when the group reached `limit`
        self.groups += 1
        answers: list[Any]
        try:
            answers = list(runtime.predict_each([request for request, _ in group]))
        except Exception as err:  # a defect: every request of the group gets it (a 500)
            answers = [err] * len(group)
        for (_, future), result in zip(group, answers, strict=True):
            if not future.done():  # a request whose client went away is not answered
                future.set_result(result)


_coalescer = Coalescer()


def _not_found(item_id: str) -> str:
    return f"no offline prediction for scheduled payment {item_id!r}"


class BodyError(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise BodyError(f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BodyError(f"field {key!r} appears twice in one object")
            seen.add(key)
    return out


def parse_json(body: bytes) -> tuple[Any, str | None]:
    """(the parsed body, None), or (None, why it is refused).

    Python's and pydantic's parsers accept what the contract refuses (a repeated key keeps
    the last value; NaN and Infinity are read as floats) or fail in ways that surface as
    5xx (nesting deep enough to exhaust the recursion limit); here each gets a 400."""
    if not body:
        return None, "empty body: send a JSON object"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"body is not valid UTF-8 (byte {err.start})"
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
        ), None
    except BodyError as err:
        return None, str(err)
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError as err:
        return None, f"malformed JSON: {err}"


def check_json(body: bytes) -> str | None:
    """Why a JSON body is refused before it is validated, or None."""
    return parse_json(body)[1]


class Edge:
    """ASGI middleware in front of BentoML's routing.

    - `GET /healthz` answers with the model version and the log's state; `GET /readyz` is
      200 only while a verified model serves (or, before the first model, in cold start)
      and the log can be written. BentoML's own probes are routed before any API, so both
      are answered here first (BentoML's bare liveness probe stays at `/livez`).
    - The JSON APIs take JSON only: BentoML would hand a multipart or form body to other
      parsers, some of which fail with a 500; here such a request gets 415, a body larger
      than its route's limit (`body_limit`: 64 KiB for one request, 8 MiB for batches; by
      its Content-Length, or counted as it streams in) gets 413,
      and a body that is not strict JSON (invalid UTF-8, a repeated key, NaN/Infinity, deep
      nesting) gets 400 with the reason.
    - Tokens (`/feedback`; `/predict*` with `serving.predict_auth: required`) are checked
      here, so a 401/403 says which it was.
    - Every API route is answered here, on the body parsed once (see `_answer`), so every
      error has one shape: `{"error": reason}` (+ `detail` for a schema error). The
      `@bentoml.api` methods stay for the OpenAPI document: the contract is the same
      pydantic models.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/healthz" and method == "GET":
            await self._health(scope["headers"], send)
            return
        if path == "/readyz" and method == "GET":
            await self._ready(send)
            return
        if path == DOCS_PATH and method == "GET":
            await self._docs(scope, receive, send)
            return
        if path.startswith(LOOKUP_PREFIX) and method == "GET":
            await self._lookup(path[len(LOOKUP_PREFIX) :], scope["headers"], send)
            return
        if path in API_ROUTES and method == "POST":
            runtime = _runtime()  # looked up once per request
            limit = body_limit(path)
            refusal = _refuse_body(scope["headers"], limit)
            if refusal is None:
                refusal = _refuse_unauthorised(path, scope["headers"], runtime)
            if refusal is None:
                parsed, refusal = await _read_body_in_time(receive, limit, runtime)
            if refusal is not None:
                close = refusal[0] in (408, 413, 503)  # the rest of the body is not read
                await _send_json(send, refusal[0], {"error": refusal[1]}, close=close)
                return
            await self._answer(path, parsed, scope["headers"], runtime, send)
            return
        await self.app(scope, receive, _json_errors(path, send))

    async def _answer(
        self, path: str, parsed: Any, headers: Any, runtime: "ServingRuntime | None", send: Any
    ) -> None:
        """An API route answered on the body already parsed for the checks above: BentoML's
        API dispatch (a second parse, its IO descriptors, context and metrics) cost more
        than the model on `/predict`, and its error bodies differ from route to route."""
        if runtime is None:
            await _send_json(send, 503, {"error": STARTING})
            return
        model, handler = HANDLERS[path]
        try:
            body = model.model_validate(parsed)
            if path == "/predict":  # scored with the other requests of this loop turn
                answer: BaseModel = await _coalescer.predict(runtime, cast(PredictRequest, body))
            else:
                answer = handler(runtime, body, _header(headers, b"authorization"))
            payload = answer.model_dump_json()
        except ValidationError as err:
            await _send_json(send, 400, validation_error_body(err))
            return
        except RequestError as err:
            await _send_json(send, err.status, {"error": str(err)})
            return
        except Exception:  # a defect: answered at once (not left to time out) and logged
            logger.exception("%s failed", path)
            await _send_json(send, 500, {"error": "internal error; see the service log"})
            return
        await _send_bytes(send, 200, payload.encode())

    @staticmethod
    async def _lookup(item_id: str, headers: Any, send: Any) -> None:
        # Answered here, not through BentoML's routing: a path parameter, and the cheapest
        # path for a key-value read (the `/lookup` POST API is the same answer, documented
        # in the OpenAPI document).
        runtime = _runtime()
        refusal = _refuse_unauthorised("/lookup", headers, runtime)
        if refusal is not None:
            await _send_json(send, refusal[0], {"error": refusal[1]})
            return
        if not is_valid_id(item_id):
            await _send_json(send, 400, {"error": "malformed scheduled_payment_id"})
            return
        if runtime is None:
            await _send_json(send, 503, {"error": STARTING})
            return
        found = runtime.lookup(item_id)
        if found is None:
            await _send_json(send, 404, {"error": _not_found(item_id)})
            return
        await _send_bytes(send, 200, found.model_dump_json().encode())

    async def _docs(self, scope: Any, receive: Any, send: Any) -> None:
        """BentoML's OpenAPI document completed for this service (`serving/openapi.py`),
        made once per worker; BentoML's own while the service is starting."""
        global _docs_json
        runtime = _runtime()
        if _docs_json is None and runtime is not None:
            status, body = await _captured(self.app, scope, receive)
            if status == 200:
                doc = openapi_document(
                    json.loads(body), runtime.validator, runtime.config.problem.name, API_VERSION
                )
                _docs_json = json.dumps(doc).encode()
        if _docs_json is None:
            await self.app(scope, receive, send)
            return
        await _send_bytes(send, 200, _docs_json)

    @staticmethod
    async def _health(headers: Any, send: Any) -> None:
        runtime = _runtime()
        if runtime is None:
            await _send_json(send, 503, {"status": "starting", "model_version": None})
            return
        # Failure causes (which may name files of the machine) only for the feedback token.
        detailed = runtime.feedback_token is not None and _authorised(
            runtime.check_feedback_auth, _header(headers, b"authorization")
        )
        await _send_json(send, 200, runtime.health(detailed).model_dump())

    @staticmethod
    async def _ready(send: Any) -> None:
        runtime = _runtime()
        if runtime is None:
            await _send_json(send, 503, {"ready": False, "reason": STARTING})
            return
        ready, reason = runtime.readiness()
        await _send_json(send, 200 if ready else 503, {"ready": ready, "reason": reason})


async def _captured(app: Any, scope: Any, receive: Any) -> tuple[int, bytes]:
    """(status, body) of what `app` answers to this request, sent nowhere."""
    status, chunks = 0, []

    async def keep(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, keep)
    return status, b"".join(chunks)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in headers if k == name), None)


def _authorised(check: Any, authorization: str | None) -> bool:
    try:
        check(authorization)
    except RequestError:
        return False
    return True


def _json_errors(path: str, send: Any) -> Any:
    """`send` for BentoML's own routing: a redirect (Starlette's trailing-slash one is built
    from the client's Host header) or a plain-text 404/405 becomes the one JSON error shape;
    everything else passes through."""
    replaced = False

    async def wrapped(message: Any) -> None:
        nonlocal replaced
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = dict(message.get("headers") or [])
            json_body = headers.get(b"content-type", b"").startswith(b"application/json")
            if 300 <= status < 400 or (status in (404, 405) and not json_body):
                replaced = True
                if status == 405:
                    allow = headers.get(b"allow", b"").decode("latin-1")
                    body = {"error": f"method not allowed on {path[:200]}; allowed: {allow}"}
                    await _send_json(send, 405, body, extra=[(b"allow", allow.encode())])
                else:
                    await _send_json(send, 404, {"error": f"no route {path[:200]}"})
                return
        elif message["type"] == "http.response.body" and replaced:
            return  # the replaced response's own body
        await send(message)

    return wrapped


def _refuse_body(
    headers: list[tuple[bytes, bytes]], limit: int = MAX_BODY_BYTES
) -> tuple[int, str] | None:
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
            if length > limit:
                return 413, f"request body over {limit} bytes"
    return None


def _runtime() -> "ServingRuntime | None":
    """This worker's runtime; None while the service is starting."""
    try:
        return cast("ServingRuntime", bentoml.get_current_service().runtime)
    except BentoMLException:
        return None


def _refuse_unauthorised(
    path: str, headers: list[tuple[bytes, bytes]], runtime: "ServingRuntime | None"
) -> tuple[int, str] | None:
    # Checked here rather than in the API: BentoML answers a 401/403 raised inside an API
    # with a bare "Authorization error", and the client should learn which one it was.
    if path not in PREDICT_ROUTES and path != "/feedback":
        return None
    if runtime is None:
        return 503, STARTING
    if sum(1 for k, _ in headers if k == b"authorization") > 1:
        return 400, "more than one Authorization header"
    authorization = _header(headers, b"authorization")
    try:
        if path == "/feedback":
            runtime.check_feedback_auth(authorization)
        else:
            runtime.check_predict_auth(authorization)
    except RequestError as err:
        return err.status, str(err)
    return None


async def _read_body_in_time(
    receive: Any, limit: int, runtime: "ServingRuntime | None"
) -> tuple[Any, tuple[int, str] | None]:
    """`_read_body` within `serving.body_timeout_s`, at most `serving.max_pending_bodies`
    at once: a client that sends part of a body (or declares more than it sends) gets 408
    and a closed connection instead of holding it forever."""
    global _pending_bodies
    if runtime is None:
        return None, (503, STARTING)
    policy = runtime.policy
    if _pending_bodies >= policy.max_pending_bodies:
        return None, (503, "too many request bodies arriving at once; retry")
    _pending_bodies += 1
    try:
        _, parsed, refusal = await asyncio.wait_for(
            _read_body(receive, limit), timeout=policy.body_timeout_s
        )
    except TimeoutError:
        return None, (408, f"request body not received within {policy.body_timeout_s:g} s")
    finally:
        _pending_bodies -= 1
    return parsed, refusal


async def _read_body(
    receive: Any, limit: int = MAX_BODY_BYTES
) -> tuple[bytes, Any, tuple[int, str] | None]:
    """The whole request body (also when sent chunked, without a Content-Length), refused
    past `limit` bytes or when it is not JSON the contract can take."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", None, (400, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", None, (413, f"request body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    parsed, reason = parse_json(body)
    return body, parsed, (None if reason is None else (400, reason))


async def _send_json(
    send: Any,
    status: int,
    body: dict[str, Any],
    *,
    close: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [*(extra or []), *([(b"connection", b"close")] if close else [])]
    await _send_bytes(send, status, json.dumps(body).encode(), headers)


async def _send_bytes(
    send: Any, status: int, payload: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# `@bentoml.service` returns a Service (typed as the class it wraps).
cast(Any, Lifecycle).add_asgi_middleware(Edge)
