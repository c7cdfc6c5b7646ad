"""The verdict enum: plain JSON strings, and one set of verdicts that let a model serve."""

from __future__ import annotations

import json

import pytest

from lifecycle_assets.validation.decision import PROMOTABLE, Decision, DecisionRecord, promotable


def test_decisions_are_the_strings_records_hold() -> None:
    assert json.dumps({"decision": Decision.FIRST_MODEL}) == '{"decision": "FIRST_MODEL"}'
    assert json.loads('"FORCED"') == Decision.FORCED
    assert {d.value for d in Decision} == {"PASS", "FAIL", "FIRST_MODEL", "FORCED"}


def test_only_a_failed_or_missing_verdict_keeps_the_challenger_out() -> None:
    assert {"PASS", "FIRST_MODEL", "FORCED"} == PROMOTABLE
    assert all(promotable(v) for v in ("PASS", "FIRST_MODEL", "FORCED"))
    assert not any(promotable(v) for v in ("FAIL", None, "pass", "AWAITING_APPROVAL"))


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
