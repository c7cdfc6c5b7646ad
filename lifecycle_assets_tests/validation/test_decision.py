"""The verdict enum: plain JSON strings, and one set of verdicts that let a model serve."""

from __future__ import annotations

import json

import pytest

from lifecycle_assets.decision import (
    PROMOTABLE,
    Decision,
    DecisionRecord,
    Stage,
    promotable,
    release_stage,
)


def test_decisions_are_the_strings_records_hold() -> None:
    assert json.dumps({"decision": Decision.FIRST_MODEL}) == '{"decision": "FIRST_MODEL"}'
    assert json.loads('"FORCED"') == Decision.FORCED
    assert {d.value for d in Decision} == {"PASS", "FAIL", "FIRST_MODEL", "FORCED"}


def test_only_a_failed_or_missing_verdict_keeps_the_challenger_out() -> None:
    assert {"PASS", "FIRST_MODEL", "FORCED"} == PROMOTABLE
    assert all(promotable(v) for v in ("PASS", "FIRST_MODEL", "FORCED"))
    assert not any(promotable(v) for v in ("FAIL", None, "pass", "AWAITING_APPROVAL"))


@pytest.mark.parametrize(
    ("decision", "production", "shadow_days", "in_shadow", "beats", "gains", "served", "stage"),
    [
        ("FAIL", "v1", 2, None, False, False, False, None),
        ("FAIL", "v1", 2, "v2", True, False, False, None),  # better than the shadow only
        ("PASS", "v1", 0, None, False, False, False, Stage.PRODUCTION),  # shadow off
        ("PASS", "v1", 2, None, False, False, False, Stage.SHADOW),
        ("PASS", "v1", 2, "v3", False, False, False, Stage.SHADOW),  # the same one (a rerun)
        ("PASS", "v1", 2, "v2", False, False, False, Stage.HELD),  # another one is in shadow
        ("PASS", "v1", 2, "v2", True, False, False, Stage.SHADOW),  # ... shown worse than it
        ("PASS", "v1", 2, "v2", True, True, False, Stage.HELD),  # ... but it beats production
        ("PASS", "v1", 2, "v2", True, False, True, Stage.HELD),  # ... or its window is served
        ("PASS", "v1", 2, "v2", False, True, True, Stage.HELD),
        ("FIRST_MODEL", None, 2, None, False, False, False, Stage.PRODUCTION),  # nothing beside
        ("FORCED", "v1", 2, "v2", False, False, False, Stage.PRODUCTION),  # a person's call
    ],
)
def test_the_release_stage_of_a_decision(
    decision: str,
    production: str | None,
    shadow_days: int,
    in_shadow: str | None,
    beats: bool,
    gains: bool,
    served: bool,
    stage: Stage,
) -> None:
    got, why = release_stage(
        decision,
        challenger="v3",
        production=production,
        shadow_days=shadow_days,
        in_shadow=in_shadow,
        beats_shadow=beats,
        shadow_gains=gains,
        window_served=served,
    )
    assert got == stage
    assert (why is not None) == (stage in (Stage.SHADOW, Stage.HELD))
    if in_shadow == "v2" and stage in (Stage.SHADOW, Stage.HELD):
        assert ("replaces" in (why or "")) == (stage == Stage.SHADOW)
        assert ("finishes its window" in (why or "")) == (beats and gains)
        assert ("has served its window" in (why or "")) == (beats and not gains and served)


def test_a_decision_record_is_checked_against_its_contract() -> None:
    forced = {
        "decision": "FORCED",
        "day": "2026-06-10",
        "challenger_version": "v3",
        "production_version": "v2",
        "decided_at": "2026-06-10T12:00:00+00:00",
        "actor": "cli:alice",
        "reason": "hotfix",
        "code_commit": "abc",  # any further field rides along
    }
    assert DecisionRecord.checked(forced) is forced
    first = {**forced, "decision": "FIRST_MODEL", "production_version": None, "delta": None}
    assert DecisionRecord.checked(first) is first
    with pytest.raises(ValueError, match="decision record: decision: Input should be 'PASS'"):
        DecisionRecord.checked({**forced, "decision": "MAYBE"})
    with pytest.raises(ValueError, match="decision record: day: Field required"):
        DecisionRecord.checked({k: v for k, v in forced.items() if k != "day"})
    with pytest.raises(ValueError, match="decision record: delta: Input should be a valid number"):
        DecisionRecord.checked({**forced, "delta": "large"})
