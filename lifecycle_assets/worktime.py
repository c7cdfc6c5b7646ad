"""The loop's real work, timed where it happens: what a day would cost with no orchestration,
versioning or storage around it.

The core's working functions are marked with `@work(kind)`: reading the service's logs and the
polars transforms and drift (`transforms`), fitting a model (`training`), scoring a frame
(`scoring`), the gate's paired bootstrap and guards and the label-free estimate
(`statistics`). Each call adds its wall time to its kind, in this process;
a marked call inside another (a fit that scores its holdout, a gate that scores) counts once,
in the outer one's kind. A driver takes the totals (`take`) around what it runs: the daily
runner does around each day (`automation.loop.run_day`), and the demo prints them beside the
day's wall time (`summary.json`: `loop_seconds`, `work_seconds`).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

KINDS = ("transforms", "training", "scoring", "statistics")

_lock = threading.Lock()
_totals: dict[str, float] = {}
_inside = threading.local()


def work(kind: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a function as the loop's real work of `kind` (one of `KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of work {kind!r}: one of {', '.join(KINDS)}")

    def mark(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            if getattr(_inside, "active", False):
                return fn(*args, **kwargs)  # counted by the marked call around it
            _inside.active = True
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - started
                _inside.active = False
                with _lock:
                    _totals[kind] = _totals.get(kind, 0.0) + seconds

        return timed

    return mark


def take() -> dict[str, float]:
    """The seconds of work per kind since the last `take` (every kind, zero included), and
    start again from zero."""
    with _lock:
        taken = {kind: _totals.get(kind, 0.0) for kind in KINDS}
        _totals.clear()
    return taken
