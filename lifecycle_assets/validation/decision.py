"""The gate's verdicts: one enum and one set of the verdicts that let a model serve.

A `Decision` is a `str` (a `StrEnum`), so decision records stay plain JSON ("PASS") and
comparisons with what an older record holds keep working.
"""

from __future__ import annotations

from enum import StrEnum


class Decision(StrEnum):
    PASS = "PASS"  # non-inferior by the margin and every guard passed
    FAIL = "FAIL"  # not shown non-inferior, or a guard failed: production is kept
    FIRST_MODEL = "FIRST_MODEL"  # no production model to compare with (cold start)
    FORCED = "FORCED"  # promoted by a person despite the gate (actor and reason recorded)


# The verdicts after which a challenger may serve (the release process may still hold it
# for manual approval).
PROMOTABLE = frozenset({Decision.PASS, Decision.FIRST_MODEL, Decision.FORCED})


def promotable(decision: str | None) -> bool:
    """Whether a decision record's verdict lets its challenger serve."""
    return decision in PROMOTABLE
