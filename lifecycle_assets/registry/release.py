"""The release process (docs/training-and-registry.md): review → approve → release, and
rollback (what was recorded is read in `queries.py`; a version is reproduced in
`reproduce.py`). Plain functions over a home; the CLI (`commands/registry.py`) and the
Dagster `approve_model` job (`defs/registry/jobs.py`) are thin wrappers.

Every alias move here is verified first (`promotion.verify_release`: registered,
hash-checked, loads, answers a warm-up row), then moved, then committed to the home's repo
with actor, time, reason, from and to in the message, together with the `production_model`
DVC output; a move made outside a Dagster run reports a runless materialisation of
`production_model` for the loop's current day so the asset lineage in the UI stays true.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from typing import Any

from lifecycle_assets.decision import Decision, DecisionRecord, promotable
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.home import LifecycleHome, now, today
from lifecycle_assets.lineage import code_version
from lifecycle_assets.registry.promotion import verify_release
from lifecycle_assets.registry.queries import registry_for, verdict_for
from lifecycle_assets.registry.registry import (
    Registry,
    RegistryError,
    move_message,
    record_served,
    validate_version,
)
from lifecycle_assets.storage import AssetStore
from lifecycle_assets.training.artifact import save_artifact
from lifecycle_assets.versioning.publish import publish_stage
from lifecycle_assets.versioning.repo import VersionedRepo

AWAITING_APPROVAL = "AWAITING_APPROVAL"

# How a change made outside a Dagster run is reported, so the UI's lineage stays true:
# (asset, partition, metadata) → a runless materialisation (the CLI: `automation.loop.
# runless_report`) or an event of the run that made it (the `approve_model` job).
Report = Callable[[str, str, dict[str, Any]], None]


class ReleaseError(LifecycleError, RuntimeError):
    """A release-process step that is not allowed now; the message says why and what to do."""


def cli_actor() -> str:
    """Who acts from the command line: `$USER`, else `lifecycle-cli`."""
    return os.environ.get("USER") or "lifecycle-cli"


# --- the release process -------------------------------------------------------------------


def approve(
    home: LifecycleHome, version: str, *, actor: str, reason: str = "reviewed the model card"
) -> dict[str, Any]:
    """Record a reviewer's approval of a version the gate passed (nothing moves yet)."""
    reg = registry_for(home)
    reg.require(version)
    decision = verdict_for(home, version)
    if decision is None or not promotable(decision.get("decision")):
        raise ReleaseError(
            f"{version} has {verdict_text(decision)}: only a version the gate passed can be approved; to "
            f"release it anyway use `lifecycle models release {version} --force --reason R`"
        )
    verify_release(reg, version)
    when = now(home)
    repo = VersionedRepo.of(home)
    with repo.locked():
        entry = reg.set_approval(
            version,
            "approved",
            actor=actor,
            reason=reason,
            time=when.isoformat(),
            decision_day=decision.get("day"),
        )
        commit = repo.save_version(
            f"registry: approve {version} by {actor} at {when.isoformat()}: {reason}",
            None,
            extra_paths=["registry"],
        )
    return {"version": version, "approval": entry, "git_commit": commit}


def release(
    home: LifecycleHome,
    version: str,
    *,
    actor: str,
    reason: str | None = None,
    force: bool = False,
    report: Report,
) -> dict[str, Any]:
    """Point `production` at `version`: an approved version (manual mode), one the gate passed
    (auto mode), or any registered version with `force` and a reason (a FORCED record)."""
    reg = registry_for(home)
    reg.require(version)
    current = reg.alias("production")
    if current == version:
        raise ReleaseError(f"{version} is already in production")
    mode = home.config().registry.approval
    status = (reg.approval(version) or {}).get("status")
    decision = verdict_for(home, version)
    forced = None
    if force:
        if not reason or not reason.strip():
            raise ReleaseError("a forced release needs --reason: say why the gate is overridden")
        forced = _forced_record(home, version, current, actor, reason)
    elif mode == "manual" and status != "approved":
        raise ReleaseError(
            f"{version} is not approved (registry.approval is manual; status: "
            f"{status or 'none'}): run `lifecycle models approve {version}` after review"
        )
    elif (
        mode == "auto"
        and status != "approved"
        and (decision is None or not promotable(decision.get("decision")))
    ):
        raise ReleaseError(
            f"{version} has {verdict_text(decision)}: approve it or use --force --reason R to override the gate"
        )
    why = reason or (f"approved ({status})" if status == "approved" else "gate passed")
    result = _move_production(
        home, reg, version, actor=actor, reason=why, action="release", forced=forced,
        report=report,
    )  # fmt: skip
    return result


def verdict_text(decision: dict[str, Any] | None) -> str:
    """What a refusal says of the verdict (`queries.verdict_for`) that refused it."""
    if decision is None:
        return "no gate decision"
    if decision.get("kind") == "shadow":
        return f"{decision.get('decision')} in shadow (the shadow gate on {decision.get('day')})"
    return f"{decision.get('decision')} (the gate on {decision.get('day')})"


def rollback(
    home: LifecycleHome,
    *,
    to: str | None,
    actor: str,
    reason: str,
    report: Report,
) -> dict[str, Any]:
    """Restore an earlier production model (weights, preprocessing and feature version travel
    together in its artifact), verified before the alias moves."""
    if not reason or not reason.strip():
        raise ReleaseError("a rollback needs --reason: say why")
    reg = registry_for(home)
    current = reg.alias("production")
    if to is None:
        to = previous_production(reg)
        if to is None:
            raise ReleaseError("no earlier production version to roll back to; pass --to V")
    validate_version(to)
    reg.require(to)
    if to == current:
        raise ReleaseError(f"{to} is already in production")
    return _move_production(
        home, reg, to, actor=actor, reason=reason, action="rollback", report=report
    )


def previous_production(reg: Registry) -> str | None:
    """The version production pointed at before the current one."""
    current = reg.alias("production")
    for event in reversed(reg.history()):
        if event["alias"] == "production" and event["to"] == current:
            return event["from"]
    return None


def _forced_record(
    home: LifecycleHome, version: str, current: str | None, actor: str, reason: str
) -> dict[str, Any]:
    """A decision record in the gate's shape (same field names) saying who overrode it."""
    day = today(home).isoformat()
    record = {
        "decision": Decision.FORCED.value,
        "reason": reason,
        "actor": actor,
        "challenger_version": version,
        "production_version": current,
        "day": day,
        "decided_at": now(home).isoformat(),
        "run_id": None,
        **code_version(),
    }
    return DecisionRecord.checked(record)


def _write_forced(home: LifecycleHome, record: dict[str, Any]) -> None:
    """Where the gate's records live: the `validation_report` value of the day (the day's
    governing decision; a gate record it supersedes is kept inside it), and a git-tracked
    copy under `registry/decisions/` so `git log` shows the override."""
    day = record["day"]
    store = AssetStore.of(home)
    try:
        previous = store.read_record("validation_report", day)
    except json.JSONDecodeError:
        previous = None
    if previous is not None:
        record["superseded"] = previous
    store.write("validation_report", day, record)
    copy = home.repo / "registry" / "decisions" / f"{day}-{record['challenger_version']}.json"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def _move_production(
    home: LifecycleHome,
    reg: Registry,
    version: str,
    *,
    actor: str,
    reason: str,
    action: str,
    forced: dict[str, Any] | None = None,
    report: Report,
) -> dict[str, Any]:
    model = verify_release(reg, version)  # refuses a tampered or broken artifact: nothing moves
    day = today(home)
    when = now(home)
    repo = VersionedRepo.of(home)
    with repo.locked():
        if forced is not None:
            _write_forced(home, forced)
        # A version released from shadow by hand leaves it: `shadow` is cleared in the same
        # write of aliases.json, so its shadow gate has nothing left to decide.
        moves: dict[str, str | None] = {"production": version}
        if reg.alias("shadow") == version:
            moves["shadow"] = None
        events = reg.move_aliases(moves, actor=actor, reason=reason, when=when)
        event = events[0]
        record_served(home, day, version)
        if action == "release":
            reg.set_approval(version, "released", actor=actor, time=when.isoformat())
        meta = publish_stage(
            repo,
            "production_model",
            day.isoformat(),
            "models/production",
            lambda folder: save_artifact(model, folder),
            message=f"{action} {version}: {reason}"
            + "".join(f"\n\n{move_message(e)}" for e in events),
            tag=None,
            extra_paths=("registry",),
        )
        _store_asset_value(home, reg, day, version)
    metadata = {
        "model_version": version,
        "previous_version": str(event["from"]),
        "decision": forced["decision"] if forced else action.upper(),
        "promoted": True,
        "actor": actor,
        "reason": reason,
        "runless": f"lifecycle models {action}",
        **meta,
    }
    report("production_model", day.isoformat(), metadata)
    return {"action": action, "event": event, "day": day.isoformat(), **meta}


def _store_asset_value(home: LifecycleHome, reg: Registry, day: dt.date, version: str) -> None:
    """The production_model partition's stored value (a reference to the version), so a
    downstream asset reading today's partition gets the model that now serves."""
    AssetStore.of(home).write("production_model", day.isoformat(), reg.reference(version))


def check_version_arg(version: str) -> str:
    """CLI arguments are validated before anything touches the filesystem or git."""
    try:
        return validate_version(version)
    except RegistryError as err:
        raise ReleaseError(str(err)) from None
