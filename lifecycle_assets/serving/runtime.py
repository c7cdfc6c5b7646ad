"""What one service worker holds and does, outside BentoML: the model it serves (from
`serving/model_source.py`: the `production` alias of a home, or the model a built Bento
packs), the challenger in shadow on a home (`serving/shadow.py`), the prediction log
writer, and the per-request steps (validate → score → post-process → log; the shadow scores
the logged records in the log drain).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from lifecycle_assets.files import Signature, signature, write_atomic
from lifecycle_assets.home import LifecycleHome, now, resolve_home, time_horizon
from lifecycle_assets.records import LogWriter, PredictionRecord
from lifecycle_assets.registry.registry import load_version
from lifecycle_assets.serving.fence import VersionFence
from lifecycle_assets.serving.logbuffer import BatchedLog, NullLog
from lifecycle_assets.serving.lookup import LookupStore, SqliteLookupStore
from lifecycle_assets.serving.model_source import (
    CHECK_INTERVAL_S,
    AliasFollower,
    Loader,
    ModelSource,
    PackedModel,
    Served,
)
from lifecycle_assets.serving.postprocess import PostProcessor, Scored
from lifecycle_assets.serving.request_index import RequestIndex
from lifecycle_assets.serving.requests import (
    FeedbackRequest,
    FeedbackResponse,
    Health,
    LookupResponse,
    Prediction,
    PredictRequest,
    RequestError,
    RequestValidator,
    TimeWindow,
    ValidRequest,
    check_bearer,
    ground_truth_records,
    prediction_records,
    prepare,
)
from lifecycle_assets.serving.setup import (
    FEEDBACK_TOKEN_ENV,
    PREDICT_TOKEN_ENV,
    SERVING_DIR_ENV,
    ServingSetupError,
    packed_config_path,
    token_problem,
)
from lifecycle_assets.serving.shadow import shadow_follower, with_shadow_scores

logger = logging.getLogger("lifecycle.serving")

# How long a request waits for a first model's load in flight rather than being refused.
FIRST_LOAD_WAIT_S = 10.0
# Request ids answered by this worker, remembered to refuse a repeat.
REQUEST_ID_MEMORY = 200_000
NO_LOG_ENV = "LIFECYCLE_BENCHMARK_NO_LOG"
# Labels already recorded by this worker, remembered to answer repeats as duplicates.
LABEL_MEMORY = 200_000


def _any_later(requests: Sequence[PredictRequest], latest: dt.datetime) -> bool:
    for req in requests:
        try:
            if req.event_time is not None and req.event_time > latest:
                return True
        except OverflowError:  # no UTC form: `prepare` refuses it with the reason
            continue
    return False


class ServingRuntime:
    """One worker's serving state and request steps; `bentos/service.py` wraps it in HTTP."""

    def __init__(
        self,
        home: LifecycleHome,
        *,
        writer_id: str | None = None,
        feedback_token: str | None = None,
        predict_token: str | None = None,
        background_loads: bool = True,
        loader: Loader = load_version,
        check_interval_s: float = CHECK_INTERVAL_S,
        lookup_store: LookupStore | None = None,
        model: ModelSource | None = None,
    ) -> None:
        """`model`: where the served model comes from (default: the `production` alias of
        `home`, followed through the home's version fence, and its `shadow` alias beside
        it; a given `model`, such as a built Bento's, has no shadow)."""
        self.home = home
        self.check_interval_s = check_interval_s
        self.config = home.config()
        self.policy = self.config.serving
        self.validator = RequestValidator(self.config.problem)
        self.postprocess = PostProcessor(self.config.postprocessing)
        self.feedback_token = feedback_token or None
        self.predict_token = predict_token or None
        self.writer = LogWriter(
            home.logs,
            writer_id=writer_id or f"service-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            max_open=self.policy.max_open_segments,
        )
        self.request_index = (
            RequestIndex(home.logs) if self.policy.unknown_request_id == "reject" else None
        )
        self.shadow: AliasFollower | None = None
        self.log = BatchedLog(
            self.writer,
            flush_interval_s=self.policy.log_flush_interval_ms / 1000,
            fsync_interval_s=self.policy.log_fsync_interval_ms / 1000,
            on_written=self.request_index.add if self.request_index is not None else None,
            prepare=self._with_shadow_scores,
        )
        # request id → the label this worker recorded first (a different one is a conflict)
        self._labelled: OrderedDict[str, float] = OrderedDict()
        # request ids this worker answered (a repeat is refused: see `_refuse_repeated_ids`)
        self._answered: OrderedDict[str, None] = OrderedDict()
        self.label_conflicts = 0
        # (version, its training ranges): values beyond them are served and flagged
        self._ranges: tuple[str | None, dict[str, tuple[float, float]]] = (None, {})
        self.lookup_store = lookup_store or SqliteLookupStore(home.lookup)
        if model is None:
            # Workers of one service switch models together through the home's version fence.
            model = AliasFollower(
                home,
                self.config.problem,
                background=background_loads,
                loader=loader,
                fence=VersionFence.for_home(home.root),
            )
            self.shadow = shadow_follower(
                home, self.config.problem, background=background_loads, loader=loader
            )
        self.model: ModelSource = model
        # Start with the current production model in place, before the first request.
        self.model.start()
        if self.shadow is not None:
            self.shadow.start()
        self._clock_seen: Signature | tuple[()] = ()
        self._simulated_now: dt.datetime | None = None
        self._next_check = 0.0
        self.tick()

    @classmethod
    def from_environment(cls) -> ServingRuntime:
        """The home from `LIFECYCLE_HOME` (or the project default), the tokens from the env."""
        home = LifecycleHome(resolve_home())
        return cls._with_tokens(home, {})

    @classmethod
    def from_packed(
        cls, model_dir: Path, expected_digest: str, serving_dir: Path
    ) -> ServingRuntime:
        """A built Bento's runtime: the model packed in `model_dir` (its registered
        `expected_digest`), the config packed beside it (`PACKED_CONFIG`), and the service's
        own state — prediction log, lookup store, request index — under `serving_dir`, a
        plain directory (no registry, git or DVC: not a lifecycle home)."""
        packed_config = packed_config_path(model_dir)
        home = LifecycleHome(Path(serving_dir))
        try:
            home.root.mkdir(parents=True, exist_ok=True)
            write_atomic(home.config_path, packed_config.read_bytes())
        except OSError as err:
            raise ServingSetupError(
                f"cannot write the service's state under {serving_dir} ({err}): set "
                f"{SERVING_DIR_ENV} to a writable directory"
            ) from None
        config = home.config()
        model = PackedModel(
            Path(model_dir),
            config.problem,
            expected_digest=expected_digest,
            factories=config.training.model_factories,
        )
        return cls._with_tokens(home, {"model": model})

    @classmethod
    def _with_tokens(cls, home: LifecycleHome, options: dict[str, Any]) -> ServingRuntime:
        """The runtime with the tokens from the environment; refused when the config
        requires a token that is not set."""
        token = os.environ.get(FEEDBACK_TOKEN_ENV) or None
        predict_token = os.environ.get(PREDICT_TOKEN_ENV) or None
        problem = token_problem(home.config().serving, home.config_path)
        if problem is not None:
            raise ServingSetupError(problem)
        runtime = cls(home, feedback_token=token, predict_token=predict_token, **options)
        if os.environ.get(NO_LOG_ENV) == "1":  # benchmarks only: what does logging cost?
            logger.warning("%s=1: PREDICTIONS ARE NOT LOGGED (benchmark mode)", NO_LOG_ENV)
            runtime.log.close()
            runtime.log = NullLog()
        return runtime

    def tick(self) -> None:
        """Per request: at most every `check_interval_s`, look for alias and clock changes."""
        t = time.monotonic()
        if t < self._next_check:
            return
        self._next_check = t + self.check_interval_s
        self.model.check()
        if self.shadow is not None:
            self.shadow.check()
        self._read_clock()

    def _read_clock(self) -> None:
        """Pick up a move of the home's simulated clock (one `stat` when nothing changed)."""
        sig = signature(self.home.clock_path)
        if sig != self._clock_seen:
            try:
                self._simulated_now = now(self.home) if sig is not None else None
            except (OSError, ValueError, KeyError, TypeError) as err:
                logger.error(
                    "keeping the previous clock: cannot read %s: %s", self.home.clock_path, err
                )
            else:
                self._clock_seen = sig

    def now(self) -> dt.datetime:
        """The loop's clock (docs/architecture.md): the simulated time when the home has one."""
        return self._simulated_now or dt.datetime.now(dt.UTC)

    def time_window(self) -> TimeWindow:
        """The event times the data pipeline will accept, by the loop's clock."""
        now = self.now()
        data = self.config.data
        return TimeWindow(
            oldest=now - dt.timedelta(days=data.max_event_age_days),
            latest=time_horizon(now, self._simulated_now is not None, self.config),
        )

    def _model_ranges(self, served: Served) -> dict[str, tuple[float, float]]:
        """The training ranges of the model `served`, beyond which a value is flagged
        (cached per version)."""
        version, ranges = self._ranges
        if served.version != version:
            recorded = served.artifact.metadata.get("feature_ranges") if served.artifact else None
            ranges = self.validator.model_ranges(recorded)
            self._ranges = (served.version, ranges)
        return ranges

    def _serving(self) -> Served:
        """What answers now; refuses (503) when the alias names a model that is not loaded
        and verified — before the first model exists (no alias) requests are cold start."""
        served = self.model.served
        if served.artifact is None and self.model.alias_version is not None:
            self.model.wait(FIRST_LOAD_WAIT_S)  # a first model's load in flight
            served = self.model.served
            if served.artifact is None and self.model.alias_version is not None:
                raise RequestError(
                    f"no verified model is serving: production is "
                    f"{self.model.alias_version} ({self.model.last_failure or 'not loaded yet'})",
                    status=503,
                )
        return served

    def check_log(self) -> None:
        """503 instead of acknowledging what cannot be logged, past the configured backlog."""
        error = self.log.error
        if error is not None and self.log.backlog() >= self.policy.max_unlogged_records:
            raise RequestError(
                "the prediction log cannot be written; refusing new requests until it "
                "recovers (the service log says why)",
                status=503,
            )

    def predict(self, requests: Sequence[PredictRequest]) -> list[Prediction]:
        """Validate, score, post-process and log; the log line is written before returning.
        One client's batch: a refused request refuses the whole batch."""
        self.tick()
        self.check_log()
        served, window = self._serving(), self._window_for(requests)
        valid = prepare(
            requests, self.validator, self.now(), window=window, ranges=self._model_ranges(served)
        )
        self._refuse_repeated_ids(valid)
        answers = self._score_and_log(valid, served, refuse_batch=True)
        return [a for a in answers if isinstance(a, Prediction)]

    def predict_each(self, requests: Sequence[PredictRequest]) -> list[Prediction | RequestError]:
        """`predict` for requests that arrived apart, each from its own client, scored and
        logged together (`/predict` requests of one event-loop turn, `bentos/service.py`):
        each request gets its own answer, a `Prediction` or the `RequestError` it alone
        would have got, never a neighbour's. A request id repeated within the group is
        refused for the later arrival, as it would be had they come one after another."""
        try:
            self.tick()
            self.check_log()
        except RequestError as err:
            return [err] * len(requests)
        served, window = self._serving(), self._window_for(requests)
        ranges, now = self._model_ranges(served), self.now()
        answers: list[Prediction | RequestError | None] = [None] * len(requests)
        valid: list[ValidRequest] = []
        where: list[int] = []
        ids: set[str] = set()
        for i, request in enumerate(requests):
            try:
                (one,) = prepare([request], self.validator, now, window=window, ranges=ranges)
                self._refuse_repeated_ids([one], answering=ids)
            except RequestError as err:
                answers[i] = err
                continue
            ids.add(one.request_id)
            valid.append(one)
            where.append(i)
        for i, answer in zip(where, self._score_and_log(valid, served), strict=True):
            answers[i] = answer
        return [a for a in answers if a is not None]

    def _window_for(self, requests: Sequence[PredictRequest]) -> TimeWindow:
        window = self.time_window()
        if _any_later(requests, window.latest):
            # The loop's clock may have moved since the last tick (the demo sets the next
            # day, then sends its traffic at once): look again before refusing.
            self._read_clock()
            window = self.time_window()
        return window

    def _score_and_log(
        self, valid: Sequence[ValidRequest], served: Served, *, refuse_batch: bool = False
    ) -> list[Prediction | RequestError]:
        """Score the validated requests in one call, log them and answer each. A
        non-finite score under `serving.on_invalid_score: refuse` refuses its request
        (unlogged) — and with `refuse_batch`, the whole batch, as one client's batch is."""
        if not valid:
            return []
        if served.artifact is None:  # cold start: logged unscored, no decision
            self._remember_ids(valid)
            self.log.predictions(prediction_records(valid, None, None, None))
            return [
                Prediction(request_id=r.request_id, model_version=None, score=None, decision=None)
                for r in valid
            ]
        scored = self.postprocess.score(
            served.artifact, [r.features for r in valid], [r.entity_id for r in valid]
        )
        answers: list[Prediction | RequestError] = []
        kept: list[int] = []
        for i, row in enumerate(scored):
            if row.score is None and self.policy.on_invalid_score == "refuse":
                batch = f"requests[{i}]: " if refuse_batch and len(valid) > 1 else ""
                refusal = RequestError(
                    f"{batch}model {served.version} gave a non-finite score for these "
                    "features; refused (serving.on_invalid_score: refuse)",
                    status=422,
                )
                if refuse_batch:
                    raise refusal
                answers.append(refusal)
                continue
            kept.append(i)
            answers.append(
                Prediction(
                    request_id=valid[i].request_id,
                    model_version=served.version,
                    score=row.score,
                    probability=row.outcome.probability,
                    decision=row.outcome.decision,
                    rule=row.outcome.rule,
                )
            )
        answered = [valid[i] for i in kept]
        self._remember_ids(answered)
        records = prediction_records(
            answered,
            served.version,
            [scored[i].score for i in kept],
            [scored[i].outcome.decision for i in kept],
            [scored[i].outcome.rule for i in kept],
        )
        # Handed to the log writer thread; see `BatchedLog` for the loss window.
        self.log.predictions(records)
        return answers

    def _with_shadow_scores(self, records: list[PredictionRecord]) -> list[PredictionRecord]:
        """The log drain's step before encoding: the shadow's scores on the records."""
        if self.shadow is None:
            return records
        return with_shadow_scores(self.shadow, records)

    def _refuse_repeated_ids(
        self, valid: Sequence[ValidRequest], answering: Collection[str] = ()
    ) -> None:
        """409 for a request id this worker has already answered, or is answering in the
        same group (`answering`): logged twice, both rows would be quarantined by the
        pipeline (duplicate_request_id) and the first answer would lose its label.
        Remembered per worker, for the last `REQUEST_ID_MEMORY` ids."""
        for i, req in enumerate(valid):
            if req.request_id in self._answered or req.request_id in answering:
                where = f"requests[{i}]: " if len(valid) > 1 else ""
                raise RequestError(
                    f"{where}request_id {req.request_id!r} was already answered; send a new "
                    "id (or none: the service makes one)",
                    status=409,
                )

    def _remember_ids(self, valid: Sequence[ValidRequest]) -> None:
        for req in valid:
            self._answered[req.request_id] = None
        while len(self._answered) > REQUEST_ID_MEMORY:
            self._answered.popitem(last=False)

    def feedback(
        self, request: FeedbackRequest, authorization: str | None = None
    ) -> FeedbackResponse:
        """Record labels, filed and resolved by arrival at this service (the loop's clock
        stamps `received_at`), never by the client's `observed_time`, which must be
        plausible (the event-time window) and is kept as information.

        Idempotent: a repeat of the label this worker already recorded for a request id is
        answered as a duplicate and not written again. A *different* label for a recorded
        request id is a conflict: written (so the data pipeline counts it too), counted in
        the answer, and never chosen over the first arrival (docs/serving.md)."""
        self.check_feedback_auth(authorization)
        self.check_log()
        items = request.items()
        self.tick()
        self._read_clock()  # one `stat`: a label is filed under the day it arrives
        arrived = self.now()
        records = ground_truth_records(
            items, self.validator, arrived, received_at=arrived, window=self.time_window()
        )
        if self.request_index is not None:
            self.log.sync()  # this worker's own recent predictions are indexed first
            unknown = {r.request_id for r in records} - self.request_index.known(
                r.request_id for r in records
            )
            if unknown:
                raise RequestError(
                    f"unknown request_id {sorted(unknown)[0]!r} ({len(unknown)} unknown): "
                    "serving.unknown_request_id is `reject`",
                    status=404,
                )
        written = []
        fresh = duplicates = conflicts = 0
        seen_now: dict[str, float] = {}
        for rec in records:
            first = self._labelled.get(rec.request_id, seen_now.get(rec.request_id))
            if first is None:
                seen_now[rec.request_id] = rec.label
                fresh += 1
            elif first == rec.label:
                duplicates += 1
                continue
            else:
                conflicts += 1
            written.append(rec)
        if written:
            self.log.ground_truth(written)
            # Labels are few and each is worth a training row: written before the answer.
            self.log.sync()
            for request_id, label in seen_now.items():
                self._labelled[request_id] = label
            while len(self._labelled) > LABEL_MEMORY:
                self._labelled.popitem(last=False)
        if conflicts:
            self.label_conflicts += conflicts
            logger.warning("%d conflicting label(s): the first arrival is kept", conflicts)
        return FeedbackResponse(count=fresh, duplicates=duplicates, conflicts=conflicts)

    def check_predict_auth(self, authorization: str | None) -> None:
        """`serving.predict_auth: required` → a valid `Authorization: Bearer <token>`."""
        if self.policy.predict_auth == "required":
            if self.predict_token is None:
                raise RequestError("predictions are closed: no token is configured", status=503)
            check_bearer(authorization, self.predict_token)

    def check_feedback_auth(self, authorization: str | None) -> None:
        """`serving.feedback_auth: required` → a valid `Authorization: Bearer <token>`."""
        if self.policy.feedback_auth == "required":
            if self.feedback_token is None:
                raise RequestError("feedback is closed: no token is configured", status=503)
            check_bearer(authorization, self.feedback_token)

    def lookup(self, item_id: str) -> LookupResponse | None:
        """A scheduled item's precomputed answer, rescored online when the policy says so."""
        self.tick()
        entry = self.lookup_store.get(item_id)
        if entry is None:
            return None
        served = self.model.served
        policy = self.policy.lookup_rescore
        stale = entry.model_version != served.version
        rescore = served.artifact is not None and (
            (policy == "stale_or_missing" and (stale or entry.score is None))
            or (policy == "missing" and entry.score is None)
        )
        feats = entry.feature_dict() if rescore else None
        scored = self._rescore(served, entry.entity_id, feats)
        if scored is None or scored.score is None or served.artifact is None:
            return LookupResponse(
                scheduled_payment_id=entry.item_id,
                entity_id=entry.entity_id,
                scheduled_time=entry.scheduled_time,
                model_version=entry.model_version,
                score=entry.score,
                probability=entry.probability,
                decision=entry.decision,
                rule=entry.rule,
                computed_at=entry.computed_at,
                source="offline",
            )
        return LookupResponse(
            scheduled_payment_id=entry.item_id,
            entity_id=entry.entity_id,
            scheduled_time=entry.scheduled_time,
            model_version=served.version,
            score=scored.score,
            probability=scored.outcome.probability,
            decision=scored.outcome.decision,
            rule=scored.outcome.rule,
            computed_at=self.now().isoformat(),
            source="rescored",
        )

    def _rescore(
        self, served: Served, entity_id: str, feats: dict[str, Any] | None
    ) -> Scored | None:
        """A stored item scored by the serving model under the checks `/predict` applies
        (features within their domain, a finite score); None when it cannot be, and the
        stored answer stands."""
        if feats is None or served.artifact is None:
            return None
        if not self.validator.accepts(feats):
            return None
        (scored,) = self.postprocess.score(served.artifact, [feats], [entity_id])
        return scored

    def health(self, detailed: bool = False) -> Health:
        """The service's state; `detailed` (for callers holding the feedback token) adds the
        failures' causes, which may name files of the machine."""
        self.tick()
        served = self.model.served
        if detailed:
            error = self.model.last_error or (
                f"prediction log: {self.log.error}" if self.log.error else None
            )
        else:
            error = self.model.last_failure or (
                "the prediction log cannot be written" if self.log.error else None
            )
        ready, _ = self.readiness()
        shadow = self.shadow
        return Health(
            status="degraded" if error or not ready else "ok",
            model_version=served.version,
            alias_version=self.model.alias_version,
            error=error,
            ready=ready,
            log_backlog=self.log.backlog(),
            log_quarantined=self.writer.quarantined,
            label_conflicts=self.label_conflicts,
            shadow_version=shadow.served.version if shadow is not None else None,
            shadow_error=(
                None if shadow is None else shadow.last_error if detailed else shadow.last_failure
            ),
        )

    def readiness(self) -> tuple[bool, str]:
        """(ready, why): a verified model serves — or none exists yet (cold start: the
        alias names no version) — and the prediction log can be written."""
        served = self.model.served
        if self.log.error is not None:
            return False, "the prediction log cannot be written"
        if served.artifact is None and self.model.alias_version is not None:
            why = self.model.last_failure or "loading"
            return (
                False,
                f"production is {self.model.alias_version} but no verified model serves ({why})",
            )
        if served.artifact is None:
            return True, "cold start: no model yet, predictions are logged unscored"
        return True, f"serving {served.version}"

    def close(self) -> None:
        """Graceful shutdown: everything logged is fsynced before the worker exits."""
        self.log.close()
        self.lookup_store.close()
        if self.request_index is not None:
            self.request_index.close()
