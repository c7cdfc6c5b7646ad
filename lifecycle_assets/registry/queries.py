"""What the registry and the gate recorded, read for the CLI: versions with their decisions
and aliases, a version's record, card and alias history, and what served at a given time.
Plain functions over a home; nothing here moves an alias or writes a file."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from lifecycle_assets.decision import DecisionRecord, Stage
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.home import LifecycleHome, now
from lifecycle_assets.registry.registry import Registry
from lifecycle_assets.storage import AssetStore
from lifecycle_assets.training.card import model_card_markdown

# The asset that holds each day's shadow decision (`validation.shadow`).
SHADOW_REPORT = "shadow_report"


class QueryError(LifecycleError, ValueError):
    """A query's argument cannot be read; the message says what was expected."""


def registry_for(home: LifecycleHome) -> Registry:
    return Registry(home, home.config().problem.name)


def decision_records(home: LifecycleHome) -> list[dict[str, Any]]:
    """The decision records the loop (and forced releases) wrote, oldest day first."""
    store = AssetStore.of(home)
    records = []
    for day in store.record_partitions("validation_report"):
        try:
            record = store.read_record("validation_report", day)
            if record is not None:
                records.append(DecisionRecord.checked(record))
        except ValueError:  # torn, or not a decision record: `lifecycle validation show` says
            continue
    return records


@dataclass(frozen=True)
class ShadowInFlight:
    """The version in the `shadow` alias, the offline decision that put it there and its
    window: the days it was scored on, whose labels mature on `matures_on`."""

    version: str
    offline_day: dt.date
    shadow_days: int
    first: dt.date
    last: dt.date
    matures_on: dt.date
    offline: dict[str, Any] | None


def shadow_in_flight(home: LifecycleHome, registry: Registry) -> ShadowInFlight | None:
    """The shadow now, None when the alias is empty. Its offline day is that of the decision
    record that sent it to shadow; a shadow set by hand (no such record) counts from the day
    of its alias move, with the config's `shadow_days`."""
    version = registry.alias("shadow")
    if version is None:
        return None
    config = home.config()
    offline = next(
        (
            r
            for r in reversed(decision_records(home))
            if r.get("challenger_version") == version and r.get("stage") == Stage.SHADOW
        ),
        None,
    )
    if offline is not None:
        day = dt.date.fromisoformat(str(offline["day"]))
        days = int(offline.get("shadow_days") or config.release.shadow_days)
    else:
        moved = [e for e in registry.history() if e["alias"] == "shadow" and e["to"] == version]
        day = dt.datetime.fromisoformat(moved[-1]["time"]).date() if moved else dt.date.min
        days = config.release.shadow_days
    days = max(days, 1)
    first, last = day + dt.timedelta(days=1), day + dt.timedelta(days=days)
    matures = last + dt.timedelta(days=config.labels.maturity_days)
    return ShadowInFlight(version, day, days, first, last, matures, offline)


def decision_for(home: LifecycleHome, version: str) -> dict[str, Any] | None:
    """The latest decision whose challenger was `version`."""
    found = [r for r in decision_records(home) if r.get("challenger_version") == version]
    return found[-1] if found else None


def shadow_result_for(home: LifecycleHome, offline_day: str) -> dict[str, Any] | None:
    """The shadow decision on the challenger the offline decision of `offline_day` sent to
    shadow, None while there is none."""
    store = AssetStore.of(home)
    for day in reversed(store.record_partitions(SHADOW_REPORT)):
        record = store.read_record(SHADOW_REPORT, day)
        if record is not None and record.get("offline_day") == offline_day:
            return record
    return None


def verdict_for(home: LifecycleHome, version: str) -> dict[str, Any] | None:
    """The decision that says whether `version` may be approved or released without
    `--force`: its latest offline decision, unless that sent it to shadow and the shadow
    gate has decided since, in which case the shadow gate's (a challenger the offline gate
    passed and its shadow rows failed is not promotable)."""
    decision = decision_for(home, version)
    if decision is None or decision.get("stage") != Stage.SHADOW:
        return decision
    shadow = shadow_result_for(home, str(decision.get("day")))
    if shadow is None or shadow.get("challenger_version") != version:
        return decision
    return shadow


def model_card(home: LifecycleHome, version: str) -> str:
    """The card rendered now, with the gate's metrics for the version when it was validated."""
    reg = registry_for(home)
    record = reg.require(version)
    artifact = reg.load(version)  # hash-checked
    return model_card_markdown(
        artifact, home.config(), decision=decision_for(home, version), record=record
    )


def list_versions(home: LifecycleHome) -> list[dict[str, Any]]:
    reg = registry_for(home)
    aliases = {name: entry["version"] for name, entry in reg.aliases().items()}
    approvals = reg.approvals()
    stages = reg.stages()
    rows = []
    for version, info in sorted(reg.versions().items(), key=lambda kv: int(kv[0][1:])):
        decision = decision_for(home, version)
        rows.append(
            {
                "version": version,
                "aliases": sorted(a for a, v in aliases.items() if v == version),
                "stage": stages[version],
                "day": info.get("day"),
                "created_at": info.get("created_at"),
                "train_split_tag": info.get("train_split_tag"),
                "device": info.get("device"),
                "decision": decision.get("decision") if decision else None,
                "approval": approvals.get(version, {}).get("status"),
                "weights_sha256": info.get("weights_sha256"),
            }
        )
    return rows


def show_version(home: LifecycleHome, version: str) -> dict[str, Any]:
    reg = registry_for(home)
    info = reg.require(version)
    return {
        "version": version,
        "record": info,
        "aliases": sorted(a for a, e in reg.aliases().items() if e["version"] == version),
        "approval": reg.approval(version),
        "decision": decision_for(home, version),
        "alias_history": [e for e in reg.history() if version in (e.get("from"), e.get("to"))],
        "model_card": model_card(home, version),
    }


def parse_time(text: str, home: LifecycleHome) -> dt.datetime:
    """`now`, a date (its end: what served after that day's moves) or an ISO time (UTC if
    naive), all on the loop's clock. `now` is never before the last alias move: on a frozen
    simulated clock a move is stamped just after the one it follows (`MOVE_TICK`)."""
    if text == "now":
        moves = [dt.datetime.fromisoformat(e["time"]) for e in registry_for(home).history()]
        return max([now(home), *moves])
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time.max, tzinfo=dt.UTC)
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(
            f"time {text!r}: expected now, YYYY-MM-DD or an ISO time like 2026-06-10T12:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def served_at(home: LifecycleHome, when: dt.datetime) -> dict[str, Any]:
    """The production version at `when`, and the alias move that put it there."""
    reg = registry_for(home)
    event = None
    for e in reg.history():
        if e["alias"] == "production" and dt.datetime.fromisoformat(e["time"]) <= when:
            event = e
    return {
        "time": when.isoformat(),
        "version": event["to"] if event else None,
        "since": event["time"] if event else None,
        "actor": event["actor"] if event else None,
        "reason": event["reason"] if event else None,
    }
