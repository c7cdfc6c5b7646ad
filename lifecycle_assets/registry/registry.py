"""The model registry (docs/architecture.md): numbered immutable versions and audited aliases.

The source of truth is the home's git repo: `registry/versions.json` (every version and its
lineage), `registry/aliases.json` (where `production`, `candidate` and `shadow` point now) and
`registry/history.jsonl` (every alias move with actor, time, reason, from and to). Each
registration and each move is a git commit, so `git log` is the audit trail.

Each version's files live once, in the registry's model store in the home
(`<home>/models/NAME/vN/`: the artifact, what was saved beside it, and the config it was
registered under); every reader loads them through `load_version`, checked against the digest
the registration recorded. A version's stage (`registered`, `production`, `archived`) is
derived from the alias history (`Registry.stage`). The model assets' daily values are
`ModelReference`s to a version (`Registry.reference`), resolved here (`load_reference`), not
copies of its files. BentoML gets a copy only when a Bento is built (`serving/bento.py`).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lifecycle_assets.config import PACKED_CONFIG
from lifecycle_assets.errors import LifecycleError, contract_problem
from lifecycle_assets.files import replace_tree, write_atomic
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.storage import ModelReference
from lifecycle_assets.training.artifact import (
    MANIFEST,
    WEIGHTS,
    IntegrityError,
    ModelArtifact,
    artifact_digest,
    load_artifact,
    read_manifest,
    sha256_file,
)
from lifecycle_assets.versioning.repo import VersionedRepo

VERSION_RE = re.compile(r"^v[1-9][0-9]{0,8}$")
# `shadow`: a challenger that passed the offline gate, scored by the service beside production
# (which alone answers) until its shadow gate decides (`release.shadow_days`).
ALIASES = ("production", "candidate", "shadow")
APPROVAL_STATES = ("awaiting_approval", "approved", "released")
# A version's stage (`Registry.stage`): never in production, serving now, or served and
# since replaced.
REGISTERED, PRODUCTION, ARCHIVED = "registered", "production", "archived"


class RegistryError(LifecycleError, RuntimeError):
    """A registry operation that cannot be done; the message names what and why."""


class HistoryError(RegistryError, IntegrityError):
    """A version whose registration the registry's git history does not confirm."""


class ModelReferenceError(RegistryError):
    """A stored model reference the registry cannot resolve to the version it names: the
    version is not registered, or its weights are not the ones the reference recorded."""


def validate_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise RegistryError(f"invalid model version {version!r}: expected v<number>, e.g. v3")
    return version


def _write_json_atomic(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", durable=True)


def registry_dir(home: LifecycleHome) -> Path:
    return home.repo / "registry"


def read_aliases(home: LifecycleHome) -> dict[str, dict[str, Any]]:
    path = registry_dir(home) / "aliases.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def alias_version(home: LifecycleHome, alias: str) -> str | None:
    entry = read_aliases(home).get(alias)
    return entry["version"] if entry else None


# The least step between two alias moves' times (see `Registry.move_alias`).
MOVE_TICK = dt.timedelta(milliseconds=1)


def bento_model_tag(model_name: str, version: str) -> str:
    return f"{model_name}:{validate_version(version)}"


def model_path(home: LifecycleHome, model_name: str, version: str) -> Path:
    """Where the registry's model store keeps a registered version's files
    (`<home>/models/NAME/vN/`); refused when the store does not hold it."""
    path = _store_path(home, model_name, version)
    if not (path / MANIFEST).is_file():
        raise RegistryError(
            f"model {model_name}:{version} is not in the registry's model store of {home.root} "
            f"(`lifecycle models restore {version}` brings it back from the DVC remote)"
        )
    return path


def stored_weights_hash(home: LifecycleHome, model_name: str, version: str) -> str:
    """The sha256 of the weights file the registry's model store holds for a version."""
    return sha256_file(model_path(home, model_name, version) / WEIGHTS)


def _store_path(home: LifecycleHome, model_name: str, version: str) -> Path:
    if not model_name.strip(".") or "/" in model_name:
        raise RegistryError(f"invalid model name {model_name!r}: not a folder name")
    return home.models / model_name / validate_version(version)


def read_versions(home: LifecycleHome) -> dict[str, dict[str, Any]]:
    path = registry_dir(home) / "versions.json"
    return json.loads(path.read_text()) if path.is_file() else {}


VERSIONS_FILE = "registry/versions.json"


def registration_tag(version: str) -> str:
    """The git tag of the commit that registered `version`: its record, immutable."""
    return f"registry/{validate_version(version)}"


def recorded_digest(home: LifecycleHome, version: str) -> str:
    """The artifact digest (weights + manifest) recorded when `version` was registered,
    read from the registry's git history (the registration tag; for versions registered
    before those tags, the loop's `model/vN` tag), never from the work tree alone: a
    `versions.json` rewritten to match a changed artifact is refused, not trusted."""
    validate_version(version)
    history = VersionedRepo.of(home)
    for tag in (registration_tag(version), f"model/{version}"):
        text = history.file_at(tag, VERSIONS_FILE)
        if text is not None:
            break
    else:
        raise HistoryError(
            f"model version {version} is not in the registry's history (no tag "
            f"{registration_tag(version)}); it cannot be verified and will not be loaded"
        )
    entry = json.loads(text).get(version) or {}
    digest = entry.get("artifact_sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        raise HistoryError(
            f"model version {version} has no recorded artifact digest; it cannot be verified "
            "and will not be loaded (register it again)"
        )
    current = read_versions(home).get(version) or {}
    if current.get("artifact_sha256") != digest:
        raise HistoryError(
            f"{VERSIONS_FILE} disagrees with its history for {version} (tag {tag}): the work "
            "tree was changed after registration; refused"
        )
    return digest


def _user_families(home: LifecycleHome) -> dict[str, str]:
    """The home config's user model families (none for a home without a config)."""
    return home.config().training.model_factories if home.config_path.is_file() else {}


def load_version(home: LifecycleHome, model_name: str, version: str) -> ModelArtifact:
    """A registered version, verified against the registry's digest of weights + manifest:
    a file changed in the model store after registration is refused, never served."""
    artifact = load_artifact(
        model_path(home, model_name, version),
        expected_digest=recorded_digest(home, version),
        factories=_user_families(home),
    )
    if artifact.version != version:
        raise RegistryError(f"artifact in the store for {version} says it is {artifact.version}")
    return artifact


def load_reference(home: LifecycleHome, ref: ModelReference, where: str) -> ModelArtifact:
    """The registered version a stored model reference names (`where`: the asset and its
    partition): the reference's weights hash must be the one the version was registered with,
    and `load_version` checks the store's files against the registration's digest (weights
    included), so the files read are the ones the reference recorded, hashed once. Refused
    with one line naming `where` and the version when the registry does not hold the version
    or the weights do not match."""
    try:
        registered = str(Registry(home, ref.model).require(ref.version)["weights_sha256"])
        if not hmac.compare_digest(registered, ref.weights_sha256):
            raise IntegrityError(
                f"the registered weights (sha256 {registered[:12]}…) are not the ones the "
                f"reference recorded ({ref.weights_sha256[:12]}…)"
            )
        return load_version(home, ref.model, ref.version)
    except (LifecycleError, OSError) as err:
        raise ModelReferenceError(
            f"{where}: the stored reference to {ref.model}:{ref.version} is refused: {err}"
        ) from err


def verify_versions(
    home: LifecycleHome, model_name: str, versions: list[str] | None = None
) -> list[dict[str, Any]]:
    """Each version (default: every one the work tree or the history names) loaded and
    checked against its registration in history: `{"version", "ok", "reason"}`."""
    if versions is None:
        tagged = [t.removeprefix("registry/") for t in _tags(home, "registry/")]
        names = set(read_versions(home)) | {v for v in tagged if VERSION_RE.match(v)}
        versions = sorted(names, key=lambda v: int(v[1:]))
    out = []
    for version in versions:
        try:
            load_version(home, model_name, version)
        except (LifecycleError, OSError, ValueError) as err:
            out.append({"version": version, "ok": False, "reason": str(err)})
        else:
            out.append({"version": version, "ok": True, "reason": "matches its registration"})
    return out


def _tags(home: LifecycleHome, prefix: str) -> list[str]:
    return VersionedRepo.of(home).tags(prefix) if (home.repo / ".git").is_dir() else []


class RegistryEntry(BaseModel):
    """A registered version's entry in `versions.json`: its digests (what every load verifies
    against) and its lineage, typed; further fields (losses, device details, training params)
    ride along. Checked before an entry is written, so nothing untyped reaches the registry's
    history."""

    model_config = ConfigDict(extra="allow")

    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: dt.datetime | None = None
    day: dt.date | None = None
    train_rows: int | None = Field(None, ge=0)
    train_split_tag: str | None = None
    code_commit: str | None = None

    @classmethod
    def checked(cls, entry: dict[str, Any]) -> dict[str, Any]:
        """`entry` itself when it meets the contract; else a RegistryError naming the field."""
        problem = contract_problem(cls, entry, "registry entry")
        if problem:
            raise RegistryError(problem)
        return entry


class Registry:
    """Registry operations on one home. Callers commit through `commit_paths` (see assets)."""

    def __init__(self, home: LifecycleHome, model_name: str) -> None:
        self.home = home
        self.model_name = model_name
        self.dir = registry_dir(home)

    # --- reads -----------------------------------------------------------------------------

    def versions(self) -> dict[str, dict[str, Any]]:
        return read_versions(self.home)

    def aliases(self) -> dict[str, dict[str, Any]]:
        return read_aliases(self.home)

    def alias(self, alias: str) -> str | None:
        return alias_version(self.home, alias)

    def history(self) -> list[dict[str, Any]]:
        """Completed alias moves. A move killed between its two writes (history line, then
        aliases.json) left a pending last line that aliases.json does not show: not a move."""
        return _completed(_history_lines(self.dir / "history.jsonl"), self.aliases())

    def served_at(self, when: dt.datetime, alias: str = "production") -> str | None:
        """The version the alias pointed at, at time `when` (by the loop's clock)."""
        current = None
        for event in self.history():
            if event["alias"] == alias and dt.datetime.fromisoformat(event["time"]) <= when:
                current = event["to"]
        return current

    def load(self, version: str) -> ModelArtifact:
        return load_version(self.home, self.model_name, validate_version(version))

    def reference(self, version: str) -> ModelReference:
        """What a model asset stores for a registered version: its name, its version and the
        weights hash its registration recorded; the files stay in the model store."""
        return ModelReference(self.model_name, version, self.require(version)["weights_sha256"])

    def require(self, version: str) -> dict[str, Any]:
        """The registered record of `version`, or a clear error naming the known versions."""
        validate_version(version)
        versions = self.versions()
        if version not in versions:
            known = ", ".join(sorted(versions, key=lambda v: int(v[1:]))) or "none yet"
            raise RegistryError(f"no model version {version} in the registry (known: {known})")
        return versions[version]

    def trained_from(self, inputs: str) -> str | None:
        """The registered version trained from these inputs (`lineage.training_inputs`), if
        any: the day's challenger registered by a run that failed after it (a push to an
        unreachable remote, a kill), which a rerun takes instead of registering the same model
        a second time. Versions registered before the digest was recorded match nothing."""
        found = [v for v, e in self.versions().items() if e.get("training_inputs") == inputs]
        return min(found, key=lambda v: int(v[1:])) if found else None

    def stages(self) -> dict[str, str]:
        """Each registered version's stage: `production` while the alias names it,
        `archived` once it served and was replaced, else `registered`. Derived from the
        aliases and their history (read once), never stored apart."""
        production = self.alias("production")
        promoted = {e["to"] for e in self.history() if e["alias"] == "production"}
        return {
            v: PRODUCTION if v == production else ARCHIVED if v in promoted else REGISTERED
            for v in self.versions()
        }

    def stage(self, version: str) -> str:
        """One version's stage (`stages`); `registered` for one the registry does not hold."""
        return self.stages().get(validate_version(version), REGISTERED)

    def copy_registered(self, version: str, dest: Path) -> ModelArtifact:
        """The files `version` was registered with (the artifact and what was saved beside it,
        such as its model card), copied into `dest` from the registry's model store
        (restored there from the DVC remote first when missing), and its artifact, verified
        against the digest its registration recorded."""
        self.restore(version)
        artifact = self.load(version)
        dest.mkdir(parents=True)
        for src in sorted(model_path(self.home, self.model_name, version).iterdir()):
            # the packed config is the store's, kept beside the files for a Bento
            if src.is_file() and src.name != PACKED_CONFIG:
                shutil.copy2(src, dest / src.name)
        return artifact

    def approvals(self) -> dict[str, dict[str, Any]]:
        """Release state per version: awaiting_approval → approved → released."""
        path = self.dir / "approvals.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def approval(self, version: str) -> dict[str, Any] | None:
        return self.approvals().get(validate_version(version))

    # --- writes ----------------------------------------------------------------------------

    def next_version(self) -> str:
        numbers = [int(v[1:]) for v in self.versions()]
        return f"v{max(numbers, default=0) + 1}"

    def register(self, artifact_dir: Path, info: dict[str, Any]) -> str:
        """Record an artifact (already saved with its version) and keep its files in the
        registry's model store."""
        manifest = read_manifest(artifact_dir)
        version = validate_version(manifest["version"])
        # Checked here, once: everything that loads a registered version later compares the
        # store's files with this digest. With the home's user families: a version of a
        # family the config registers loads here as it will at serving.
        load_artifact(artifact_dir, factories=_user_families(self.home))
        digest = artifact_digest(artifact_dir)
        versions = self.versions()
        if version in versions:
            if versions[version].get("artifact_sha256") != digest:
                raise RegistryError(f"{version} is already registered with a different artifact")
            return version
        # Checked before anything is stored or written: a bad entry registers nothing.
        entry = RegistryEntry.checked(
            {"weights_sha256": manifest["weights_sha256"], "artifact_sha256": digest, **info}
        )
        self._store(artifact_dir, version)
        versions[version] = entry
        history = VersionedRepo.of(self.home)
        history.ensure_git()
        _write_json_atomic(self.dir / "versions.json", versions)
        # The registration's own commit and tag: what every later load verifies against.
        history.record(
            f"registry: register {self.model_name}:{version} (artifact {digest[:12]})",
            [VERSIONS_FILE],
            registration_tag(version),
        )
        return version

    def _store(self, artifact_dir: Path, version: str) -> None:
        """Put an artifact's files into the registry's model store as `version`, with the
        config it is registered under (`PACKED_CONFIG`: a Bento built from it serves it with
        no lifecycle home, `serving/bento.py`). Written beside the target and swapped in, so
        a reader finds the whole version or none."""
        target = _store_path(self.home, self.model_name, version)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        try:
            for src in sorted(Path(artifact_dir).iterdir()):
                if src.is_file():
                    shutil.copy2(src, staging / src.name)
            if self.home.config_path.is_file():
                shutil.copy2(self.home.config_path, staging / PACKED_CONFIG)
            replace_tree(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def restore(self, version: str) -> bool:
        """Bring a registered version into the registry's model store from the DVC remote
        (the `models/candidate` output at its `model/vN` tag), checked against the digest its
        registration recorded in git: what a fresh node, with only a clone of the registry
        repo and the remote, needs to serve or validate it. False when the store already
        holds it."""
        self.require(version)
        if (_store_path(self.home, self.model_name, version) / MANIFEST).is_file():
            return False
        digest = recorded_digest(self.home, version)
        with tempfile.TemporaryDirectory(prefix=".restore-", dir=self.home.root) as tmp:
            staged = Path(tmp) / version
            VersionedRepo.of(self.home).restore("models/candidate", f"model/{version}", staged)
            # refused unless it is the registered artifact, and loadable as it will serve
            load_artifact(staged, expected_digest=digest, factories=_user_families(self.home))
            self._store(staged, version)
        return True

    def set_approval(self, version: str, status: str, **fields: Any) -> dict[str, Any]:
        """Record a release-process step for `version` (the caller commits `registry/`)."""
        if status not in APPROVAL_STATES:
            raise RegistryError(f"unknown approval status {status!r}: one of {APPROVAL_STATES}")
        self.require(version)
        approvals = self.approvals()
        entry = {**approvals.get(version, {}), **fields, "status": status}
        entry.setdefault("steps", [])
        entry["steps"] = [*entry["steps"], {"status": status, **fields}]
        approvals[version] = entry
        _write_json_atomic(self.dir / "approvals.json", approvals)
        return entry

    def request_approval(self, decision: Mapping[str, Any], when: dt.datetime) -> None:
        """Manual mode: the challenger `decision` passed waits for a person (the caller commits
        `registry/`); one already approved or released stays so."""
        version = str(decision["challenger_version"])
        if (self.approval(version) or {}).get("status") in ("approved", "released"):
            return
        self.set_approval(
            version,
            "awaiting_approval",
            time=when.isoformat(),
            decision_day=decision.get("day"),
            decision=decision.get("decision"),
            incumbent=decision.get("production_version"),
        )

    def move_alias(
        self, alias: str, version: str | None, *, actor: str, reason: str, when: dt.datetime
    ) -> dict[str, Any]:
        (event,) = self.move_aliases({alias: version}, actor=actor, reason=reason, when=when)
        return event

    def move_aliases(
        self,
        moves: dict[str, str | None],
        *,
        actor: str,
        reason: str,
        when: dt.datetime,
    ) -> list[dict[str, Any]]:
        """Move several aliases together (a version promoted from shadow: `production` to it
        and `shadow` cleared): one history line per alias, then one replace of aliases.json,
        so a reader sees every move or none. A crash between leaves a pending line per alias,
        which readers ignore and the next move drops."""
        for alias, version in moves.items():
            if alias not in ALIASES:
                raise RegistryError(f"unknown alias {alias!r}: expected one of {ALIASES}")
            if version is not None:
                validate_version(version)
                if version not in self.versions():
                    raise RegistryError(f"cannot point {alias} at {version}: no such version")
        aliases = self.aliases()
        history = self.history()
        events = []
        for alias, version in moves.items():
            stamped = when
            earlier = [e for e in history if e["alias"] == alias]
            if earlier:
                last = dt.datetime.fromisoformat(earlier[-1]["time"])
                if stamped <= last:
                    # An alias's audit order is its log's order, and times keep it: a move
                    # stamped at or before the alias's last one (a frozen simulated clock, a
                    # clock that stepped back) is stamped just after it, so `served_at` never
                    # depends on two readings of the clock differing.
                    stamped = last + MOVE_TICK
            events.append(
                {
                    "alias": alias,
                    "from": aliases.get(alias, {}).get("version"),
                    "to": version,
                    "actor": actor,
                    "reason": reason,
                    "time": stamped.isoformat(),
                }
            )
        # History first: a crash between the two writes leaves logged moves whose aliases
        # still point at the old versions, which readers treat as not yet moved.
        self.dir.mkdir(parents=True, exist_ok=True)
        self._drop_pending_moves(aliases)
        with open(self.dir / "history.jsonl", "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))
            fh.flush()
            os.fsync(fh.fileno())
        for (alias, version), event in zip(moves.items(), events, strict=True):
            if version is None:
                aliases.pop(alias, None)
            else:
                aliases[alias] = {"version": version, "since": event["time"], "actor": actor}
        _write_json_atomic(self.dir / "aliases.json", aliases)
        return events

    def point(
        self, alias: str, version: str, *, actor: str, reason: str, when: dt.datetime
    ) -> dict[str, Any]:
        """Point `alias` at `version`: a move, or, when it already points there (a rerun of
        the run that moved it), the move that did, so a rerun adds no second move."""
        if self.alias(alias) == version:
            for event in reversed(self.history()):
                if event["alias"] == alias and event["to"] == version:
                    return event
        return self.move_alias(alias, version, actor=actor, reason=reason, when=when)

    def _drop_pending_moves(self, aliases: dict[str, dict[str, Any]]) -> None:
        """Before appending: rewrite the history (atomically) without a killed move's pending
        line or a torn last line, so the log holds completed moves only."""
        path = self.dir / "history.jsonl"
        if not path.is_file():
            return
        raw = path.read_text()
        lines = _history_lines(path)
        kept = _completed(lines, aliases)
        if len(kept) == len(lines) and (raw == "" or raw.endswith("\n")):
            return
        write_atomic(
            path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in kept), durable=True
        )


def _history_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete line of history.jsonl (a last line without its newline was cut off
    by a crash in the middle of an append and is not a move)."""
    if not path.is_file():
        return []
    complete = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in complete if line.strip()]


def _completed(
    events: list[dict[str, Any]], aliases: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """`events` without each alias's last move when aliases.json does not show it."""
    kept = list(events)
    for alias in {e["alias"] for e in events}:
        last = max(i for i, e in enumerate(kept) if e["alias"] == alias)
        current = aliases.get(alias, {}).get("version")
        if kept[last]["to"] != current and kept[last]["from"] == current:
            del kept[last]
    return kept


def move_message(event: dict[str, Any]) -> str:
    """The commit line of an alias move: actor, time, reason, from and to (`git log` audits)."""
    return (
        f"registry: {event['alias']} {event['from'] or '(none)'} → {event['to'] or '(none)'} "
        f"by {event['actor']} at {event['time']}: {event['reason']}"
    )


def _served_path(home: LifecycleHome) -> Path:
    return registry_dir(home) / "served.json"


def served_ledger(home: LifecycleHome) -> dict[str, str]:
    """Day → the version that served after that day's decision (the production_model chain)."""
    path = _served_path(home)
    return json.loads(path.read_text()) if path.is_file() else {}


def record_served(home: LifecycleHome, day: dt.date, version: str) -> None:
    ledger = served_ledger(home)
    ledger[day.isoformat()] = validate_version(version)
    _write_json_atomic(_served_path(home), ledger)


def served_before(home: LifecycleHome, day: dt.date) -> str | None:
    """The incumbent for day D's decision: what served after the latest earlier decision."""
    earlier = [d for d in served_ledger(home) if d < day.isoformat()]
    return served_ledger(home)[max(earlier)] if earlier else None
