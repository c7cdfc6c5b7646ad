"""DVC through its Python API, contained: 0.03-0.25 s a call here, against about 1.3 s for each
`dvc` CLI process (most of it start-up). DVC reads its environment (`DVC_SITE_CACHE_DIR`,
`DVC_GLOBAL_CONFIG_DIR`) when called, and parts of it resolve paths against the current
directory, so each call runs under a process-wide lock with the repo as cwd and the repo's
environment applied to `os.environ`, both restored afterwards; other threads of the same
process must not depend on the cwd meanwhile."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lifecycle_assets.versioning.git import GIT_LOCATION_VARS

# cwd and os.environ are process-wide: one DVC call at a time in this process.
_DVC_API_LOCK = threading.RLock()


@contextlib.contextmanager
def dvc_api(path: Path, overrides: dict[str, str]) -> Iterator[Any]:
    """DVC's `Repo` class, with `path` as cwd and `overrides` in os.environ (restored after)."""
    with _DVC_API_LOCK:
        saved_env = {key: os.environ.get(key) for key in (*overrides, *GIT_LOCATION_VARS)}
        try:
            saved_cwd: str | None = os.getcwd()
        except FileNotFoundError:
            saved_cwd = None
        Repo = import_dvc_repo()

        dvc_logger = logging.getLogger("dvc")
        saved_level = dvc_logger.level
        try:
            for key in GIT_LOCATION_VARS:
                os.environ.pop(key, None)
            os.environ.update(overrides)
            # DVC's own INFO chatter ("Updating lock file ...") is CLI output, not ours.
            dvc_logger.setLevel(logging.WARNING)
            if path.is_dir():
                os.chdir(path)
            yield Repo
        finally:
            dvc_logger.setLevel(saved_level)
            if saved_cwd is not None:
                with contextlib.suppress(OSError):
                    os.chdir(saved_cwd)
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def import_dvc_repo() -> Any:
    """`dvc.repo.Repo`, imported without keeping dvc's import-time side effect on sys.std*.

    `import dvc` runs `colorama.init()`, which swaps sys.stdout/sys.stderr for ANSI-stripping
    wrappers when they are not terminals; this process's streams are not dvc's to replace.
    It also sets the `dvc` logger to INFO, which `dvc_api` quiets per call.
    """
    if "dvc.repo" not in sys.modules:
        stdout, stderr = sys.stdout, sys.stderr
        try:
            import dvc.repo  # noqa: F401
        finally:
            sys.stdout, sys.stderr = stdout, stderr
    from dvc.repo import Repo

    return Repo


class _UnversionedOutputs(logging.Filter):
    """Drops DVC's "Output ... is missing version info" warning. `dvc gc --all-tags` gives
    it for every tagged revision whose dvc.lock has no entry yet for a stage that ran later
    (a dataset tag made before that day's model stages): expected, one line per revision
    and output (dozens in a month-old home), and nothing to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is missing version info" not in record.getMessage()


@contextlib.contextmanager
def without_unversioned_output_warnings() -> Iterator[None]:
    import dvc.output

    dvc_logger = logging.getLogger("dvc")
    quiet = _UnversionedOutputs()
    # the logger that gives it (DVC's outputs module), and DVC's own handlers
    targets: list[logging.Filterer] = [dvc_logger, *dvc_logger.handlers]
    source = getattr(dvc.output, "logger", None)
    if isinstance(source, logging.Logger):
        targets.append(source)
    for target in targets:
        target.addFilter(quiet)
    try:
        yield
    finally:
        for target in targets:
            target.removeFilter(quiet)
