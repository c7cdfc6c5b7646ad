"""`kill -9` during a promotion, at every write it makes.

A promotion is what the `production_model` asset does after a PASS: verify the challenger,
move the `production` alias, record the day in the served ledger, then write
`models/production`, `dvc commit` it, commit `registry/` and the DVC metafiles in git and
`dvc push`. The harness runs it in a child process (forked from a forkserver that has the
imports preloaded, so a trial costs a fork, not an interpreter start) that SIGKILLs itself
just before its k-th write — a write being a file opened for writing, an `os.replace` /
`os.rename` / `os.unlink`, or a `git add|commit|tag` — or that the parent SIGKILLs, with its
whole process group (git and all), after a random delay. After each kill the parent checks
that the registry is consistent and the service serves the old or the new model, then
reruns the promotion (as a Dagster retry would), which must complete cleanly.

Full size (≥ 50 kills spread over every write, documented in docs/validation-and-promotion.md):

    .venv/bin/python -m lifecycle_assets_tests.promotion.kill_harness --trials 60 --random 10
"""

from __future__ import annotations

import argparse
import builtins
import datetime as dt
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRELOAD = [
    "lifecycle_assets.registry.promotion",
    "lifecycle_assets.defs.resources.versioning",
    "lifecycle_assets.versioning.repo",
    "lifecycle_assets.training.artifact",
    "dvc.repo",
]
GIT_WRITES = {"add", "commit", "tag"}
FIRST_DAY = dt.date(2026, 7, 1)


# --- the promotion, as the production_model asset runs it ----------------------------------


def promote(home_root: str, day: dt.date, old: str, new: str) -> None:
    from lifecycle_assets.defs.resources.home import LifecycleHomeResource
    from lifecycle_assets.defs.resources.versioning import VersioningResource
    from lifecycle_assets.home import LifecycleHome
    from lifecycle_assets.registry.promotion import promote_or_carry_over
    from lifecycle_assets.registry.registry import Registry
    from lifecycle_assets.training.artifact import save_artifact

    home = LifecycleHome(Path(home_root))
    registry = Registry(home, home.config().problem.name)
    decision = {
        "decision": "PASS",
        "day": day.isoformat(),
        "challenger_version": new,
        "production_version": old,
        "test_split_tag": "test_split/2026-06-10",
        "test_rows_sha256": "0" * 64,
        "n_rows": 1000,
        "test_rows": 1000,
        "delta_lower_bound": 0.0,
        "margin": 0.01,
    }
    when = dt.datetime.combine(day, dt.time(1), tzinfo=dt.UTC)
    outcome = promote_or_carry_over(registry, decision, day, actor="kill-harness", when=when)
    VersioningResource(home=LifecycleHomeResource(workdir=home_root)).publish(
        "production_model",
        day.isoformat(),
        "models/production",
        lambda folder: save_artifact(outcome.artifact, folder),
        message=f"production {day}: {outcome.version} (promoted, PASS)",
        tag=None,
        extra_paths=("registry",),
    )


# --- the child: counts writes, dies at the k-th ---------------------------------------------


def _install_write_hooks(on_write: Callable[[str], None]) -> None:
    real_open = builtins.open

    def open_hook(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wax+"):
            on_write(f"open({_short(file)}, {mode})")
        return real_open(file, mode, *args, **kwargs)

    builtins.open = open_hook  # type: ignore[assignment]
    for name in ("replace", "rename", "unlink"):
        real = getattr(os, name)

        def hook(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            on_write(f"os.{_name}({_short(args[0])})")
            return _real(*args, **kwargs)

        setattr(os, name, hook)
    real_popen_init = subprocess.Popen.__init__

    def popen_hook(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)]
        if argv and Path(argv[0]).name == "git":
            sub = next((a for a in argv[1:] if not a.startswith("-") and "/" not in a), "")
            if sub in GIT_WRITES:
                on_write(f"git {sub}")
        real_popen_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = popen_hook  # type: ignore[method-assign]


def _short(path: Any) -> str:
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else str(path)
    for marker in ("/repo/", "/dvc-remote/", "/models/"):
        if marker in text:
            return marker.strip("/") + "/" + text.split(marker, 1)[1]
    return Path(text).name


def dying_at_write(env: dict[str, str], kill_at: int) -> list[str]:
    """Prepare a trial's child: its own process group (the parent can kill it whole, git
    subprocesses included), the home's tool environment, and write hooks that SIGKILL it
    just before write number `kill_at` (0: never). Returns the list the writes go into."""
    os.setpgrp()
    os.environ.update(env)
    events: list[str] = []

    def on_write(label: str) -> None:
        events.append(label)
        if len(events) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    _install_write_hooks(on_write)
    return events


def child(
    home_root: str, env: dict[str, str], day: str, old: str, new: str, kill_at: int, log: str
) -> None:
    """Promote; SIGKILL self just before write number `kill_at` (0: never; log the writes)."""
    events = dying_at_write(env, kill_at)
    promote(home_root, dt.date.fromisoformat(day), old, new)
    if log:
        Path(log).write_text(json.dumps(events))


# --- the parent ------------------------------------------------------------------------------


@dataclass
class Trial:
    day: str
    old: str
    new: str
    how: str  # "write k: label" or "random t s"
    exitcode: int | None = None
    serving_after_kill: str | None = None
    alias_after_kill: str | None = None
    problems: list[str] = field(default_factory=list)


def check_consistent(
    home: Any, versions: tuple[str, str], fsck: bool = True
) -> tuple[str, list[str]]:
    """The registry after a kill: valid files, the alias on a registered, loadable version,
    the history agreeing with it, the git repo sound. Returns (production, problems)."""
    from lifecycle_assets.registry.registry import Registry, load_version, served_ledger

    problems: list[str] = []
    registry = Registry(home, home.config().problem.name)
    aliases_file = home.repo / "registry" / "aliases.json"
    try:
        aliases = json.loads(aliases_file.read_text())
        production = aliases["production"]["version"]
    except (OSError, ValueError, KeyError) as err:
        return "?", [f"aliases.json unreadable: {err!r}"]
    if production not in versions:
        problems.append(f"production → {production}, neither {versions}")
    if production not in registry.versions():
        problems.append(f"production → unregistered {production}")
    try:
        load_version(home, registry.model_name, production)
    except Exception as err:
        problems.append(f"production {production} does not load: {err!r}")
    try:
        moves = [e for e in registry.history() if e["alias"] == "production"]
    except Exception as err:
        problems.append(f"history unreadable: {err!r}")
    else:
        if not moves or moves[-1]["to"] != production:
            last = moves[-1]["to"] if moves else None
            problems.append(f"history's last move → {last}, aliases.json → {production}")
    try:
        served_ledger(home)
    except ValueError as err:
        problems.append(f"served.json unreadable: {err!r}")
    if fsck:
        done = subprocess.run(
            ["git", "-C", str(home.repo), "fsck", "--no-progress", "--no-dangling"],
            capture_output=True, text=True, env={**os.environ, **home.tool_env()},
        )  # fmt: skip
        if done.returncode != 0:
            problems.append(f"git fsck: {done.stderr.strip()[:300]}")
    return production, problems


def serving_version(url: str, expect: str, timeout: float = 15.0) -> str | None:
    """What the service answers with once it has caught up with the alias (a /predict)."""
    import httpx

    from lifecycle_assets_tests.promotion.swap import PAYLOAD

    deadline = time.monotonic() + timeout
    version = None
    while time.monotonic() < deadline:
        resp = httpx.post(f"{url}/predict", json=PAYLOAD, timeout=10)
        if resp.status_code != 200:
            return f"HTTP {resp.status_code}"
        version = resp.json()["model_version"]
        if version == expect:
            return version
        time.sleep(0.1)
    return version


class Harness:
    def __init__(self, home: Any, url: str | None, versions: tuple[str, str]) -> None:
        self.home = home
        self.url = url
        self.versions = versions
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)
        self.env = {**home.tool_env()}
        self.day = FIRST_DAY
        self.trials: list[Trial] = []

    def _next(self) -> tuple[str, str, str]:
        from lifecycle_assets.registry.registry import Registry

        registry = Registry(self.home, self.home.config().problem.name)
        old = registry.alias("production")
        new = self.versions[1] if old == self.versions[0] else self.versions[0]
        day = self.day.isoformat()
        self.day += dt.timedelta(days=1)
        return day, str(old), new

    def _start(self, day: str, old: str, new: str, kill_at: int, log: str = "") -> Any:
        proc = self.ctx.Process(
            target=child, args=(str(self.home.root), self.env, day, old, new, kill_at, log)
        )
        proc.start()
        return proc

    def writes(self, rounds: int = 3) -> list[str]:
        """Complete promotions (no kill), back and forth; the writes of the last, in order.

        The first promotion to each version writes more (DVC caches its output once), so
        the kill points are taken from a promotion in the steady state the trials run in.
        """
        log = str(self.home.root / "writes.json")
        for _ in range(rounds):
            day, old, new = self._next()
            proc = self._start(day, old, new, 0, log)
            proc.join(300)
            if proc.exitcode != 0:
                raise RuntimeError(f"an uninterrupted promotion failed with exit {proc.exitcode}")
        return list(json.loads(Path(log).read_text()))

    def trial(self, how: str, kill_at: int = 0, delay: float | None = None) -> Trial:
        from lifecycle_assets.registry.registry import Registry

        day, old, new = self._next()
        registry = Registry(self.home, self.home.config().problem.name)
        moves_before = len([e for e in registry.history() if e["alias"] == "production"])
        t = Trial(day, old, new, how)
        proc = self._start(day, old, new, kill_at)
        if delay is not None:
            proc.join(delay)
            if proc.is_alive():
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    # still starting, before it made its own process group: it alone
                    proc.kill()
        proc.join(300)
        t.exitcode = proc.exitcode
        if kill_at and t.exitcode != -signal.SIGKILL:
            t.problems.append(f"child exited {t.exitcode}, expected SIGKILL at write {kill_at}")
        t.alias_after_kill, problems = check_consistent(self.home, self.versions)
        t.problems += problems
        if self.url is not None:
            t.serving_after_kill = serving_version(self.url, t.alias_after_kill)
            if t.serving_after_kill != t.alias_after_kill:
                t.problems.append(
                    f"service answers {t.serving_after_kill}, alias is {t.alias_after_kill}"
                )
        # Recovery: the promotion runs again (a retried run) and must finish cleanly.
        try:
            promote(str(self.home.root), dt.date.fromisoformat(day), old, new)
        except Exception as err:
            t.problems.append(f"rerun after the kill failed: {err!r}")
        else:
            production, problems = check_consistent(self.home, self.versions, fsck=False)
            t.problems += [f"after rerun: {p}" for p in problems]
            moves = [e for e in registry.history() if e["alias"] == "production"]
            if production != new or len(moves) != moves_before + 1:
                t.problems.append(
                    f"after rerun: production {production}, {len(moves) - moves_before} new "
                    f"moves (expected {new}, 1)"
                )
            dirty = subprocess.run(
                ["git", "-C", str(self.home.repo), "status", "--porcelain", "--", "registry"],
                capture_output=True, text=True, env={**os.environ, **self.home.tool_env()},
            ).stdout.strip()  # fmt: skip
            if dirty:
                t.problems.append(f"after rerun: registry/ not committed: {dirty}")
        self.trials.append(t)
        return t

    def run(
        self, kills: int, random_kills: int, seed: int, always: tuple[int, ...] = ()
    ) -> list[str]:
        """`kills` kills at writes spread over the whole promotion (every write once when
        `kills` ≥ the number of writes, then again evenly; `always` are included), plus
        `random_kills` random process-group kills. Returns the writes of a promotion."""
        writes = self.writes()
        if kills >= len(writes):
            points = sorted(1 + (i % len(writes)) for i in range(kills))
        else:
            others = [k for k in range(1, len(writes) + 1) if k not in always]
            picks = spread(len(others), kills - len(always)) if kills > len(always) else []
            points = sorted({*always, *(others[i - 1] for i in picks)})
        started = time.perf_counter()
        for k in points:
            self.trial(f"before write {k}/{len(writes)}: {writes[k - 1]}", kill_at=k)
        per = (time.perf_counter() - started) / max(len(points), 1)
        rng = random.Random(seed)
        for _ in range(random_kills):
            delay = rng.uniform(0.05, max(per, 0.5))
            self.trial(f"random group kill after {delay:.2f} s", delay=delay)
        return writes


def stage_decided_day(home: Any, day: dt.date, frame: Any, candidate: Any) -> None:
    """What the `production_model` stage depends on, versioned as the loop leaves it before
    a release: the day's splits and challenger (`stage_day`), and a decision."""
    from lifecycle_assets.decision import write_reports
    from lifecycle_assets.defs.resources.home import LifecycleHomeResource
    from lifecycle_assets.defs.resources.versioning import VersioningResource
    from lifecycle_assets_tests.promotion.helpers import stage_day

    stage_day(home, day, frame, candidate)
    VersioningResource(home=LifecycleHomeResource(workdir=str(home.root))).publish(
        "validation_report",
        day.isoformat(),
        "reports/validation.json",
        lambda path: write_reports(path, {"decision": "PASS"}),
        message="decision for the kill test",
        tag=None,
    )


def setup_home(root: Path) -> tuple[Any, tuple[str, str]]:
    """A home with two registered models (v1 in production) and day inputs in the repo."""
    from lifecycle_assets.defs.resources.home import LifecycleHomeResource
    from lifecycle_assets.defs.resources.versioning import VersioningResource
    from lifecycle_assets.home_setup import init_home
    from lifecycle_assets.registry.registry import Registry, record_served
    from lifecycle_assets_tests.promotion.helpers import (
        fit_model,
        labelled_frame,
        register,
    )

    home = init_home(root)
    frame = labelled_frame(2000, seed=3)
    register(home, fit_model(home, frame, "v1", steps=50), "v1")
    register(home, fit_model(home, frame, "v2", steps=60, seed=1), "v2")
    registry = Registry(home, home.config().problem.name)
    day = dt.date(2026, 6, 10)
    stage_decided_day(home, day, frame, registry.load("v2"))
    when = dt.datetime(2026, 6, 10, 1, tzinfo=dt.UTC)
    registry.move_alias("production", "v1", actor="setup", reason="setup", when=when)
    record_served(home, day, "v1")
    VersioningResource(home=LifecycleHomeResource(workdir=str(root))).commit_paths(
        "registry set up", ["registry"]
    )
    return home, ("v1", "v2")


def spread(total: int, count: int) -> list[int]:
    """`count` kill points spread evenly over writes 1..total (all of them if count ≥ total)."""
    if count >= total:
        return list(range(1, total + 1))
    return sorted({1 + round(i * (total - 1) / (count - 1)) for i in range(count)})


def main() -> int:
    import tempfile

    from lifecycle_assets.serving.process import ServiceProcess

    parser = argparse.ArgumentParser(description="kill -9 at every write of a promotion")
    parser.add_argument("--trials", type=int, default=60, help="kills in all (≥ 50)")
    parser.add_argument("--random", type=int, default=10, help="of which random group kills")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-service", action="store_true")
    parser.add_argument("--workers", type=int, default=2, help="bentoml serve workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kill-") as tmp:
        home, versions = setup_home(Path(tmp) / "home")
        os.environ.update(home.tool_env())
        service = None
        if not args.no_service:
            service = ServiceProcess(
                home, workers=args.workers, extra_env={"LIFECYCLE_FEEDBACK_TOKEN": "kill-test"}
            ).start()
        try:
            harness = Harness(home, service.url if service else None, versions)
            writes = harness.run(args.trials - args.random, args.random, args.seed)
        finally:
            if service is not None:
                service.stop()
        bad = [t for t in harness.trials if t.problems]
        covered = len({t.how.split(":")[0] for t in harness.trials if t.how.startswith("before")})
        print(f"{len(writes)} writes in a promotion: {writes}")
        print(
            f"{len(harness.trials)} kills ({covered} distinct writes, {args.random} random group "
            f"kills): {len(bad)} left an inconsistent state"
        )
        states = {}
        for t in harness.trials:
            states[t.alias_after_kill] = states.get(t.alias_after_kill, 0) + 1
        print(f"production right after the kill: {states} (old or new, never anything else)")
        for t in bad:
            print(f"  {t.day} {t.how}: {t.problems}")
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
