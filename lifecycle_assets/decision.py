"""The gate's verdicts: one enum, one set of the verdicts that let a model serve, and the
decision record's contract.

A `Decision` is a `str` (a `StrEnum`), so decision records stay plain JSON ("PASS") and
comparisons with what an older record holds keep working.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from lifecycle_assets.errors import contract_problem
from lifecycle_assets.files import write_atomic, write_json


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


class Stage(StrEnum):
    """Where a promotable challenger goes after its decision (the record's `stage`)."""

    PRODUCTION = "production"  # it serves (manual mode: once approved)
    SHADOW = "shadow"  # scored beside production, which answers, until the shadow gate decides
    HELD = "held"  # another challenger is in shadow: this one is not promoted


class ShadowAction(StrEnum):
    """What a shadow decision does to the registry (the shadow record's `action`)."""

    PROMOTE = "promote"  # production moves to the shadow, which is cleared
    REQUEST_APPROVAL = "request_approval"  # manual mode: the shadow is cleared, a person releases
    CLEAR = "clear"  # rejected or abandoned: the shadow is cleared, production stays


def release_stage(
    decision: str,
    *,
    challenger: str | None,
    production: str | None,
    shadow_days: int,
    in_shadow: str | None,
    beats_shadow: bool = False,
    shadow_gains: bool = False,
    window_served: bool = False,
) -> tuple[Stage | None, str | None]:
    """(stage, why) of a decision: None for a challenger that may not serve. Only a gate PASS
    against a serving model goes to shadow (`release.shadow_days` > 0): a first model has
    nothing to be compared with on live traffic, and a FORCED release is a person's call.

    A shadow in flight (`in_shadow`, another version) is replaced only by a challenger shown
    better than it (`beats_shadow`), while the shadow is not shown better than production on
    the same rows (`shadow_gains`) and has not yet served its whole window (`window_served`:
    today is its last window day or later, so its verdict waits only for labels). Under
    daily retraining a newer challenger each day would otherwise restart the window and
    none would finish it; after a drift successive challengers keep improving, so replacing
    a shadow that already beats production, or one whose window is complete, holds better
    models out of production for as long as the improvements go on. A shadow that gains
    nothing over production (trained before the data moved), early in its window, is what a
    clearly better challenger should not wait behind."""
    if not promotable(decision):
        return None, None
    if decision != Decision.PASS or shadow_days == 0 or production is None:
        return Stage.PRODUCTION, None
    beside = f"serves in shadow beside {production} for {shadow_days} day(s)"
    if in_shadow is None or in_shadow == challenger:
        return Stage.SHADOW, beside
    if beats_shadow and not shadow_gains and not window_served:
        return Stage.SHADOW, (
            f"shown better than {in_shadow}, which is not shown better than {production}: "
            f"it replaces {in_shadow} in shadow; {beside}"
        )
    if not beats_shadow:
        why = f"{in_shadow} is in shadow and {challenger} is not shown better than it"
    elif shadow_gains:
        why = f"{in_shadow} is in shadow and shown better than {production}: it finishes its window"
    else:
        why = f"{in_shadow} is in shadow and has served its window: its verdict waits for labels"
    return Stage.HELD, f"{why}; {challenger} is not promoted"


def gate_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """A decision's figures for `dvc metrics show` (`reports/metrics.json`): the gate's
    metric for the challenger and production, Δ, its lower bound, the margin, the test rows
    and whether the challenger may serve, under the metric's name. Numbers only; the whole
    record stays in `reports/validation.json`."""
    figures = {
        "challenger": record.get("challenger_metric"),
        "production": record.get("production_metric"),
        "delta": record.get("delta"),
        "delta_lower_bound": record.get("delta_lower_bound"),
        "margin": record.get("margin"),
        "test_rows": record.get("test_rows"),
        "promoted": promotable(record.get("decision")),
    }
    kept = {
        k: v
        for k, v in figures.items()
        if isinstance(v, bool | int) or (isinstance(v, float) and math.isfinite(v))
    }
    return {str(record.get("metric") or "gate"): kept}


# The validation stage's DVC metrics file, beside the full record (dvc.yaml).
METRICS_FILE = "metrics.json"


def write_reports(path: Path, record: dict[str, Any]) -> None:
    """The validation stage's output: the full record at `path` (`reports/validation.json`)
    and its figures beside it (`reports/metrics.json`, `gate_metrics`), the stage's DVC
    metrics."""
    write_json(path, record)
    write_atomic(path.parent / METRICS_FILE, json.dumps(gate_metrics(record), indent=2) + "\n")


class DecisionRecord(BaseModel):
    """The decision record's contract: the fields every record carries, typed. A gate record
    carries many more (intervals, guards, lineage, the config it ran with), kept as they
    are; a FORCED record carries the person's `reason` and no metrics. Checked when a record
    is written and when one is read back, so a malformed or foreign file is refused with the
    field it gets wrong instead of being half-understood."""

    model_config = ConfigDict(extra="allow")

    decision: Decision
    day: dt.date
    challenger_version: str | None
    production_version: str | None = None
    decided_at: dt.datetime
    actor: str | None = None
    metric: str | None = None
    challenger_metric: float | None = None
    production_metric: float | None = None
    delta: float | None = None
    delta_lower_bound: float | None = None
    margin: float | None = None
    reason: str | None = None

    @classmethod
    def checked(cls, record: dict[str, Any]) -> dict[str, Any]:
        """`record` itself when it meets the contract; else a ValueError naming the field."""
        problem = contract_problem(cls, record, "decision record")
        if problem:
            raise ValueError(problem)
        return record
