"""The verdict enum: plain JSON strings, and one set of verdicts that let a model serve."""

from __future__ import annotations

import json

from lifecycle_assets.validation.decision import PROMOTABLE, Decision, promotable


def test_decisions_are_the_strings_records_hold() -> None:
    assert json.dumps({"decision": Decision.FIRST_MODEL}) == '{"decision": "FIRST_MODEL"}'
    assert json.loads('"FORCED"') == Decision.FORCED
    assert {d.value for d in Decision} == {"PASS", "FAIL", "FIRST_MODEL", "FORCED"}


def test_only_a_failed_or_missing_verdict_keeps_the_challenger_out() -> None:
    assert {"PASS", "FIRST_MODEL", "FORCED"} == PROMOTABLE
    assert all(promotable(v) for v in ("PASS", "FIRST_MODEL", "FORCED"))
    assert not any(promotable(v) for v in ("FAIL", None, "pass", "AWAITING_APPROVAL"))
