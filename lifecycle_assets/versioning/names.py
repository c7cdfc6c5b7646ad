"""Names the versioned repo accepts: git-safe tags and stage names, repo-relative paths.

Anything that becomes a git ref or a path inside the repo passes here first, so a name from
a CLI argument or a config can never reach outside the repo, into `.git`, or an option.
"""

from __future__ import annotations

import re

from lifecycle_assets.versioning.errors import VersioningError

# Letters, digits and `._/-`; first character a letter, digit or `_` (never `-`, `/` or `.`).
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}")
# Repo-relative paths (may hold dot-files such as `datasets/.gitignore`).
_PATH_RE = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")


def validate_name(name: str, kind: str = "tag", *, prefix: bool = False) -> str:
    """A git-safe tag or stage name: letters, digits, `._/-`; no `..`, no leading `-`/`/`/`.`.

    With `prefix=True` a trailing `/` (a tag prefix such as `model/`) and the empty string pass.
    """
    if not isinstance(name, str):
        raise VersioningError(f"invalid {kind} {name!r}: expected a string")
    if prefix and name == "":
        return name
    body = name[:-1] if prefix and name.endswith("/") else name
    parts = body.split("/")
    if (
        not _NAME_RE.fullmatch(body)
        or ".." in body
        or body.endswith((".", "/", ".lock"))
        or any(part == "" or part.startswith(".") or part.endswith(".lock") for part in parts)
    ):
        raise VersioningError(
            f"invalid {kind} {name!r}: use letters, digits and `._/-`, starting with a letter, "
            "digit or `_`, with no `..`, `//`, hidden components or `.lock` suffix"
        )
    return name


def validate_path(path: str, kind: str = "path") -> str:
    """A path relative to the repo root, inside it, not into `.git`."""
    norm = path.rstrip("/")
    parts = norm.split("/")
    if (
        not _PATH_RE.fullmatch(norm)
        or any(part in (".", "..") for part in parts)
        or parts[0] == ".git"
    ):
        raise VersioningError(
            f"invalid {kind} {path!r}: give a path relative to the repo root, "
            "with no `..` components and not inside `.git`"
        )
    return norm
