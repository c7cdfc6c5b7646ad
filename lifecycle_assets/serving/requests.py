"""The prediction service's request contract, in plain code: payload models, validation of
features against the config, and the log records built from a scored request.

Nothing here imports BentoML: `bentos/service.py` is a thin HTTP wrapper over these
functions and `ServingRuntime`, so the whole contract is unit-tested without a server.
"""

from __future__ import annotations

import datetime as dt
import heapq
import hmac
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from lifecycle_assets.config import ProblemConfig
from lifecycle_assets.records import FeatureValue, GroundTruthRecord, PredictionRecord

MAX_BATCH = 1000
MAX_ID_LENGTH = 128
MAX_CATEGORY_LENGTH = 256
# Request ids are join keys between predictions and labels: a conservative character set
# keeps them safe to log, put in URLs and file names, and compare byte for byte.
# The version of the routes' request and response contract (the OpenAPI document's
# `info.version`): raised when a route's contract changes.
API_VERSION = "1.0"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"
_ID = re.compile(ID_PATTERN.removeprefix("^").removesuffix("$"))


def is_valid_id(text: str) -> bool:
    """The whole string is an id (`fullmatch`: Python's `$` would also match before a
    trailing newline; pydantic's and polars' regex engines anchor at the very end)."""
    return len(text) <= MAX_ID_LENGTH and _ID.fullmatch(text) is not None


def is_unicode(text: str) -> bool:
    """Text that UTF-8 can hold: JSON's `\ud800` escapes make lone surrogates, which the log
    could write but not read back as the same string."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_a_number(value: Any) -> Any:
    # pydantic's lax mode reads a number as a unix time; the contract's times are ISO 8601
    # strings with an offset, and a bare number is more likely a client's mistake.
    if isinstance(value, int | float):
        raise ValueError("must be an ISO 8601 time with a UTC offset, not a number")
    return value


RequestId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
EntityId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
Time = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
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
    event_time: Time | None = None
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
    observed_time: Time | None = None


class FeedbackRequest(_Payload):
    """Either one label (`request_id`, `label`, `observed_time`?) or `labels: [...]`."""

    request_id: RequestId | None = None
    label: FiniteNumber | None = None
    observed_time: Time | None = None
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
    """`count` labels recorded now; `duplicates` repeats of a label this worker had already
    recorded (not written again); `conflicts` labels that differ from the first one
    recorded for their request id (written and counted; the first arrival stays)."""

    count: int
    duplicates: int = 0
    conflicts: int = 0


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
    ready: bool = True
    log_backlog: int = 0  # acknowledged records not yet written (only while the log fails)
    log_quarantined: int = 0  # records refused by the log encoder, in the quarantine stream
    label_conflicts: int = 0
    # the challenger scored in shadow beside the model that answers (None: none), and why
    # the one the `shadow` alias names was dropped, if it was (production answers regardless)
    shadow_version: str | None = None
    shadow_error: str | None = None


@dataclass(frozen=True)
class ValidRequest:
    """A prediction request that passed validation, with its id and event time settled."""

    request_id: str
    entity_id: str
    event_time: dt.datetime
    features: dict[str, FeatureValue]
    # numeric features beyond the serving model's training range (served, flagged)
    out_of_range: tuple[str, ...] = ()


# The largest magnitude the model's float32 inputs can hold: a larger finite number becomes
# ±inf inside the network and a NaN score (the service refuses it at the edge instead).
FLOAT32_MAX = float(np.finfo(np.float32).max)
# How many feature names an error message lists: a request with 400,000 unknown features
# must not get a 5 MB answer.
MAX_NAMES_SHOWN = 5

Ranges = Mapping[str, Sequence[float]]


def _is_finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _names(names: Iterable[str]) -> str:
    """Up to `MAX_NAMES_SHOWN` names (sorted, each cut to 64 characters), then a count."""
    names = list(names)
    # nsmallest, not sorted: 400,000 unknown names must not cost a second on the event loop
    shown = ", ".join(
        repr(n[:64]) for n in heapq.nsmallest(MAX_NAMES_SHOWN, names, key=lambda n: (len(n), n))
    )
    more = len(names) - MAX_NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


class RequestValidator:
    """The request schema derived from the config: which features, of which type and range,
    and what a label may be. Built once at service start; `features` runs per request."""

    def __init__(self, problem: ProblemConfig) -> None:
        self.numeric = tuple(problem.numeric_features)
        self.categorical = tuple(problem.categorical_features)
        self.task = problem.task
        self.ranges: dict[str, tuple[float, float]] = {
            n: (float(lo), float(hi)) for n, (lo, hi) in problem.numeric_ranges.items()
        }
        self._expected = frozenset((*self.numeric, *self.categorical))

    def model_ranges(self, recorded: Ranges | None) -> dict[str, tuple[float, float]]:
        """The training ranges a model recorded (`metadata.feature_ranges`), for flagging
        values beyond them; features with a configured domain are judged by that instead."""
        return {
            n: (float(r[0]), float(r[1]))
            for n, r in (recorded or {}).items()
            if n in self.numeric and n not in self.ranges and len(r) == 2
        }

    def beyond(
        self, features: Mapping[str, Any], ranges: Mapping[str, tuple[float, float]]
    ) -> tuple[str, ...]:
        """The numeric features of a valid request beyond the model's training `ranges`:
        served, and flagged in the log (drift the loop must see, not refuse)."""
        out = []
        for name, (lo, hi) in ranges.items():
            value = features.get(name)
            if isinstance(value, int | float) and not lo <= value <= hi:
                out.append(name)
        return tuple(out)

    def features(self, raw: Mapping[str, Any]) -> dict[str, FeatureValue]:
        """The features as received, once every one is present, of the right type, finite,
        within float32 and inside its configured domain (`problem.feature_ranges`)."""
        if len(raw) > 2 * len(self._expected) + 16:
            # not worth naming: far more keys than the config has features
            raise RequestError(
                f"features has {len(raw)} entries; the config has {len(self._expected)}: "
                f"{_names(self._expected)}"
            )
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
            value = raw[name]
            if not _is_finite_number(value):
                raise RequestError(f"feature {name!r} must be a finite number, got {_show(value)}")
            bounds = self.ranges.get(name)
            if bounds is not None:
                if not bounds[0] <= value <= bounds[1]:
                    raise RequestError(
                        f"feature {name!r} must be within [{bounds[0]:g}, {bounds[1]:g}], "
                        f"got {_show(value)}"
                    )
            elif abs(value) > FLOAT32_MAX:
                raise RequestError(
                    f"feature {name!r} is beyond the model's float32 range, got {_show(value)}"
                )
        for name in self.categorical:
            value = raw[name]
            if not isinstance(value, str):
                raise RequestError(f"feature {name!r} must be a string, got {_show(value)}")
            if len(value) > MAX_CATEGORY_LENGTH:
                raise RequestError(
                    f"feature {name!r} is longer than {MAX_CATEGORY_LENGTH} characters"
                )
            if not is_unicode(value):
                raise RequestError(f"feature {name!r} contains a lone surrogate: not valid text")
        return dict(raw)

    def features_schema(self) -> dict[str, Any]:
        """`features` as JSON Schema: every feature required, numbers within their declared
        domain (`problem.feature_ranges`), categories as strings, nothing else."""
        props: dict[str, Any] = {}
        for name in self.numeric:
            props[name] = {"type": "number"}
            if name in self.ranges:
                props[name] |= {"minimum": self.ranges[name][0], "maximum": self.ranges[name][1]}
        for name in self.categorical:
            props[name] = {"type": "string", "maxLength": MAX_CATEGORY_LENGTH}
        return {
            "type": "object",
            "title": "Features",
            "properties": props,
            "required": [*self.numeric, *self.categorical],
            "additionalProperties": False,
        }

    def features_example(self) -> dict[str, FeatureValue]:
        """Features `features` accepts: each number at the low end of its domain (0 where
        none is declared), each category a placeholder (an unseen category is served)."""
        out: dict[str, FeatureValue] = {n: self.ranges.get(n, (0.0, 0.0))[0] for n in self.numeric}
        out.update({c: "example" for c in self.categorical})
        return out

    def accepts(self, raw: Mapping[str, Any]) -> bool:
        """Whether `features` would take these values (for stored rows, with no one to
        answer a 400 to)."""
        try:
            self.features(raw)
        except RequestError:
            return False
        return True

    def label(self, value: float) -> float:
        if self.task == "binary" and value not in (0.0, 1.0):
            raise RequestError(f"label must be 0 or 1 for a binary task, got {value!r}")
        return float(value)


def _show(value: Any) -> str:
    """A JSON value as an error message names it: its type, and a number's value."""
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)  # 1e+38, nan, inf
    if isinstance(value, int):
        if not _is_finite_number(value):
            return "an integer out of float range"
        return str(value) if abs(value) < 10**20 else f"{float(value):g}"
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


@dataclass(frozen=True)
class TimeWindow:
    """The event times the data pipeline will accept (docs/data.md): no older than
    `data.max_event_age_days`, no later than the clock plus `data.max_clock_skew_seconds`.
    A request outside is refused at the edge: acknowledged, it would only be quarantined."""

    oldest: dt.datetime
    latest: dt.datetime

    def check(self, when: dt.datetime, field: str) -> dt.datetime:
        if when < self.oldest:
            raise RequestError(
                f"{field} {when.isoformat()} is older than the oldest accepted "
                f"({self.oldest.isoformat()})"
            )
        if when > self.latest:
            raise RequestError(
                f"{field} {when.isoformat()} is later than the latest accepted "
                f"({self.latest.isoformat()})"
            )
        return when


def prepare(
    requests: Sequence[PredictRequest],
    validator: RequestValidator,
    default_time: dt.datetime,
    *,
    window: TimeWindow | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> list[ValidRequest]:
    """Validate a batch, give ids to requests without one, and default their event time;
    flag the features beyond the serving model's training `ranges`."""
    out: list[ValidRequest] = []
    seen: set[str] = set()
    for i, req in enumerate(requests):
        try:
            features = validator.features(req.features)
            event_time = (
                default_time if req.event_time is None else utc_time(req.event_time, "event_time")
            )
            if window is not None and req.event_time is not None:
                window.check(event_time, "event_time")
        except RequestError as err:
            if len(requests) == 1:
                raise
            raise RequestError(f"requests[{i}]: {err}", err.status) from None
        request_id = req.request_id or new_request_id()
        if request_id in seen:
            raise RequestError(f"requests[{i}]: duplicate request_id {request_id!r} in the batch")
        seen.add(request_id)
        beyond = validator.beyond(features, ranges) if ranges else ()
        out.append(ValidRequest(request_id, req.entity_id, event_time, features, beyond))
    return out


MAX_ERRORS_SHOWN = 10


def validation_error_body(err: ValidationError) -> dict[str, Any]:
    """A pydantic error as every route answers it: `{"error": ..., "detail": [...]}`, with
    dotted field paths and messages only (no inputs, no internal type names), bounded."""
    detail = []
    for item in err.errors(include_url=False, include_context=False, include_input=False)[
        :MAX_ERRORS_SHOWN
    ]:
        field = ".".join(str(p) for p in item["loc"]) or "(body)"
        detail.append({"field": field[:200], "message": str(item["msg"])[:300]})
    first = detail[0] if detail else {"field": "(body)", "message": "invalid"}
    count = err.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    return {"error": f"{first['field']}: {first['message']}{more}", "detail": detail}


def prediction_records(
    requests: Sequence[ValidRequest],
    model_version: str | None,
    scores: Sequence[float | None] | None,
    decisions: Sequence[str | None] | None,
    rules: Sequence[str | None] | None = None,
    logged_at: dt.datetime | None = None,
) -> list[PredictionRecord]:
    """The log records for scored requests; `scores` None means cold start (no model)."""
    stamp = logged_at or dt.datetime.now(dt.UTC)
    if scores is None or decisions is None:
        return [
            PredictionRecord(
                r.request_id,
                r.entity_id,
                r.event_time,
                r.features,
                None,
                None,
                None,
                stamp,
                out_of_range=r.out_of_range or None,
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
            None if s is None else float(s),
            d,
            stamp,
            rule,
            r.out_of_range or None,
        )
        for r, s, d, rule in zip(requests, scores, decisions, rules, strict=True)
    ]


def ground_truth_records(
    labels: Sequence[Label],
    validator: RequestValidator,
    default_time: dt.datetime,
    received_at: dt.datetime | None = None,
    *,
    window: TimeWindow | None = None,
) -> list[GroundTruthRecord]:
    """The label records to write. `received_at` (the service's clock) files and orders
    them; a client's `observed_time` is information, refused outside the same plausibility
    `window` as event times."""
    out = []
    for i, item in enumerate(labels):
        try:
            value = validator.label(item.label)
            observed = (
                default_time
                if item.observed_time is None
                else utc_time(item.observed_time, "observed_time")
            )
            if window is not None and item.observed_time is not None:
                window.check(observed, "observed_time")
        except RequestError as err:
            if len(labels) == 1:
                raise
            raise RequestError(f"labels[{i}]: {err}", err.status) from None
        out.append(GroundTruthRecord(item.request_id, value, observed, received_at))
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
