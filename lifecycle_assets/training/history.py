"""How far back a model learns: the recent window or the whole history, chosen on fresh days.

With a history (`windows.history_days`; unset, six train windows), the train split holds
that many days, and two candidates compete: `recent`, the newest `windows.train_days` of it
(what a model learns from without a history), and `history`, every row. Each is fitted
without the split's newest `windows.test_days` days, and scored on those days by the gate's
metric (`validation.metric`). The history is kept unless the recent window scores better by more
than `RECENT_BY` (relative): more rows vary less from one retrain to the next, and one
day's comparison is noisy, so the recent window has to show it is better. A population that
keeps returning (regions, seasons, customer types that come and go) favours the history; a
change in how the label follows the features favours the recent days, by far more than the
tolerance (docs/training-and-registry.md). The chosen rows are then fitted, newest days
included.

The choice needs nothing but the split's own rows, so the same split chooses the same way
(`lifecycle models reproduce`). While the split is no longer than the recent window plus its
newest days (the loop's first days), the two candidates are the same rows and the recent
window trains; where they cannot be compared — fewer than `windows.min_test_rows` rows on
the newest days, a single class there or in a candidate's rows — the history trains. The
record says why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import polars as pl

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.metrics import HIGHER_IS_BETTER, metric

RECENT, HISTORY = "recent", "history"
# How much better (relative to the history's score) the recent window must score on the
# newest days to be kept. Measured on the quality benchmark's seven scenarios (LightGBM on
# four periods against all of them, judged on the period before the test period): 0 lost
# 0.0008 ROC-AUC on prior and 0.3 % RMSE on regression to flips on noise; 0.005 scored at
# least the better fixed choice on five, within 0.02 % RMSE of it on regression and 0.006
# below always-history on public-housing (0.8830, the recent window alone 0.8430); 0.01
# lost 0.0026 on concept.
RECENT_BY = 0.005


class Scorer(Protocol):
    def score(self, frame: pl.DataFrame) -> np.ndarray: ...


def _days(frame: pl.DataFrame) -> pl.Series:
    return frame["event_time"].dt.date()


def _since(frame: pl.DataFrame, first: dt.date) -> pl.DataFrame:
    return frame.filter(pl.col("event_time").dt.date() >= first)


def choose_history(
    train: pl.DataFrame, config: LifecycleConfig, fit: Callable[[pl.DataFrame], Scorer]
) -> tuple[pl.DataFrame, dict[str, Any] | None]:
    """(the rows to train on, the record of the choice; None without a history).

    `fit` trains a candidate on rows (the caller's whole recipe: preprocessing, holdout,
    calibration) and returns something that scores a frame. The windows count back from the
    newest day in the split, in the UTC days of `event_time`."""
    w, problem = config.windows, config.problem
    if not config.history_days or train.height == 0 or "event_time" not in train.columns:
        return train, None
    newest = _days(train).max()
    assert isinstance(newest, dt.date)
    recent_start = newest - dt.timedelta(days=w.train_days - 1)
    recent = _since(train, recent_start)
    record: dict[str, Any] = {
        "chosen": HISTORY,
        "train_days": w.train_days,
        "history_days": config.history_days,
        "rows": {RECENT: recent.height, HISTORY: train.height},
    }
    if recent.height == train.height:
        return train, {**record, "chosen": RECENT, "reason": "no rows before the recent window"}
    judge_start = newest - dt.timedelta(days=w.test_days - 1)
    judged = _since(train, judge_start)
    before = train.filter(pl.col("event_time").dt.date() < judge_start)
    candidates = {
        RECENT: _since(before, judge_start - dt.timedelta(days=w.train_days)),
        HISTORY: before,
    }
    label = problem.label
    why = None
    if judged.height < w.min_test_rows:
        why = (
            f"{judged.height} rows on the newest {w.test_days} day(s), fewer than "
            f"windows.min_test_rows ({w.min_test_rows})"
        )
    elif problem.task == "binary" and any(
        frame[label].n_unique() < 2 for frame in (judged, *candidates.values())
    ):
        why = "a single class on the newest days or in a candidate's rows"
    elif candidates[RECENT].height == 0:
        why = "no rows in the recent window before the newest days"
    if why is not None:
        return train, {**record, "reason": why}
    if candidates[HISTORY].height == candidates[RECENT].height:
        # Without the newest days the two are the same rows: nothing tells them apart, and
        # the history's extra rows are only its oldest days.
        return recent, {
            **record,
            "chosen": RECENT,
            "reason": "the same rows as the recent window before the newest days",
        }
    name = config.validation.metric
    y = judged[label].cast(pl.Float64).to_numpy()
    scores = {key: metric(name, y, fit(rows).score(judged)) for key, rows in candidates.items()}
    sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
    gain = sign * (scores[RECENT] - scores[HISTORY]) / max(abs(scores[HISTORY]), 1e-12)
    chosen = RECENT if gain > RECENT_BY else HISTORY
    record.update(
        chosen=chosen,
        metric=name,
        scores=scores,
        recent_gain=gain,
        judged_rows=judged.height,
        judged_days=[judge_start.isoformat(), newest.isoformat()],
        reason=(
            f"recent scored {gain:.1%} better on the newest {w.test_days} day(s), more than "
            f"{RECENT_BY:.1%}"
            if chosen == RECENT
            else f"recent scored {gain:+.1%} against history on the newest {w.test_days} "
            f"day(s), not more than {RECENT_BY:.1%} better"
        ),
    )
    return (train if chosen == HISTORY else recent), record
