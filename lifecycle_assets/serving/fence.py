"""The version fence: several service workers switch models together.

Each worker follows the registry alias on its own and loads a new version in the background.
Loaded is not served: a worker that has the new version loaded and warmed up marks itself
ready (`<home>/serving/ready/<version>/<pid>`); when every live worker is ready (or after
`FENCE_TIMEOUT_S`, so one stuck worker cannot hold a promotion back forever) a worker
writes the new version into `<home>/serving/fence.json` (atomic replace). Every request
`stat`s that file (a microsecond) and answers with the version it names, which every worker
already holds — so once any response carries the new version, no request that arrives after
it gets the old one, whichever worker takes it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from lifecycle_assets.files import Signature, signature, write_atomic

WORKERS_ENV = "LIFECYCLE_SERVING_WORKERS"
FENCE_TIMEOUT_S = 30.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class VersionFence:
    """The version every worker answers with; see the module docstring."""

    def __init__(self, directory: Path, workers: int = 1, worker_id: int | None = None) -> None:
        self.dir = Path(directory)
        self.path = self.dir / "fence.json"
        self.workers = max(int(workers), 1)
        self.worker_id = worker_id if worker_id is not None else os.getpid()
        self._sig: Signature | tuple[()] = ()
        self._exists = False
        self._version: str | None = None

    @classmethod
    def for_home(cls, root: Path) -> VersionFence:
        """The home's fence; the worker count from `LIFECYCLE_SERVING_WORKERS` (default 1)."""
        return cls(Path(root) / "serving", workers=int(os.environ.get(WORKERS_ENV) or 1))

    def current(self) -> tuple[bool, str | None]:
        """(whether a fence is set, its version): one `stat` when nothing changed."""
        sig = signature(self.path)
        if sig != self._sig:
            if sig is None:
                self._exists, self._version = False, None
            else:
                try:
                    version = json.loads(self.path.read_text())["version"]
                except (OSError, ValueError, KeyError, TypeError):
                    return self._exists, self._version  # mid-replace: look again next time
                self._exists, self._version = True, version
            self._sig = sig
        return self._exists, self._version

    def mark_ready(self, version: str) -> None:
        folder = self.dir / "ready" / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / str(self.worker_id)).touch()

    def unmark_ready(self, version: str) -> None:
        (self.dir / "ready" / version / str(self.worker_id)).unlink(missing_ok=True)

    def ready_count(self, version: str) -> int:
        folder = self.dir / "ready" / version
        if not folder.is_dir():
            return 0
        ids = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
        # markers of workers that died (restarted workers have new pids) do not count
        return sum(1 for i in ids if i == self.worker_id or _alive(i))

    def publish(self, version: str | None) -> None:
        write_atomic(
            self.path, json.dumps({"version": version, "by": self.worker_id, "at": time.time()})
        )
