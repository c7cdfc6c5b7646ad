"""`worktime`: the loop's real work, timed by kind, a marked call inside another counted once."""

from __future__ import annotations

import time

import pytest

from lifecycle_assets import worktime


@worktime.work("scoring")
def _score(seconds: float) -> str:
    time.sleep(seconds)
    return "scored"


@worktime.work("training")
def _train(seconds: float) -> str:
    time.sleep(seconds)
    return _score(seconds)  # a fit that scores its holdout: all of it is training


def test_work_is_timed_by_kind_and_counted_once_when_nested() -> None:
    worktime.take()
    assert _score(0.05) == "scored"
    assert _train(0.05) == "scored"
    taken = worktime.take()
    assert set(taken) == set(worktime.KINDS)
    assert 0.05 <= taken["scoring"] < 0.1  # the nested score went to training
    assert taken["training"] >= 0.1
    assert taken["transforms"] == taken["statistics"] == 0.0
    assert worktime.take() == dict.fromkeys(worktime.KINDS, 0.0)  # taken: from zero again


def test_a_failing_call_still_counts_and_leaves_nothing_open() -> None:
    @worktime.work("transforms")
    def broken() -> None:
        time.sleep(0.02)
        raise RuntimeError("bad rows")

    worktime.take()
    with pytest.raises(RuntimeError, match="bad rows"):
        broken()
    assert _score(0.0) == "scored"  # not taken for a nested call of the failed one
    taken = worktime.take()
    assert taken["transforms"] >= 0.02 and taken["scoring"] > 0


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind of work 'io'"):
        worktime.work("io")
