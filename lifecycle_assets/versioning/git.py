"""The git side of the home's repo: every git subprocess runs here, in an environment that
keeps git's state and config inside the home and can never reach another repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from lifecycle_assets.versioning.errors import VersioningError, one_line
from lifecycle_assets.versioning.names import validate_name, validate_path

# Variables that would point git at some other repository (e.g. inside a git hook).
GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
_IDENTITY_DEFAULTS = {
    "GIT_AUTHOR_NAME": "lifecycle",
    "GIT_AUTHOR_EMAIL": "lifecycle@localhost",
    "GIT_COMMITTER_NAME": "lifecycle",
    "GIT_COMMITTER_EMAIL": "lifecycle@localhost",
}
_LOG_FIELDS = ("sha", "author", "email", "date", "refs", "message")


def git_overrides(path: Path, env: dict[str, str] | None) -> dict[str, str]:
    """What the repo's tools run with on top of the process environment: `env`, git's state
    and config inside the home (no system config; a "global" config file beside the repo,
    which need not exist, instead of the user's ~/.gitconfig), no prompt, and a committer
    identity when none is set."""
    overrides = dict(env or {})
    overrides.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    overrides.setdefault("GIT_CONFIG_GLOBAL", str(path.parent / "gitconfig"))
    overrides.setdefault("GIT_TERMINAL_PROMPT", "0")
    overrides.setdefault("DVC_NO_ANALYTICS", "1")
    for key, value in _IDENTITY_DEFAULTS.items():
        overrides.setdefault(key, os.environ.get(key, value))
    return overrides


class GitRepo:
    """git in one repository (`path`), run as a subprocess with `overrides` applied to the
    process environment less the variables that point git elsewhere."""

    def __init__(self, path: Path, overrides: dict[str, str]) -> None:
        self.path = path
        self.env = {k: v for k, v in os.environ.items() if k not in GIT_LOCATION_VARS}
        self.env.update(overrides)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`git -C <repo> ARGS` in the repo's environment; a failure raises with git's message
        unless `check` is off."""
        try:
            result = subprocess.run(
                ["git", "-C", str(self.path), *args],
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError as exc:
            raise VersioningError("git is not installed or not on PATH: install git") from exc
        if check and result.returncode != 0:
            detail = one_line(Exception(result.stderr.strip() or result.stdout.strip()))
            raise VersioningError(f"git {args[0]} failed in {self.path}: {detail}")
        return result

    def head(self) -> str | None:
        """The commit HEAD names, None before the first commit."""
        result = self.run("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False)
        return result.stdout.strip() or None

    def resolve_rev(self, rev: str) -> str:
        """The commit a tag or commit names; unknown revisions are refused, naming the repo."""
        validate_name(rev, "revision")
        result = self.run("rev-parse", "-q", "--verify", f"{rev}^{{commit}}", check=False)
        sha = result.stdout.strip()
        if not sha:
            raise VersioningError(
                f"unknown revision {rev!r} in {self.path}: give an existing tag or commit "
                f"(`git -C {self.path} tag -l` lists the versions)"
            )
        return sha

    def has_file(self, commit: str, path: str) -> bool:
        return self.run("cat-file", "-e", f"{commit}:{path}", check=False).returncode == 0

    def is_tracked(self, path: str) -> bool:
        return bool(self.run("ls-files", "--", path).stdout.strip())

    def has_staged_changes(self) -> bool:
        if self.head() is None:
            return bool(self.run("ls-files", "--cached").stdout.strip())
        return self.run("diff", "--cached", "--quiet", check=False).returncode != 0

    def changed_gitignores(self) -> list[str]:
        """The `.gitignore` files DVC added or changed, not yet committed."""
        out = self.run(
            "status", "--porcelain", "-z", "--untracked-files=all", "--", "*.gitignore"
        ).stdout
        paths = []
        for record in out.split("\0"):
            if len(record) > 3 and record[3:].endswith(".gitignore"):
                paths.append(record[3:])
        return paths

    def ensure(self) -> None:
        """A git repository at this path (`git init` if there is none *here*: a repository
        further up, such as the project's own, is never used)."""
        if (self.path / ".git").is_dir():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self.run("init", "-q")

    def file_at(self, tag: str, path: str) -> str | None:
        """The text of `path` as tag `tag` recorded it; None when either does not exist
        (or this is not a git repository)."""
        validate_name(tag, "tag")
        if not (self.path / ".git").is_dir():
            return None
        result = self.run("show", f"refs/tags/{tag}:{validate_path(path)}", check=False)
        return result.stdout if result.returncode == 0 else None

    def tag_commit(self, tag: str) -> str | None:
        """The commit a tag names, or None when there is no such tag."""
        validate_name(tag, "tag")
        result = self.run("rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}", check=False)
        return result.stdout.strip() or None

    def tags(self, prefix: str = "") -> list[str]:
        """Tags starting with `prefix`, in version order (`model/v9` before `model/v10`)."""
        validate_name(prefix, "tag prefix", prefix=True)
        out = self.run("tag", "-l", "--sort=version:refname", "--", f"{prefix}*").stdout
        return out.split()

    def log(self, n: int = 50) -> list[dict[str, Any]]:
        """The newest `n` commits: sha, author, email, date (ISO), tags, message."""
        if self.head() is None:
            return []
        fmt = "%x1f".join(("%H", "%an", "%ae", "%aI", "%D", "%B")) + "%x1e"
        out = self.run("log", f"-n{int(n)}", f"--format={fmt}").stdout
        entries = []
        for record in out.split("\x1e"):
            if not record.strip():
                continue
            entry: dict[str, Any] = dict(
                zip(_LOG_FIELDS, record.strip("\n").split("\x1f"), strict=True)
            )
            refs = [r.strip() for r in entry.pop("refs").split(",") if r.strip()]
            entry["tags"] = [r.removeprefix("tag: ") for r in refs if r.startswith("tag: ")]
            entry["message"] = entry["message"].strip()
            entries.append(entry)
        return entries

    def tag_info(self, prefix: str = "") -> list[dict[str, Any]]:
        """Tags starting with `prefix` (version order): tag, commit, date (ISO), message."""
        validate_name(prefix, "tag prefix", prefix=True)
        fmt = "%(refname:short)%1f%(*objectname)%(objectname)%1f%(creatordate:iso-strict)%1f%(contents:subject)"
        out = self.run(
            "for-each-ref", "--sort=version:refname", f"--format={fmt}", f"refs/tags/{prefix}"
        ).stdout
        rows = []
        for line in out.splitlines():
            tag, commit, date, subject = line.split("\x1f", 3)
            if not tag.startswith(prefix):
                continue
            # annotated tags print the tagged commit, then the tag object: keep the commit
            rows.append({"tag": tag, "commit": commit[:40], "date": date, "message": subject})
        return rows
