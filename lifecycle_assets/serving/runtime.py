"""What one service worker holds and does, outside BentoML: the production model that follows
its registry alias, the prediction log writer, and the per-request steps (validate → score →
post-process → log).

The model follows the `production` alias in the home's registry (DESIGN §4): at most every
`CHECK_INTERVAL_S`, a request `stat`s `registry/aliases.json` (written by atomic rename, so a
new inode or mtime means a move); when the alias points at another version, a background
thread loads it, verifies it against the config, warms it up with one prediction and only then
swaps the reference. Requests never wait for a load, and a version that fails to load leaves
the previous one serving (the error is logged and shown by the health endpoint).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lifecycle_assets.config import ProblemConfig
from lifecycle_assets.home import LifecycleHome, now, resolve_home
from lifecycle_assets.records import LogWriter
from lifecycle_assets.registry.registry import alias_version, load_version, registry_dir
from lifecycle_assets.serving.requests import (
    FeedbackRequest,
    Health,
    Prediction,
    PredictRequest,
    RequestValidator,
    check_bearer,
    ground_truth_records,
    prediction_records,
    prepare,
)
from lifecycle_assets.training.artifact import ArtifactError, ModelArtifact

logger = logging.getLogger("lifecycle.serving")

CHECK_INTERVAL_S = 0.5
RETRY_AFTER_S = 5.0
FEEDBACK_TOKEN_ENV = "LIFECYCLE_FEEDBACK_TOKEN"

Loader = Callable[[LifecycleHome, str, str], ModelArtifact]  # load_version's shape
Signature = tuple[int, int, int] | None


def _signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class Served:
    """The model answering requests now; both None before the first model (cold start)."""

    version: str | None
    artifact: ModelArtifact | None


def verify(artifact: ModelArtifact, problem: ProblemConfig) -> None:
    """Refuse a model that cannot answer this config's requests; warm it up once."""
    pp = artifact.preprocessor
    if pp.numeric != tuple(problem.numeric_features) or pp.categorical != tuple(
        problem.categorical_features
    ):
        raise ArtifactError(
            f"model {artifact.version} was trained on features {[*pp.numeric, *pp.categorical]}"
            f", the config serves {list(problem.features)}"
        )
    row: dict[str, float | str] = dict(zip(pp.numeric, pp.means, strict=True))
    row.update({c: "" for c in pp.categorical})  # the out-of-vocabulary bucket
    scores = artifact.score_rows([row])
    artifact.decide(scores)
    if scores.shape != (1,) or not math.isfinite(float(scores[0])):
        raise ArtifactError(f"model {artifact.version} gives a non-finite warm-up score")


class AliasFollower:
    """Keeps the artifact the registry alias points at; see the module docstring."""

    def __init__(
        self,
        home: LifecycleHome,
        problem: ProblemConfig,
        *,
        alias: str = "production",
        background: bool = True,
        loader: Loader = load_version,
    ) -> None:
        self.home = home
        self.problem = problem
        self.alias = alias
        self.background = background
        self._loader = loader
        self._aliases_path = registry_dir(home) / "aliases.json"
        self._lock = threading.Lock()
        self._served = Served(None, None)
        self._seen: Signature | tuple[()] = ()  # () = never looked
        self._loading: threading.Thread | None = None
        self._retry_at: dict[str, float] = {}
        self.alias_version: str | None = None
        self.last_error: str | None = None

    @property
    def served(self) -> Served:
        return self._served

    def check(self) -> None:
        """Pick up an alias move: cheap when nothing changed (one `stat`)."""
        sig = _signature(self._aliases_path)
        if sig == self._seen or self._loading is not None:
            return
        try:
            version = alias_version(self.home, self.alias) if sig is not None else None
        except (OSError, ValueError, KeyError, TypeError) as err:
            self._fail(None, f"cannot read {self._aliases_path}: {err}")
            return
        self.alias_version = version
        if version == self._served.version:
            self._seen = sig
            self.last_error = None
            return
        if version is None:
            logger.warning("alias %r was cleared: serving without a model", self.alias)
            self._served = Served(None, None)
            self._seen = sig
            self.last_error = None
            return
        if time.monotonic() < self._retry_at.get(version, 0.0):
            return
        if self.background:
            thread = threading.Thread(
                target=self._load, args=(version, sig), name="model-loader", daemon=True
            )
            self._loading = thread
            thread.start()
        else:
            self._load(version, sig)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a load in flight (for tests and start-up)."""
        thread = self._loading
        if thread is not None:
            thread.join(timeout)

    def _load(self, version: str, sig: Signature) -> None:
        try:
            artifact = self._loader(self.home, self.problem.name, version)
            verify(artifact, self.problem)
        except Exception as err:  # any failure keeps the old model serving; logged, shown
            self._fail(version, f"cannot load {self.problem.name}:{version}: {err}")
            logger.exception("keeping %s: failed to load %s", self._served.version, version)
        else:
            with self._lock:
                previous = self._served.version
                self._served = Served(version, artifact)
                self._seen = sig
                self._retry_at.pop(version, None)
                self.last_error = None
            logger.info("now serving %s:%s (was %s)", self.problem.name, version, previous)
        finally:
            self._loading = None

    def _fail(self, version: str | None, message: str) -> None:
        with self._lock:
            self.last_error = message
            if version is not None:
                self._retry_at[version] = time.monotonic() + RETRY_AFTER_S
        if version is None:
            logger.error(message)


class ServingRuntime:
    """One worker's serving state and request steps; `bentos/service.py` wraps it in HTTP."""

    def __init__(
        self,
        home: LifecycleHome,
        *,
        writer_id: str | None = None,
        feedback_token: str | None = None,
        background_loads: bool = True,
        loader: Loader = load_version,
        check_interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self.home = home
        self.check_interval_s = check_interval_s
        self.config = home.config()
        self.validator = RequestValidator(self.config.problem)
        self.feedback_token = feedback_token or None
        self.writer = LogWriter(
            home.logs, writer_id=writer_id or f"service-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        self.model = AliasFollower(
            home, self.config.problem, background=background_loads, loader=loader
        )
        # Start with the current production model in place, before the first request.
        self.model.check()
        self.model.wait()
        self._clock_seen: Signature | tuple[()] = ()
        self._simulated_now: dt.datetime | None = None
        self._next_check = 0.0
        self.tick()

    @classmethod
    def from_environment(cls) -> ServingRuntime:
        """The home from `LIFECYCLE_HOME` (or the project default), the token from the env."""
        token = os.environ.get(FEEDBACK_TOKEN_ENV) or None
        if token is None:
            logger.warning(
                "%s is not set: /feedback takes labels without a token", FEEDBACK_TOKEN_ENV
            )
        return cls(LifecycleHome(resolve_home()), feedback_token=token)

    def tick(self) -> None:
        """Per request: at most every `check_interval_s`, look for alias and clock changes."""
        t = time.monotonic()
        if t < self._next_check:
            return
        self._next_check = t + self.check_interval_s
        self.model.check()
        sig = _signature(self.home.clock_path)
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
        """The loop's clock (DESIGN §3): the simulated time when the home has one."""
        return self._simulated_now or dt.datetime.now(dt.UTC)

    def predict(self, requests: Sequence[PredictRequest]) -> list[Prediction]:
        """Validate, score, post-process and log; the log line is written before returning."""
        self.tick()
        valid = prepare(requests, self.validator, self.now())
        served = self.model.served
        scores: list[float] | None = None
        decisions: list[str] | None = None
        if served.artifact is not None:
            raw = served.artifact.score_rows([r.features for r in valid])
            decisions = served.artifact.decide(raw)
            scores = raw.tolist()
        records = prediction_records(valid, served.version, scores, decisions)
        self.writer.write_predictions(records)
        self.writer.flush(durable=False)
        return [
            Prediction(
                request_id=r.request_id,
                model_version=r.model_version,
                score=r.score,
                decision=r.decision,
            )
            for r in records
        ]

    def feedback(self, request: FeedbackRequest, authorization: str | None = None) -> int:
        check_bearer(authorization, self.feedback_token)
        records = ground_truth_records(request.items(), self.validator, self.now())
        self.writer.write_ground_truth(records)
        self.writer.flush(durable=False)
        return len(records)

    def health(self) -> Health:
        self.tick()
        served = self.model.served
        error = self.model.last_error
        return Health(
            status="degraded" if error else "ok",
            model_version=served.version,
            alias_version=self.model.alias_version,
            error=error,
        )

    def close(self) -> None:
        """Graceful shutdown: everything logged is fsynced before the worker exits."""
        self.writer.close()
