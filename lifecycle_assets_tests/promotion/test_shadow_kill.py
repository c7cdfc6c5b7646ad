"""`kill -9` during a shadow gate that promotes: never half-promoted.

Each trial puts v1 in production and v2 in shadow with a matured window of logged rows on
which v2 passes, then runs the shadow gate (`validation.shadow.run_shadow_gate`: the record
stored, the aliases moved, `models/production` published and `registry/` committed) in a
child forked from a forkserver with the imports preloaded, which SIGKILLs itself just before
its k-th write (the write hooks of `kill_harness`). After the kill the registry shows the old
state (v1 in production, v2 in shadow) or the new one (v2 in production, nothing in shadow),
never a mix, and the history agrees with it. The gate then runs again, as a retried run
would, and must finish the promotion once: one production move, the shadow cleared,
`registry/` committed.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lifecycle_assets.home import LifecycleHome, set_simulated_today
from lifecycle_assets_tests.promotion.kill_harness import (
    dying_at_write,
    spread,
    stage_decided_day,
)

pytestmark = pytest.mark.slow

PRELOAD = [
    "lifecycle_assets.validation.shadow",
    "lifecycle_assets.versioning.repo",
    "lifecycle_assets.training.artifact",
    "dvc.repo",
]
START = dt.date(2026, 7, 1)
SHADOW_DAYS, MATURITY = 2, 3


def child(home_root: str, env: dict[str, str], day: str, kill_at: int, log: str) -> None:
    """Run the day's shadow gate; SIGKILL self just before write `kill_at` (0: never)."""
    from lifecycle_assets.validation.shadow import run_shadow_gate

    events = dying_at_write(env, kill_at)
    run_shadow_gate(LifecycleHome(Path(home_root)), dt.date.fromisoformat(day), actor="kill-test")
    if log:
        Path(log).write_text(json.dumps(events))


def arm(home: LifecycleHome, trial: int) -> dt.date:
    """v1 in production and v2 in shadow from the trial's base day, its window logged and
    matured; the clock on the day the shadow gate decides, which is returned."""
    from lifecycle_assets.registry.registry import Registry
    from lifecycle_assets.versioning.repo import VersionedRepo
    from lifecycle_assets_tests.validation.test_shadow_gate import log_live_day

    base = START + dt.timedelta(days=10 * trial)
    registry = Registry(home, home.config().problem.name)
    noon = dt.datetime.combine(base, dt.time(12), dt.UTC)
    registry.move_aliases(
        {"production": "v1", "shadow": "v2"}, actor="test", reason="arm", when=noon
    )
    for i in range(1, SHADOW_DAYS + 1):
        log_live_day(home, base + dt.timedelta(days=i), "v1", "v2", rows=250)
    VersionedRepo.of(home).save_version(f"arm trial {trial}", None, extra_paths=["registry"])
    decides = base + dt.timedelta(days=SHADOW_DAYS + MATURITY)
    set_simulated_today(home, decides)
    return decides


def state(home: LifecycleHome) -> tuple[tuple[str | None, str | None], list[str]]:
    """(production, shadow) as aliases.json says, and what disagrees with it."""
    from lifecycle_assets.registry.registry import Registry, served_ledger

    registry = Registry(home, home.config().problem.name)
    problems: list[str] = []
    now = (registry.alias("production"), registry.alias("shadow"))
    if now not in (("v1", "v2"), ("v2", None)):
        problems.append(f"half-promoted: production {now[0]}, shadow {now[1]}")
    for alias, version in zip(("production", "shadow"), now, strict=True):
        moves = [e for e in registry.history() if e["alias"] == alias]
        if not moves or moves[-1]["to"] != version:
            problems.append(f"{alias}: history's last move → {moves[-1]['to'] if moves else None}")
    served_ledger(home)  # parses
    return now, problems


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from lifecycle_assets_tests.promotion.helpers import (
        fit_model,
        labelled_frame,
        register,
    )
    from lifecycle_assets_tests.validation.test_shadow_gate import shadow_home

    mp = pytest.MonkeyPatch()
    home = shadow_home(tmp_path_factory.mktemp("shadow-kill"), mp)
    good = fit_model(home, labelled_frame(2000, seed=3), "v1", steps=50)
    register(home, good, "v1")
    register(home, good, "v2")
    stage_decided_day(home, START, labelled_frame(500, seed=4), good)
    yield home
    mp.undo()


def test_a_kill_at_any_write_of_a_shadow_promotion_leaves_old_or_new(home) -> None:
    from lifecycle_assets.registry.registry import Registry
    from lifecycle_assets.validation.shadow import load_shadow_record, run_shadow_gate

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    env = dict(home.tool_env())
    registry = Registry(home, home.config().problem.name)

    def start(day: dt.date, kill_at: int, log: str = "") -> Any:
        proc = ctx.Process(target=child, args=(str(home.root), env, day.isoformat(), kill_at, log))
        proc.start()
        proc.join(300)
        return proc

    # Uninterrupted gates first: the writes of the second, in order (the first publish of a
    # version writes more, as DVC caches its output once; the trials run in the steady state).
    log = str(home.root / "writes.json")
    for trial in (0, 1):
        assert start(arm(home, trial), 0, log).exitcode == 0
    writes = json.loads(Path(log).read_text())
    assert state(home) == (("v2", None), [])
    # the first and last writes, the record stored, the two writes of the alias move, and
    # some spread between
    named = [
        i + 1
        for i, w in enumerate(writes)
        if "history.jsonl" in w or ("aliases.json" in w and "os.replace" in w)
    ]
    points = sorted({1, len(writes), *named[:2], *spread(len(writes), 4)})
    outcomes = []
    for trial, kill_at in enumerate(points, start=2):
        day = arm(home, trial)
        moves_before = len(registry.history())
        proc = start(day, kill_at)
        assert proc.exitcode == -signal.SIGKILL, (kill_at, writes[kill_at - 1], proc.exitcode)
        after, problems = state(home)
        assert not problems, (kill_at, writes[kill_at - 1], problems)
        outcomes.append(after)
        # the retried run finishes the promotion, once
        result = run_shadow_gate(home, day, actor="retry")
        assert result is not None and result.record["decision"] == "PASS"
        assert state(home) == (("v2", None), []), (kill_at, writes[kill_at - 1])
        new = registry.history()[moves_before:]
        assert [(e["alias"], e["from"], e["to"]) for e in new] == [
            ("production", "v1", "v2"),
            ("shadow", "v2", None),
        ], (kill_at, writes[kill_at - 1], new)
        record = load_shadow_record(home, day.isoformat())
        assert record is not None and record["action"] == "promote"
        dirty = subprocess.run(
            ["git", "-C", str(home.repo), "status", "--porcelain", "--", "registry"],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
        ).stdout.strip()
        assert not dirty, (kill_at, writes[kill_at - 1], dirty)
    # killed before the aliases moved (old) and after (new) both happened
    assert {("v1", "v2"), ("v2", None)} <= set(outcomes), outcomes
