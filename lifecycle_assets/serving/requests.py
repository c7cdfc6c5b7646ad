"""The prediction service's request contract, in plain code: payload models, validation of
features against the config, and the log records built from a scored request.

Nothing here imports BentoML: `bentos/service.py` is a thin HTTP wrapper over these
functions and `ServingRuntime`, so the whole contract is unit-tested without a server.
"""

from __future__ import annotations

import datetime as dt
import hmac
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from lifecycle_assets.config import ProblemConfig
from lifecycle_assets.records import FeatureValue, GroundTruthRecord, PredictionRecord

MAX_BATCH = 1000
MAX_ID_LENGTH = 128
MAX_CATEGORY_LENGTH = 256
# Request ids are join keys between predictions and labels: a conservative character set
# keeps them safe to log, put in URLs and file names, and compare byte for byte.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"

RequestId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
EntityId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
# strict: a JSON bool or string is not a number; finite: NaN and ±inf are refused.
FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class RequestError(ValueError):
    """A request that breaks the contract; `status` is the HTTP status (4xx) to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PredictRequest(_Payload):
    """One prediction request; `features` is checked against the config by `RequestValidator`."""

    request_id: RequestId | None = None
    entity_id: EntityId
    event_time: AwareDatetime | None = None
    features: dict[str, Any]


class PredictBatchRequest(_Payload):
    requests: Annotated[list[PredictRequest], Field(min_length=1, max_length=MAX_BATCH)]


class Prediction(BaseModel):
    """`score` is the model's raw output, `probability` its calibrated form (equal to the
    score where no calibration was fitted), `decision` the outcome after the business rules
    and `rule` the rule that changed the model's decision (None: the model decided)."""

    request_id: str
    model_version: str | None
    score: float | None
    probability: float | None = None
    decision: str | None
    rule: str | None = None


class PredictBatchResponse(BaseModel):
    predictions: list[Prediction]


class Label(_Payload):
    request_id: RequestId
    label: FiniteNumber
    observed_time: AwareDatetime | None = None


class FeedbackRequest(_Payload):
    """Either one label (`request_id`, `label`, `observed_time`?) or `labels: [...]`."""

    request_id: RequestId | None = None
    label: FiniteNumber | None = None
    observed_time: AwareDatetime | None = None
    labels: Annotated[list[Label], Field(min_length=1, max_length=MAX_BATCH)] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> FeedbackRequest:
        single = (self.request_id, self.label, self.observed_time)
        if self.labels is not None:
            if any(v is not None for v in single):
                raise ValueError("give either `labels` or one `request_id` + `label`, not both")
        elif self.request_id is None or self.label is None:
            raise ValueError("a label needs `request_id` and `label` (or give `labels: [...]`)")
        return self

    def items(self) -> list[Label]:
        if self.labels is not None:
            return list(self.labels)
        if self.request_id is None or self.label is None:  # unreachable after _one_form
            raise RequestError("a label needs `request_id` and `label`")
        return [
            Label(request_id=self.request_id, label=self.label, observed_time=self.observed_time)
        ]


class FeedbackResponse(BaseModel):
    """`count` labels recorded now; `duplicates` repeated ones this worker had already
    recorded (not written again); the data pipeline keeps the first label per request id."""

    count: int
    duplicates: int = 0


class LookupRequest(_Payload):
    scheduled_payment_id: RequestId


class LookupResponse(BaseModel):
    """A scheduled item's answer; `source` is `offline` (precomputed) or `rescored` (scored
    now, because the cached score was from another model or missing)."""

    scheduled_payment_id: str
    entity_id: str
    scheduled_time: str
    model_version: str | None
    score: float | None
    probability: float | None
    decision: str | None
    rule: str | None
    computed_at: str
    source: str


class Health(BaseModel):
    status: str
    model_version: str | None
    alias_version: str | None
    error: str | None = None


@dataclass(frozen=True)
class ValidRequest:
    """A prediction request that passed validation, with its id and event time settled."""

    request_id: str
    entity_id: str
    event_time: dt.datetime
    features: dict[str, FeatureValue]


def _is_finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in sorted(names))


class RequestValidator:
    """The request schema derived from the config: which features, of which type, and what a
    label may be. Built once at service start; `features` runs per request."""

    def __init__(self, problem: ProblemConfig) -> None:
        self.numeric = tuple(problem.numeric_features)
        self.categorical = tuple(problem.categorical_features)
        self.task = problem.task
        self._expected = frozenset((*self.numeric, *self.categorical))

    def features(self, raw: Mapping[str, Any]) -> dict[str, FeatureValue]:
        """The features as received, once every one is present and of the right type."""
        if raw.keys() != self._expected:
            missing = self._expected - raw.keys()
            extra = raw.keys() - self._expected
            parts = []
            if missing:
                parts.append(f"missing features {_names(missing)}")
            if extra:
                parts.append(f"unknown features {_names(extra)}")
            raise RequestError("; ".join(parts))
        for name in self.numeric:
            if not _is_finite_number(raw[name]):
                raise RequestError(
                    f"feature {name!r} must be a finite number, got {_show(raw[name])}"
                )
        for name in self.categorical:
            value = raw[name]
            if not isinstance(value, str):
                raise RequestError(f"feature {name!r} must be a string, got {_show(value)}")
            if len(value) > MAX_CATEGORY_LENGTH:
                raise RequestError(
                    f"feature {name!r} is longer than {MAX_CATEGORY_LENGTH} characters"
                )
        return dict(raw)

    def label(self, value: float) -> float:
        if self.task == "binary" and value not in (0.0, 1.0):
            raise RequestError(f"label must be 0 or 1 for a binary task, got {value!r}")
        return float(value)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)  # nan, inf
    if isinstance(value, int):
        return "an integer out of float range"
    return _JSON_TYPES.get(type(value), type(value).__name__)


_JSON_TYPES: dict[type, str] = {str: "a string", list: "an array", dict: "an object"}


def utc_time(value: dt.datetime, field: str) -> dt.datetime:
    """A request's timestamp in UTC, as the log stores it; refused if it has no UTC form."""
    try:
        return value.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        raise RequestError(f"{field} {value.isoformat()} is out of range") from None


def new_request_id() -> str:
    return uuid.uuid4().hex


def prepare(
    requests: Sequence[PredictRequest], validator: RequestValidator, default_time: dt.datetime
) -> list[ValidRequest]:
    """Validate a batch, give ids to requests without one, and default their event time."""
    out: list[ValidRequest] = []
    seen: set[str] = set()
    for i, req in enumerate(requests):
        try:
            features = validator.features(req.features)
            event_time = (
                default_time if req.event_time is None else utc_time(req.event_time, "event_time")
            )
        except RequestError as err:
            if len(requests) == 1:
                raise
            raise RequestError(f"requests[{i}]: {err}", err.status) from None
        request_id = req.request_id or new_request_id()
        if request_id in seen:
            raise RequestError(f"requests[{i}]: duplicate request_id {request_id!r} in the batch")
        seen.add(request_id)
        out.append(ValidRequest(request_id, req.entity_id, event_time, features))
    return out


def prediction_records(
    requests: Sequence[ValidRequest],
    model_version: str | None,
    scores: Sequence[float] | None,
    decisions: Sequence[str | None] | None,
    rules: Sequence[str | None] | None = None,
    logged_at: dt.datetime | None = None,
) -> list[PredictionRecord]:
    """The log records for scored requests; `scores` None means cold start (no model)."""
    stamp = logged_at or dt.datetime.now(dt.UTC)
    if scores is None or decisions is None:
        return [
            PredictionRecord(
                r.request_id, r.entity_id, r.event_time, r.features, None, None, None, stamp
            )
            for r in requests
        ]
    rules = rules or [None] * len(requests)
    return [
        PredictionRecord(
            r.request_id,
            r.entity_id,
            r.event_time,
            r.features,
            model_version,
            float(s),
            d,
            stamp,
            rule,
        )
        for r, s, d, rule in zip(requests, scores, decisions, rules, strict=True)
    ]


def ground_truth_records(
    labels: Sequence[Label], validator: RequestValidator, default_time: dt.datetime
) -> list[GroundTruthRecord]:
    out = []
    for i, item in enumerate(labels):
        try:
            value = validator.label(item.label)
            observed = (
                default_time
                if item.observed_time is None
                else utc_time(item.observed_time, "observed_time")
            )
        except RequestError as err:
            if len(labels) == 1:
                raise
            raise RequestError(f"labels[{i}]: {err}", err.status) from None
        out.append(GroundTruthRecord(item.request_id, value, observed))
    return out


def check_bearer(authorization: str | None, token: str | None) -> None:
    """Mutating endpoints need `Authorization: Bearer <token>` when a token is configured."""
    if not token:
        return
    if not authorization:
        raise RequestError("missing Authorization: Bearer <token>", status=401)
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise RequestError("Authorization must be `Bearer <token>`", status=401)
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise RequestError("invalid token", status=403)
