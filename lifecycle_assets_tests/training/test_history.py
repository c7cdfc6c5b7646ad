"""How far back a model learns (`training/history.py`): the recent window or the whole
history, chosen by the gate's metric on the split's newest days."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from lifecycle_assets.config import LifecycleConfig, WindowsConfig, load_config
from lifecycle_assets.data.transforms import split_range, split_windows
from lifecycle_assets.training.card import model_card_markdown
from lifecycle_assets.training.history import HISTORY, RECENT, RECENT_BY, choose_history
from lifecycle_assets.training.train import train_model
from lifecycle_assets_tests.training.helpers import small_config, synthetic

FIRST = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _days(rows_per_day: list[int], seed: int = 0, flip_before: int | None = None) -> pl.DataFrame:
    """One synthetic frame per day (event times inside the day); labels flipped on the
    days before `flip_before` (a change in how the label follows the features)."""
    frames = []
    for day, rows in enumerate(rows_per_day):
        frame = synthetic(rows, seed + day).with_columns(
            pl.lit(FIRST + dt.timedelta(days=day, hours=12)).alias("event_time"),
            pl.format("d{}-{}", pl.lit(day), pl.col("request_id")).alias("request_id"),
        )
        if flip_before is not None and day < flip_before:
            frame = frame.with_columns((1.0 - pl.col("is_fraud")).alias("is_fraud"))
        frames.append(frame)
    return pl.concat(frames)


def _config(train_days: int, history_days: int, min_test_rows: int = 50) -> LifecycleConfig:
    cfg = small_config()
    windows = WindowsConfig(
        train_days=train_days,
        test_days=1,
        min_train_rows=10,
        min_test_rows=min_test_rows,
        history_days=history_days,
    )
    return cfg.model_copy(update={"windows": windows})


def test_without_a_history_every_row_trains_and_nothing_is_chosen() -> None:
    frame = _days([200] * 4)
    rows, record = choose_history(frame, _config(4, 0), fit=_never)
    assert rows is frame and record is None


def _never(rows: pl.DataFrame):
    raise AssertionError("no candidate is fitted")


def test_a_population_that_holds_learns_from_the_whole_history() -> None:
    # Twelve days of the same population; the recent window is the newest 2 (120 rows):
    # the model from all 12 days scores better on the newest day.
    frame = _days([60] * 11 + [400])
    cfg = _config(2, 12)
    result = train_model(frame, cfg, "v1")
    history = result.artifact.metadata["history"]
    assert history["chosen"] == HISTORY
    assert history["scores"][HISTORY] > history["scores"][RECENT]
    assert history["recent_gain"] < 0
    assert "not more than 0.5% better" in history["reason"]
    assert history["rows"] == {RECENT: 460, HISTORY: frame.height}
    assert history["judged_rows"] == 400 and history["metric"] == "roc_auc"
    assert result.artifact.metadata["train_rows"] == frame.height
    card = model_card_markdown(result.artifact, cfg)
    assert f"Learned from: the history rows ({frame.height} of the split's" in card


def test_a_changed_concept_learns_from_the_recent_days() -> None:
    # The label's relation to the features flips after day 8 of 12: the history's older
    # days teach the opposite, and the recent window (days 9-12) wins on the newest day.
    frame = _days([300] * 12, flip_before=8)
    cfg, plain = _config(4, 12), _config(4, 0)  # a candidate trains on exactly its rows
    rows, record = choose_history(frame, cfg, fit=lambda r: train_model(r, plain, "c").artifact)
    assert record is not None and record["chosen"] == RECENT
    assert record["scores"][RECENT] > 0.8 > record["scores"][HISTORY]
    assert record["recent_gain"] > RECENT_BY
    assert record["reason"].startswith("recent scored") and "more than 0.5%" in record["reason"]
    # judged on the newest day and on the day before it, each after the flip
    assert [f["judged_days"] for f in record["folds"]] == [
        ["2026-03-12", "2026-03-12"],
        ["2026-03-11", "2026-03-11"],
    ]
    assert all(f["recent_gain"] > RECENT_BY for f in record["folds"])
    mean = {k: sum(f["scores"][k] for f in record["folds"]) / 2 for k in (RECENT, HISTORY)}
    assert record["recent_gain"] == pytest.approx((mean[RECENT] - mean[HISTORY]) / mean[HISTORY])
    assert rows.height == 4 * 300
    assert rows["event_time"].min() == FIRST + dt.timedelta(days=8, hours=12)


class _Judged:
    """A stand-in candidate whose scores on a day are set by the test: `table[(recent,
    newest)]` is "perfect" (the label), "noisy" (the label, a third of it shuffled) or
    "blind" (a constant). It checks it is judged only on days after its rows."""

    def __init__(self, rows: pl.DataFrame, table: dict[tuple[bool, bool], str]) -> None:
        self.first, self.last = rows["event_time"].min(), rows["event_time"].max()
        self.table = table

    def score(self, frame: pl.DataFrame) -> np.ndarray:
        assert frame["event_time"].min() > self.last
        recent = self.first > FIRST + dt.timedelta(days=1)
        newest = frame["event_time"].max() == FIRST + dt.timedelta(days=11, hours=12)
        y = frame["is_fraud"].to_numpy().astype(float)
        kind = self.table[(recent, newest)]
        if kind == "blind":
            return np.full(len(y), 0.5)
        if kind == "noisy":
            rng = np.random.default_rng(0)
            picked = rng.random(len(y)) < 1 / 3
            y[picked] = rng.permutation(y[picked])
        return y


def test_a_gain_that_only_the_newest_day_shows_keeps_the_history() -> None:
    # On the newest day the recent window scores perfectly and the history is noisy; on
    # the day before, the recent window is blind and the history perfect. Judged on the
    # newest day alone the recent window would win; the mean over both keeps the history.
    frame = _days([300] * 12)
    table = {(True, True): "perfect", (False, True): "noisy"}
    table |= {(True, False): "blind", (False, False): "perfect"}
    rows, record = choose_history(frame, _config(4, 12), fit=lambda r: _Judged(r, table))
    assert record is not None and record["chosen"] == HISTORY
    newest, before = record["folds"]
    assert newest["judged_days"] == ["2026-03-12", "2026-03-12"]
    assert before["judged_days"] == ["2026-03-11", "2026-03-11"]
    assert newest["recent_gain"] > RECENT_BY and before["recent_gain"] < -RECENT_BY
    assert record["scores"] == newest["scores"]  # the newest window's, as the card shows
    assert record["recent_gain"] <= RECENT_BY
    assert "the mean of 2 windows of 1 day(s)" in record["reason"]
    assert rows is frame
    # the same days with the day before agreeing: the recent window
    table[(True, False)] = "perfect"
    rows, record = choose_history(frame, _config(4, 12), fit=lambda r: _Judged(r, table))
    assert record is not None and record["chosen"] == RECENT and rows.height == 4 * 300


def test_too_few_rows_on_the_newest_days_keeps_the_history_and_says_why() -> None:
    frame = _days([200] * 7 + [30])
    rows, record = choose_history(frame, _config(3, 8, min_test_rows=50), fit=_never)
    assert record is not None and record["chosen"] == HISTORY
    assert (
        "30 rows on the newest 1 day(s), fewer than windows.min_test_rows (50)"
        in (record["reason"])
    )
    assert rows is frame


def test_a_split_without_older_rows_has_one_candidate() -> None:
    frame = _days([200] * 3)
    rows, record = choose_history(frame, _config(3, 10), fit=_never)
    assert rows is frame
    assert record is not None and record["reason"] == "no rows before the recent window"
    assert record["chosen"] == RECENT


def test_candidates_of_the_same_rows_keep_the_recent_window() -> None:
    # Four days, a recent window of three, one newest day: without it, both candidates are
    # the same three days, so nothing is fitted and the oldest day does not join.
    frame = _days([200] * 4)
    rows, record = choose_history(frame, _config(3, 6), fit=_never)
    assert record is not None and record["chosen"] == RECENT
    assert record["reason"] == "the same rows as the recent window before the newest days"
    assert rows.height == 600
    assert rows["event_time"].min() == FIRST + dt.timedelta(days=1, hours=12)


def test_the_choice_is_the_same_for_the_same_split() -> None:
    # A split is stored in (event_time, request_id) order: the same split, however it was
    # read, chooses the same way with the same scores (what `models reproduce` relies on).
    order = ["event_time", "request_id"]
    frame = _days([60] * 7 + [300], seed=3).sort(order)
    cfg = _config(2, 8)
    first = train_model(frame, cfg, "v1").artifact
    again = train_model(frame.sample(fraction=1.0, shuffle=True, seed=1).sort(order), cfg, "v1")
    assert first.metadata["history"] == again.artifact.metadata["history"]
    assert first.metadata["history"]["scores"][HISTORY] > 0


def _with_windows(cfg: LifecycleConfig, **windows) -> LifecycleConfig:
    raw = cfg.model_dump()
    raw["windows"] = {**raw["windows"], **windows}
    return LifecycleConfig.model_validate(raw)


def test_unset_the_history_is_six_train_windows_within_the_lookback() -> None:
    cfg = load_config()  # the example: maturity 3, test 2
    assert cfg.windows.history_days is None and cfg.history_days == 6 * 8
    # 6 x 10 = 60 > 60 - 3 - 2: as far back as the lookback allows
    assert _with_windows(cfg, train_days=10).history_days == 55
    assert _with_windows(cfg, train_days=10).split_days == 55
    # no room beyond the train window: off
    assert _with_windows(cfg, train_days=55).history_days == 0
    assert _with_windows(cfg, history_days=20).history_days == 20
    assert _with_windows(cfg, history_days=0).history_days == 0


def test_the_train_split_holds_the_history_and_the_train_window_stays() -> None:
    cfg = _with_windows(load_config(), history_days=0)
    day = dt.date(2026, 3, 30)
    plain = split_windows(day, cfg)
    assert plain["history"] == plain["train"] == split_range(day, "train", cfg)
    longer = cfg.model_copy(
        update={"windows": WindowsConfig(train_days=8, test_days=2, history_days=30)}
    )
    windows = split_windows(day, longer)
    assert windows["train"] == plain["train"]
    assert windows["history"] == (windows["train"][1] - dt.timedelta(days=29), plain["train"][1])
    assert split_range(day, "train", longer) == windows["history"]
    assert split_range(day, "test", longer) == plain["test"]


def test_a_history_no_longer_than_the_train_window_or_past_the_lookback_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"windows.history_days \(8\) must be 0 \(off\)"):
        WindowsConfig(train_days=8, history_days=8)
    raw = load_config().model_dump()
    raw["windows"]["history_days"] = 58
    with pytest.raises(ValidationError, match=r"maturity_days \+ windows.history_days \+"):
        LifecycleConfig.model_validate(raw)
