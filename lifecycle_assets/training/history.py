"""How far back a model learns: the recent window or the whole history, chosen on fresh days.

With a history (`windows.history_days`; unset, six train windows), the train split holds
that many days, and two candidates compete: `recent`, the newest `windows.train_days` of it
(what a model learns from without a history), and `history`, every row. Each is fitted
without the split's newest `windows.test_days` days and scored on those days by the gate's
metric (`validation.metric`), then again one window earlier (`FOLDS`). The history is kept
unless the recent window's mean score is better by more than `RECENT_BY` (relative): more
rows vary less from one retrain to the next, and one window's comparison is noisy, so the
recent window has to show it is better. A population that
keeps returning (regions, seasons, customer types that come and go) favours the history; a
change in how the label follows the features favours the recent days, by far more than the
tolerance (docs/training-and-registry.md). The chosen rows are then fitted, newest days
included.

The choice needs nothing but the split's own rows, so the same split chooses the same way
(`lifecycle models reproduce`). While the split is no longer than the recent window plus its
newest days (the loop's first days), the two candidates are the same rows and the recent
window trains; where they cannot be compared — fewer than `windows.min_test_rows` rows on
the newest days, a single class there or in a candidate's rows — the history trains. Where
only the older window cannot be compared, the newest decides alone. The record says why.
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
# The windows the choice is judged on (rolling origin): the newest `windows.test_days` days,
# then the same span before them, each with both candidates fitted on the rows before it;
# the recent window's gain is the mean over the windows. One window let a single month's
# luck choose: on public-housing, where each month is another region, the recent window
# won one month by 0.9 % and 3.0 % on two days and lost the months after (mean ROC-AUC of
# those models over the following months 0.815 and 0.786, the history's 0.905 and 0.901).
# A lasting change in the label's relation wins on both windows from its second day on.
FOLDS = 2


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
    w = config.windows
    if not config.history_days or train.height == 0 or "event_time" not in train.columns:
        return train, None
    days = _days(train)
    newest = days.max()
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
    folds: list[dict[str, Any]] = []
    for fold in range(FOLDS):
        judge_end = newest - dt.timedelta(days=fold * w.test_days)
        judge_start = judge_end - dt.timedelta(days=w.test_days - 1)
        judged = train.filter(days.is_between(judge_start, judge_end))
        before = train.filter(days < judge_start)
        candidates = {
            RECENT: _since(before, judge_start - dt.timedelta(days=w.train_days)),
            HISTORY: before,
        }
        why = _why_not_comparable(judged, candidates, config)
        if why is not None:
            if fold == 0:
                return train, {**record, "reason": why}
            break  # the older windows only add to a comparison the newest one allows
        if candidates[HISTORY].height == candidates[RECENT].height:
            if fold == 0:
                # Without the newest days the two are the same rows: nothing tells them
                # apart, and the history's extra rows are only its oldest days.
                return recent, {
                    **record,
                    "chosen": RECENT,
                    "reason": "the same rows as the recent window before the newest days",
                }
            break
        folds.append(_judge(judged, candidates, (judge_start, judge_end), config, fit))
    newest_fold = folds[0]
    # The candidates' scores averaged over the windows, then compared (a mean of per-window
    # relative gains would weigh a window by how poorly the history scored on it).
    mean = {key: float(np.mean([f["scores"][key] for f in folds])) for key in (RECENT, HISTORY)}
    gain = _gain(mean, newest_fold["metric"])
    chosen = RECENT if gain > RECENT_BY else HISTORY
    where = (
        f"the newest {w.test_days} day(s)"
        if len(folds) == 1
        else f"the mean of {len(folds)} windows of {w.test_days} day(s) (each, newest first: "
        + ", ".join(f"{f['recent_gain']:+.1%}" for f in folds)
        + ")"
    )
    record.update(
        chosen=chosen,
        metric=newest_fold["metric"],
        scores=newest_fold["scores"],
        recent_gain=gain,
        judged_rows=newest_fold["judged_rows"],
        judged_days=newest_fold["judged_days"],
        folds=folds,
        reason=(
            f"recent scored {gain:.1%} better on {where}, more than {RECENT_BY:.1%}"
            if chosen == RECENT
            else f"recent scored {gain:+.1%} against history on {where}, not more than "
            f"{RECENT_BY:.1%} better"
        ),
    )
    return (train if chosen == HISTORY else recent), record


def _why_not_comparable(
    judged: pl.DataFrame, candidates: dict[str, pl.DataFrame], config: LifecycleConfig
) -> str | None:
    """Why the candidates cannot be compared on `judged`, or None."""
    w, problem = config.windows, config.problem
    if judged.height < w.min_test_rows:
        return (
            f"{judged.height} rows on the newest {w.test_days} day(s), fewer than "
            f"windows.min_test_rows ({w.min_test_rows})"
        )
    if problem.task == "binary" and any(
        frame[problem.label].n_unique() < 2 for frame in (judged, *candidates.values())
    ):
        return "a single class on the newest days or in a candidate's rows"
    if candidates[RECENT].height == 0:
        return "no rows in the recent window before the newest days"
    return None


def _judge(
    judged: pl.DataFrame,
    candidates: dict[str, pl.DataFrame],
    days: tuple[dt.date, dt.date],
    config: LifecycleConfig,
    fit: Callable[[pl.DataFrame], Scorer],
) -> dict[str, Any]:
    """Both candidates fitted on their rows and scored on `judged` by the gate's metric; the
    recent window's gain relative to the history's score."""
    name = config.validation.metric
    y = judged[config.problem.label].cast(pl.Float64).to_numpy()
    scores = {key: metric(name, y, fit(rows).score(judged)) for key, rows in candidates.items()}
    return {
        "metric": name,
        "scores": scores,
        "recent_gain": _gain(scores, name),
        "judged_rows": judged.height,
        "judged_days": [days[0].isoformat(), days[1].isoformat()],
    }


def _gain(scores: dict[str, float], name: str) -> float:
    """How much better the recent window scored, relative to the history's score."""
    sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
    return sign * (scores[RECENT] - scores[HISTORY]) / max(abs(scores[HISTORY]), 1e-12)
