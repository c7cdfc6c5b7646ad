"""Where a service worker's model comes from, and how a new one is checked before it serves.

- `AliasFollower` keeps the version the `production` alias of a lifecycle home points at: at
  most every `CHECK_INTERVAL_S`, a request `stat`s `registry/aliases.json` (written by atomic
  rename, so a new inode or mtime means a move); when the alias points at another version, a
  background thread loads it, verifies it against the config, warms it up with one prediction
  and only then swaps the reference. Requests never wait for a load, and a version that fails
  to load leaves the previous one serving (the error is logged and shown by the health
  endpoint). With several workers the swap goes through the home's version fence
  (`serving/fence.py`): responses switch only once every worker has the new version loaded, so
  they never go back to the old one. This is `bentoml serve` of the project on a home.
  The same class follows the `shadow` alias (`drop_failed`, no fence): the challenger scored
  beside production (`serving/shadow.py`); a shadow version that fails to load or to score
  is dropped rather than kept, until the alias names another.
- `PackedModel` is the one model a built Bento packs (`serving/bento.py`): loaded from the
  Bento's model store, checked against the digest recorded at registration, verified and
  warmed up before the first request; it never changes. A new version deploys as its own Bento.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lifecycle_assets.config import ProblemConfig
from lifecycle_assets.files import Signature, signature
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.registry.registry import alias_version, load_version, registry_dir
from lifecycle_assets.serving.fence import FENCE_TIMEOUT_S, VersionFence
from lifecycle_assets.training.artifact import (
    ArtifactError,
    IntegrityError,
    ModelArtifact,
    load_artifact,
)
from lifecycle_assets.training.verify import FeaturesError, verify

logger = logging.getLogger("lifecycle.serving")

CHECK_INTERVAL_S = 0.5
RETRY_AFTER_S = 5.0

Loader = Callable[[LifecycleHome, str, str], ModelArtifact]  # load_version's shape


@dataclass(frozen=True)
class Served:
    """The model answering requests now; both None before the first model (cold start)."""

    version: str | None
    artifact: ModelArtifact | None


class ModelSource(Protocol):
    """What the runtime asks of where its model comes from."""

    # the version that should serve (the alias's, or the packed one); None: no model yet
    alias_version: str | None
    last_error: str | None  # the last load failure, with its cause (may name files)
    last_failure: str | None  # the same in words that name no file of the machine

    @property
    def served(self) -> Served: ...

    def start(self) -> None: ...

    def check(self) -> None: ...

    def wait(self, timeout: float | None = None) -> None: ...


def failure_kind(err: BaseException) -> str:
    """What kind of failure a model load was, in words that name no file of the machine."""
    if isinstance(err, IntegrityError):
        return "integrity check failed (the artifact or its registry record was changed)"
    if isinstance(err, FeaturesError):
        return "trained on other features than this service's config serves"
    if isinstance(err, ArtifactError):
        return "the artifact is invalid"
    return f"load failed ({type(err).__name__})"


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
        fence: VersionFence | None = None,
        drop_failed: bool = False,
    ) -> None:
        """`drop_failed`: a version that fails to load serves nothing (`drop`), instead of
        the previous version serving on while the load is retried."""
        self.home = home
        self.problem = problem
        self.alias = alias
        self.background = background
        self._loader = loader
        # With a fence, a loaded version waits in `_loaded` until the fence names it.
        self.fence = fence
        self._loaded: dict[str, ModelArtifact] = {}
        self._loaded_at: dict[str, float] = {}
        self._check_lock = threading.Lock()
        self._aliases_path = registry_dir(home) / "aliases.json"
        self._lock = threading.Lock()
        self._served = Served(None, None)
        self._seen: Signature | tuple[()] = ()  # () = never looked
        self._loading: threading.Thread | None = None
        self._retry_at: dict[str, float] = {}
        self.alias_version: str | None = None
        self.last_error: str | None = None
        self.last_failure: str | None = None  # `last_error` as anyone may read it
        self.drop_failed = drop_failed
        self.dropped: str | None = None  # the version dropped (`drop`): not loaded again

    @property
    def served(self) -> Served:
        if self.fence is not None:
            self._follow_fence()
        return self._served

    def start(self) -> None:
        """Before the first request: load the alias's version; with a fence, serve what the
        fence names (a worker started mid-switch loads that one too), or set the fence."""
        self.check()
        self.wait()
        if self.fence is None:
            return
        if self.background:
            # A worker that gets no requests still follows the alias and reports ready, or it
            # would hold the other workers' switch back until the fence times out.
            threading.Thread(target=self._watch, name="alias-watcher", daemon=True).start()
        exists, version = self.fence.current()
        if not exists:
            if self.alias_version in self._loaded:
                self.fence.publish(self.alias_version)
        elif version is not None and version not in self._loaded:
            try:
                artifact = self._loader(self.home, self.problem.name, version)
                verify(artifact, self.problem)
            except Exception:  # serve nothing from the fence; the alias version follows
                logger.exception("cannot load the fenced version %s", version)
            else:
                self._keep(version, artifact)
        self._follow_fence()

    def _watch(self) -> None:
        while True:
            time.sleep(CHECK_INTERVAL_S)
            try:
                self.check()
            except Exception:  # never let the watcher die; the request path checks too
                logger.exception("alias watcher")

    def _follow_fence(self) -> None:
        if self.fence is None:
            return
        exists, version = self.fence.current()
        if not exists or version == self._served.version:
            return
        if version is None:
            self._served = Served(None, None)
            return
        artifact = self._loaded.get(version)
        if artifact is None:
            return  # not loaded here yet (the fence timed out on this worker): keep serving
        with self._lock:
            previous = self._served.version
            self._served = Served(version, artifact)
        logger.info("now serving %s:%s (was %s)", self.problem.name, version, previous)

    def _keep(self, version: str, artifact: ModelArtifact) -> None:
        """Hold a loaded, verified version and mark this worker ready for it; a version freed
        to make room is no longer marked ready (the fence counts what a worker holds)."""
        with self._lock:
            self._loaded[version] = artifact
            self._loaded_at[version] = time.monotonic()
            # keep what serves, what the fence names and the newest: older ones are freed
            keep = {self._served.version, self.alias_version, version}
            freed = [v for v in self._loaded if v not in keep]
            for old in freed:
                self._loaded.pop(old)
                self._loaded_at.pop(old, None)
        if self.fence is not None:
            for old in freed:
                self.fence.unmark_ready(old)
            self.fence.mark_ready(version)

    def _advance(self, version: str) -> None:
        """Move the fence to `version` once every live worker has it loaded."""
        if self.fence is None:
            return
        exists, current = self.fence.current()
        if exists and current == version:
            return
        ready = self.fence.ready_count(version)
        waited = time.monotonic() - self._loaded_at.get(version, time.monotonic())
        if ready >= self.fence.workers or waited >= FENCE_TIMEOUT_S:
            if ready < self.fence.workers:
                logger.warning(
                    "switching to %s with %d of %d workers ready after %.0f s",
                    version, ready, self.fence.workers, waited,
                )  # fmt: skip
            self.fence.publish(version)

    def check(self) -> None:
        """Pick up an alias move: cheap when nothing changed (one `stat`)."""
        # the watcher thread and requests both call this: one at a time, never waiting
        if not self._check_lock.acquire(blocking=False):
            return
        try:
            self._check()
        finally:
            self._check_lock.release()

    def _check(self) -> None:
        if self.fence is not None and self.alias_version in self._loaded:
            self._advance(self.alias_version)  # type: ignore[arg-type]
        sig = signature(self._aliases_path)
        if sig == self._seen or self._loading is not None:
            return
        try:
            version = alias_version(self.home, self.alias) if sig is not None else None
        except (OSError, ValueError, KeyError, TypeError) as err:
            self._fail(
                None,
                f"cannot read {self._aliases_path}: {err}",
                "cannot read the registry's aliases",
            )
            return
        self.alias_version = version
        if version is not None and version == self.dropped:
            self._seen = sig  # dropped: stays so until the alias names another version
            return
        if version == self._served.version or (self.fence is not None and version in self._loaded):
            self._seen = sig
            self.last_error = self.last_failure = None
            if self.fence is not None and version is not None:
                self._advance(version)
            return
        if version is None:
            if self.alias == "production":
                logger.warning("alias 'production' was cleared: serving without a model")
            else:  # a shadow settled: production answers as before, without its scores
                logger.info("alias %r was cleared: no %s model now", self.alias, self.alias)
            self._served = Served(None, None)
            if self.fence is not None:
                self.fence.publish(None)
            self._seen = sig
            self.last_error = self.last_failure = None
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
            if self.drop_failed:
                self.drop(version, f"cannot load {version}: {failure_kind(err)}", repr(err))
                return
            self._fail(
                version,
                f"cannot load {self.problem.name}:{version}: {err}",
                f"cannot load {version}: {failure_kind(err)}",
            )
            logger.exception("keeping %s: failed to load %s", self._served.version, version)
        else:
            if self.fence is not None:
                self._keep(version, artifact)
                with self._lock:
                    self._seen = sig
                    self._retry_at.pop(version, None)
                    self.last_error = self.last_failure = None
                self._advance(version)
                return
            with self._lock:
                previous = self._served.version
                self._served = Served(version, artifact)
                self._seen = sig
                self._retry_at.pop(version, None)
                self.last_error = self.last_failure = None
                self.dropped = None
            logger.info("now serving %s:%s (was %s)", self.problem.name, version, previous)
        finally:
            self._loading = None

    def drop(self, version: str | None, public: str, cause: str) -> None:
        """Serve nothing from this alias until it names another version than `version`
        (`public` names the version and the kind of failure, `cause` may name files)."""
        with self._lock:
            if version is None or version not in (self._served.version, self.alias_version):
                return  # the alias moved on since: nothing of `version` to drop
            self._served = Served(None, None)
            self.dropped = version
            self.last_failure = public
            self.last_error = f"{public}: {cause}"
        logger.error("%s alias: dropped %s: %s (%s)", self.alias, version, public, cause)

    def _fail(self, version: str | None, message: str, public: str) -> None:
        """`message` (with paths and causes) goes to the log and to `/healthz` for callers
        holding the feedback token; `public` names the version and the kind of failure."""
        with self._lock:
            self.last_error = message
            self.last_failure = public
            if version is not None:
                self._retry_at[version] = time.monotonic() + RETRY_AFTER_S
        if version is None:
            logger.error(message)


class PackedModel:
    """The one model a built Bento packs: loaded, checked against the digest recorded when it
    was registered (`expected_digest`), verified against the packed config and warmed up
    once, at `start`, before the first request. A model that fails any of these stops the
    service from starting (there is no previous model to keep serving). It never changes."""

    def __init__(
        self,
        directory: Path,
        problem: ProblemConfig,
        *,
        expected_digest: str,
        factories: dict[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.problem = problem
        self.expected_digest = expected_digest
        self.factories = factories or {}
        self._served = Served(None, None)
        self.alias_version: str | None = None
        self.last_error: str | None = None
        self.last_failure: str | None = None

    @property
    def served(self) -> Served:
        return self._served

    def start(self) -> None:
        artifact = load_artifact(
            self.directory, expected_digest=self.expected_digest, factories=self.factories
        )
        verify(artifact, self.problem)
        self._served = Served(artifact.version, artifact)
        self.alias_version = artifact.version
        logger.info("serving the packed model %s:%s", self.problem.name, artifact.version)

    def check(self) -> None:
        """Nothing to follow: a Bento serves the model it packs."""

    def wait(self, timeout: float | None = None) -> None:
        """Nothing loads after `start`."""
