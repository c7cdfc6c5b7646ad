"""Code and environment versions recorded with every dataset, model and decision."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from typing import Any

from lifecycle_assets.home import project_root


@functools.cache
def code_version() -> dict[str, Any]:
    """The project's git commit, whether its tree was dirty, and the lockfile's hash."""
    root = project_root()

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    lock = root / "uv.lock"
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "code_commit": git("rev-parse", "HEAD"),
        "code_dirty": bool(status) if status is not None else None,
        "lockfile_sha256": hashlib.sha256(lock.read_bytes()).hexdigest()
        if lock.is_file()
        else None,
    }
