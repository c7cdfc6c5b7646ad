"""Who may read the versioned data: owner-only permissions under a local directory."""

from __future__ import annotations

import os
from pathlib import Path


def restrict_to_owner(root: Path) -> None:
    """Strip group/other bits under `root` (DVC makes cache files 0444 whatever the umask).

    An object-storage remote is restricted by its bucket policy instead (docs/data.md).
    """
    if not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, n) for n in (*dirs, *files))]:
            mode = os.lstat(name).st_mode
            if mode & 0o077 and not os.path.islink(name):
                os.chmod(name, mode & 0o700)
