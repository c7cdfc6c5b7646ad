"""One writer at a time per home repo: a lock across processes (flock on a file in the
repo's `.git`), re-entrant within a process, under which everything is written owner-only."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Cross-process repo lock (flock), re-entrant within this process: {lock path: [lock, fd, depth]}.
_REPO_LOCKS: dict[str, list[Any]] = {}
_REPO_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def repo_lock(path: Path) -> Iterator[None]:
    """Hold the lock file `path` (created owner-only) exclusively: the outermost holder in
    this process takes the flock and sets the umask to 0o077, restored when it leaves."""
    lock_path = str(path)
    with _REPO_LOCKS_GUARD:
        entry = _REPO_LOCKS.setdefault(lock_path, [threading.RLock(), None, 0])
    rlock: threading.RLock = entry[0]
    with rlock:
        if entry[2] == 0:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            entry[1] = fd
            # Owner-only files for everything written under the lock: the workspace, the
            # DVC cache, git objects and a local remote (docs/data.md, Access). The umask is
            # process-wide; it is restored when the outermost holder leaves.
            entry.append(os.umask(0o077))
        entry[2] += 1
        try:
            yield
        finally:
            entry[2] -= 1
            if entry[2] == 0:
                os.umask(entry.pop())
                fd = entry[1]
                entry[1] = None
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
