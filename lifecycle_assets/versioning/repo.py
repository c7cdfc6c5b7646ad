"""The home's git + DVC repo: DVC-native dataset and model versions (docs/architecture.md).

A version is DVC-tracked data (stage outputs recorded by `dvc commit` into `dvc.lock` and the
cache, pushed to the remote) plus a git commit, and usually a tag, of the DVC metafiles in the
home's own repo — DVC's "data registry" pattern. The project's git history is never written.

Layout of the repo (cwd of every `dvc.yaml` stage; the home is its parent)::

    dvc.yaml                 copied from the project by `init`
    params.yaml              per-stage params: {train_split: {day: "YYYY-MM-DD"}, ...}
    dvc.lock                 hashes of each stage's deps and outs
    datasets/train_split/    stage outputs (directories, DVC-cached, git-ignored)
    datasets/test_split/
    models/candidate/
    models/production/
    reports/validation.json  metrics, `cache: false`, git-tracked
    registry/                aliases and history, git-tracked (written by the registry)

Git runs as a subprocess (`versioning/git.py`); DVC through its Python API, each call with
the repo as cwd and its environment applied (`versioning/dvc_api.py`); writers hold one lock
per repo across processes (`versioning/lock.py`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import yaml

from lifecycle_assets.files import write_atomic
from lifecycle_assets.versioning.access import restrict_to_owner
from lifecycle_assets.versioning.dvc_api import dvc_api, without_unversioned_output_warnings
from lifecycle_assets.versioning.errors import VersioningError, one_line
from lifecycle_assets.versioning.git import GitRepo, git_overrides
from lifecycle_assets.versioning.lock import repo_lock
from lifecycle_assets.versioning.names import validate_name, validate_path
from lifecycle_assets.versioning.pipeline import (
    DVC_LOCK,
    DVC_YAML,
    PARAMS_YAML,
    dump_yaml,
    load_yaml,
    stage_outs,
    stage_param_keys,
    yaml_value,
)

if TYPE_CHECKING:
    from lifecycle_assets.home import LifecycleHome

REMOTE_NAME = "storage"
DEFAULT_BRANCH = "main"

_REPO_CONFIG: dict[str, dict[str, Any]] = {
    "core": {"autostage": False, "analytics": False, "check_update": False}
}


def _is_local_url(url: str) -> bool:
    parsed = urlparse(url)
    # Windows drive letters parse as a one-letter scheme.
    return parsed.scheme in ("", "file") or len(parsed.scheme) == 1


def _local_path(url: str) -> Path:
    parsed = urlparse(url)
    return Path(parsed.path if parsed.scheme == "file" else url).expanduser()


class VersionedRepo:
    """The git + DVC repo of a lifecycle home (plain class: no Dagster)."""

    def __init__(self, path: Path, env: dict[str, str] | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        self._overrides = git_overrides(self.path, env)
        self.git = GitRepo(self.path, self._overrides)

    @classmethod
    def of(cls, home: LifecycleHome) -> VersionedRepo:
        """The repo of a lifecycle home, with the home's tool environment."""
        return cls(home.repo, env=home.tool_env())

    def __repr__(self) -> str:
        return f"VersionedRepo({str(self.path)!r})"

    # --- setup ---------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        path: Path,
        remote_url: str,
        dvc_yaml: Path,
        env: dict[str, str] | None = None,
        remote_options: Mapping[str, Any] | None = None,
    ) -> VersionedRepo:
        """Create or bring up to date the repo; a second run with the same inputs changes nothing.

        `remote_options` are DVC settings of the remote (`endpointurl`, `region` …)."""
        dvc_yaml = Path(dvc_yaml)
        if not dvc_yaml.is_file():
            raise VersioningError(f"no dvc.yaml at {dvc_yaml}: pass the project's dvc.yaml")
        pipeline = load_yaml(dvc_yaml)
        if not isinstance(pipeline, dict) or not isinstance(pipeline.get("stages"), dict):
            raise VersioningError(f"{dvc_yaml} declares no `stages:`: fix the project's dvc.yaml")
        repo = cls(path, env)
        try:
            repo.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VersioningError(
                f"cannot create the repo at {repo.path}: {one_line(exc)}"
            ) from exc
        if not (repo.path / ".git").exists():
            repo.git.run("init", "-q", "-b", DEFAULT_BRANCH)
        with repo.locked():
            remote = repo._prepare_remote(remote_url)
            repo._dvc_init(remote, dict(remote_options or {}))
            _copy_if_changed(dvc_yaml, repo.path / DVC_YAML)
            repo._ensure_params(pipeline)
            repo._ensure_gitignores(pipeline)
            repo.git.run(
                "add",
                "-A",
                "--",
                ".dvc/config",
                ".dvc/.gitignore",
                ".dvcignore",
                DVC_YAML,
                PARAMS_YAML,
                *repo.git.changed_gitignores(),
            )
            if repo.git.has_staged_changes():
                message = (
                    "lifecycle: initialise the versioned repo"
                    if repo.git.head() is None
                    else "lifecycle: update the versioned repo's configuration"
                )
                repo.git.run("commit", "-q", "--no-verify", "-m", message)
        return repo

    def _prepare_remote(self, remote_url: str) -> str:
        if not remote_url:
            raise VersioningError(
                "empty DVC remote URL: set versioning.dvc_remote in lifecycle.yaml"
            )
        if not _is_local_url(remote_url):
            return remote_url
        local = _local_path(remote_url)
        if not local.is_absolute():
            # DVC would read a relative path against .dvc/; the caller means its own cwd.
            local = local.resolve()
        if not local.exists():
            try:
                local.mkdir(parents=True, mode=0o700)
                local.chmod(0o700)  # mkdir's mode is masked by the umask
            except OSError as exc:
                raise VersioningError(
                    f"cannot create the DVC remote '{REMOTE_NAME}' at {local}: {one_line(exc)}; "
                    "fix the path/permissions or set versioning.dvc_remote in lifecycle.yaml"
                ) from exc
        elif not local.is_dir():
            raise VersioningError(
                f"the DVC remote '{REMOTE_NAME}' at {local} is not a directory; "
                "fix the path or set versioning.dvc_remote in lifecycle.yaml"
            )
        return str(local)

    def check_remote(self, remote_url: str) -> None:
        """Refuse to work with a repo whose DVC remote is not `remote_url` (the home's
        config's): a home copied from another keeps the original's remote, and a push or a
        `dvc gc -c` from the copy would write to or collect that remote."""
        if _is_local_url(remote_url):
            if not _local_path(remote_url).is_absolute():
                return  # resolved against the cwd of `lifecycle init`: nothing to compare
            wanted = str(_local_path(remote_url).resolve())
        else:
            wanted = remote_url
        actual = self.remote_url()
        if actual != wanted:
            raise VersioningError(
                f"the repo at {self.path} uses the DVC remote {actual}, but its home's config "
                f"means {wanted} (a home copied from another?): run `lifecycle init --workdir "
                f"{self.path.parent}` to point it at {wanted}"
            )

    def _dvc_init(self, remote_url: str, remote_options: dict[str, Any]) -> None:
        with self._dvc_api() as Repo:
            if not (self.path / ".dvc").is_dir():
                try:
                    Repo.init(str(self.path)).close()
                except Exception as exc:
                    raise VersioningError(
                        f"dvc init failed in {self.path}: {one_line(exc)}"
                    ) from exc
            from dvc.config import Config

            config = Config(dvc_dir=str(self.path / ".dvc"), validate=False)
            current = config.load_one("repo")
            wanted = {
                **_REPO_CONFIG,
                "core": {**_REPO_CONFIG["core"], "remote": REMOTE_NAME},
                "remote": {REMOTE_NAME: {**remote_options, "url": remote_url}},
            }
            if not _config_contains(current, wanted):
                with config.edit("repo") as conf:
                    for section, values in wanted.items():
                        for key, value in values.items():
                            if isinstance(value, dict):
                                conf[section].setdefault(key, {}).update(value)
                            else:
                                conf[section][key] = value

    def _ensure_params(self, pipeline: dict[str, Any]) -> None:
        path = self.path / PARAMS_YAML
        params = load_yaml(path) or {}
        if not isinstance(params, dict):
            raise VersioningError(f"{path} is not a mapping: fix or delete it")
        changed = not path.exists()
        for dotted in stage_param_keys(pipeline):
            node = params
            *parents, leaf = dotted.split(".")
            for key in parents:
                if not isinstance(node.get(key), dict):
                    node[key] = {}
                    changed = True
                node = node[key]
            if leaf not in node:
                # `null` until the stage first records a version; dvc.yaml needs the key to parse.
                node[leaf] = None
                changed = True
        if changed:
            write_atomic(path, dump_yaml(params))

    def _ensure_gitignores(self, pipeline: dict[str, Any]) -> None:
        # What `dvc commit` would write: each cached out ignored in its parent's .gitignore.
        for outs in stage_outs(pipeline).values():
            for out, cached in outs:
                if not cached:
                    continue
                parent, _, name = out.rstrip("/").rpartition("/")
                ignore = self.path / parent / ".gitignore"
                lines = ignore.read_text().splitlines() if ignore.exists() else []
                entry = f"/{name}"
                if entry not in lines:
                    ignore.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(ignore, "".join(f"{line}\n" for line in [*lines, entry]))

    # --- params, commit, version ---------------------------------------------------------

    def stages(self) -> list[str]:
        pipeline = load_yaml(self.path / DVC_YAML) or {}
        return list((pipeline.get("stages") or {}).keys())

    def _check_stage(self, stage: str) -> str:
        validate_name(stage, "stage name")
        known = self.stages()
        if stage not in known:
            raise VersioningError(
                f"unknown stage {stage!r} in {self.path / DVC_YAML}: expected one of "
                f"{', '.join(known)}"
            )
        return stage

    def set_params(self, stage: str, **values: Any) -> None:
        """Update `params.yaml[stage]` (e.g. `set_params("train_split", day="2026-06-10")`)."""
        self._check_stage(stage)
        with self.locked():
            path = self.path / PARAMS_YAML
            params = load_yaml(path) or {}
            section = params.get(stage)
            if not isinstance(section, dict):
                section = params[stage] = {}
            new = {key: yaml_value(value) for key, value in values.items()}
            if any(section.get(key, object()) != value for key, value in new.items()):
                section.update(new)
                write_atomic(path, dump_yaml(params))

    def commit_stage(self, stage: str) -> dict[str, str]:
        """`dvc commit -f` one stage: record its outs in dvc.lock and the cache.

        Returns {out path: md5} as written to dvc.lock (directories end in `.dir`).
        """
        self._check_stage(stage)
        with self.locked(), self._dvc_api() as Repo:
            try:
                with Repo(str(self.path)) as dvc:
                    # relink=False: with the default copy link type a relink re-copies the
                    # cache into the workspace, doubling the I/O for nothing.
                    committed = dvc.commit(f"{DVC_YAML}:{stage}", force=True, relink=False)
            except Exception as exc:  # DvcException, OSError (permissions, disk full)...
                hint = (
                    "materialise the asset first"
                    if "does not exist" in str(exc)
                    else "check the stage's outputs and dvc.yaml"
                )
                raise VersioningError(
                    f"dvc commit of stage '{stage}' failed: {one_line(exc)}; {hint}"
                ) from exc
            restrict_to_owner(self.path / ".dvc" / "cache")
            hashes = {
                str(out.def_path): str(out.hash_info.value)
                for committed_stage in committed
                for out in committed_stage.outs
            }
            # Outputs DVC does not cache (metrics with `cache: false`) are versioned by git:
            # stage them so the version's commit carries them.
            pipeline = load_yaml(self.path / DVC_YAML) or {}
            uncached = [p for p, cached in stage_outs(pipeline).get(stage, []) if not cached]
            if uncached:
                self.git.run("add", "-A", "--", *uncached)
            return hashes

    def save_version(
        self, message: str, tag: str | None = None, extra_paths: Sequence[str] = ()
    ) -> str:
        """Commit dvc.lock, params.yaml, changed .gitignore files and `extra_paths`; tag it.

        Skips the commit when nothing changed. A tag is immutable: re-saving it is a no-op
        when it already names the resulting commit, an error otherwise. Returns the commit sha.
        """
        if tag is not None:
            validate_name(tag, "tag")
        if not message.strip():
            raise VersioningError("empty version message: say what the version is")
        extras = [validate_path(p, "extra path") for p in extra_paths]
        with self.locked():
            paths = [
                p
                for p in (DVC_LOCK, PARAMS_YAML, *extras)
                if (self.path / p).exists() or self.git.is_tracked(p)
            ]
            missing = [p for p in extras if p not in paths]
            if missing:
                raise VersioningError(
                    f"cannot version {', '.join(missing)}: not in {self.path}; write them first"
                )
            paths.extend(self.git.changed_gitignores())
            if paths:
                self.git.run("add", "-A", "--", *paths)
            staged = self.git.has_staged_changes()
            existing = self.git.tag_commit(tag) if tag is not None else None
            if existing is not None and (staged or existing != self.git.head()):
                # Refused before committing: a refused version leaves no commit behind (its
                # changes stay in the working tree, unstaged, as they were written).
                if staged:
                    self.git.run("reset", "-q", "--", *paths)
                raise VersioningError(
                    f"tag {tag!r} already names commit {existing[:12]}: versions are "
                    "immutable, use a new tag"
                )
            if staged:
                self.git.run("commit", "-q", "--no-verify", "-m", message)
            head = self.git.head()
            if head is None:
                raise VersioningError(f"{self.path} has no commits: run `lifecycle init` first")
            if tag is not None and existing is None:
                self.git.run("tag", "-a", tag, "-m", message, head)
            return head

    def push(self, stages: Sequence[str] = ()) -> int:
        """`dvc push` cached outputs (all stages, or `stages`) to the default remote.

        Returns the number of files transferred.
        """
        targets = [f"{DVC_YAML}:{self._check_stage(s)}" for s in stages] or None
        url = self.remote_url()
        if _is_local_url(url):
            local = _local_path(url)
            if not local.is_dir() or not os.access(local, os.W_OK | os.X_OK):
                why = "not a directory" if local.exists() else "the directory does not exist"
                raise self._unreachable(url, why)
        with self.locked(), self._dvc_api() as Repo:
            try:
                with Repo(str(self.path)) as dvc:
                    pushed = int(dvc.push(targets=targets))
            except Exception as exc:  # DvcException, OSError, ImportError (missing dvc-s3)...
                raise self._unreachable(url, one_line(exc)) from exc
            # push re-protects the cache objects it read (0444): restrict both ends again
            restrict_to_owner(self.path / ".dvc" / "cache")
            if _is_local_url(url):
                restrict_to_owner(_local_path(url))
            return pushed

    def _unreachable(self, url: str, why: str) -> VersioningError:
        return VersioningError(
            f"DVC remote '{REMOTE_NAME}' at {url} is unreachable: {why}; "
            "fix the path, permissions or credentials, or set versioning.dvc_remote in lifecycle.yaml"
        )

    def remote_url(self) -> str:
        with self._dvc_api():
            from dvc.config import Config

            config = Config(dvc_dir=str(self.path / ".dvc"), validate=False)
            merged: dict[str, Any] = {}
            for level in ("repo", "local"):
                _merge(merged, config.load_one(level))
        try:
            url = merged["remote"][merged["core"]["remote"]]["url"]
        except KeyError as exc:
            raise VersioningError(
                f"no default DVC remote in {self.path / '.dvc/config'}: run `lifecycle init`"
            ) from exc
        return str(url)

    # --- queries ---------------------------------------------------------------------------

    def status(self, stages: Sequence[str] = ()) -> dict[str, Any]:
        """`dvc status` of the workspace (all stages, or `stages`); `{}` when clean."""
        targets = [f"{DVC_YAML}:{self._check_stage(s)}" for s in stages] or None
        with self._dvc_api() as Repo:
            try:
                with Repo(str(self.path)) as dvc:
                    return dict(dvc.status(targets=targets))
            except Exception as exc:
                raise VersioningError(f"dvc status failed in {self.path}: {one_line(exc)}") from exc

    def status_clean(self, stages: Sequence[str] = ()) -> bool:
        return self.status(stages) == {}

    def out_hash(self, path: str, rev: str | None = None) -> str | None:
        """The md5 that dvc.lock records for an output, in the workspace or at a git rev."""
        path = validate_path(path, "output path")
        if rev is None:
            lock_file = self.path / DVC_LOCK
            text = lock_file.read_text() if lock_file.exists() else None
        else:
            commit = self.git.resolve_rev(rev)
            result = self.git.run("show", f"{commit}:{DVC_LOCK}", check=False)
            text = result.stdout if result.returncode == 0 else None
        if not text:
            return None
        lock = yaml.safe_load(text) or {}
        for stage in (lock.get("stages") or {}).values():
            for out in stage.get("outs") or []:
                if str(out.get("path", "")).rstrip("/") == path:
                    md5 = out.get("md5")
                    return str(md5) if md5 is not None else None
        return None

    def record(self, message: str, paths: Sequence[str], tag: str) -> str:
        """Commit exactly `paths` (other changes in the work tree stay as they are) and tag
        the commit; an existing tag is immutable and returned as it is. Returns the commit."""
        validate_name(tag, "tag")
        rels = [validate_path(p, "path") for p in paths]
        with self.locked():
            existing = self.git.tag_commit(tag)
            if existing is not None:
                return existing
            self.git.run("add", "--", *rels)
            changed = self.git.run("diff", "--cached", "--quiet", "--", *rels, check=False)
            if self.git.head() is None or changed.returncode != 0:
                self.git.run("commit", "-q", "--no-verify", "-m", message, "--", *rels)
            head = self.git.head()
            if head is None:
                raise VersioningError(f"nothing to record in {self.path}: {', '.join(rels)}")
            self.git.run("tag", "-a", tag, "-m", message, head)
            return head

    def gc(self, delete_tags: Sequence[str] = (), *, dry: bool = False) -> dict[str, Any]:
        """Delete `delete_tags`, then `dvc gc` the cache and the remote down to what the
        remaining tags, the branch heads and the workspace use (DVC's own machinery).

        Data a kept tag shares with a deleted one stays: DVC keeps every object any kept
        revision references.
        """
        for tag in delete_tags:
            validate_name(tag, "tag")
        with self.locked():
            missing = [t for t in delete_tags if self.git.tag_commit(t) is None]
            if missing:
                raise VersioningError(
                    f"cannot delete unknown tags {missing}: `lifecycle data versions` lists them"
                )
            if dry:
                return {"deleted_tags": list(delete_tags), "dry_run": True}
            for tag in delete_tags:
                self.git.run("tag", "-d", tag)
            url = self.remote_url()
            with self._dvc_api() as Repo, without_unversioned_output_warnings():
                try:
                    with Repo(str(self.path)) as dvc:
                        dvc.gc(
                            workspace=True,
                            all_tags=True,
                            all_branches=True,
                            cloud=True,
                            remote=REMOTE_NAME,
                            force=True,
                        )
                except Exception as exc:  # DvcException, OSError, missing remote plugin...
                    raise VersioningError(
                        f"dvc gc failed in {self.path} (remote {url}): {one_line(exc)}; the "
                        "tags are already deleted, re-run `lifecycle data gc` once it is fixed"
                    ) from exc
        return {"deleted_tags": list(delete_tags), "dry_run": False}

    # --- restore -------------------------------------------------------------------------------

    def restore(self, path: str, rev: str, dest: Path, *, overwrite: bool = False) -> None:
        """`dvc get` an output of this repo at `rev` into `dest` (the cache, else the remote).

        `dest` must not exist unless `overwrite`; it is replaced only once the download is
        complete, so a failed restore leaves it untouched.
        """
        path = validate_path(path, "output path")
        commit = self.git.resolve_rev(rev)
        dest = Path(dest).expanduser().resolve()
        if dest.exists() and not overwrite:
            raise VersioningError(
                f"cannot restore {path}@{rev} into {dest}: it exists; remove it first"
            )
        if self.out_hash(path, commit) is None and not self.git.has_file(commit, path):
            raise VersioningError(
                f"cannot restore {path}@{rev}: it is neither a DVC output in dvc.lock nor a "
                "git-tracked file at that revision; check the path"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.restore-", dir=dest.parent))
        try:
            target = staging / dest.name
            with self._dvc_api() as Repo:
                try:
                    Repo.get(str(self.path), path, out=str(target), rev=commit)
                except Exception as exc:  # DvcException, dvc_data errors, OSError...
                    raise VersioningError(
                        f"cannot restore {path}@{rev}: {one_line(exc)}; check that "
                        f"the DVC remote '{REMOTE_NAME}' holds that version (`lifecycle` pushes "
                        "each version it saves)"
                    ) from exc
            if dest.exists() or dest.is_symlink():
                old = staging / f"{dest.name}.old"
                dest.replace(old)
            target.replace(dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            # a fetch from the remote lands in the cache too (DVC makes it 0444)
            restrict_to_owner(self.path / ".dvc" / "cache")

    # --- locking -----------------------------------------------------------------------------

    # --- git, the lock and DVC's API (versioning/git.py, lock.py, dvc_api.py) ----------------

    def head(self) -> str | None:
        return self.git.head()

    def ensure_git(self) -> None:
        """A git repository at this path (`git init` if there is none *here*: a repository
        further up, such as the project's own, is never used)."""
        self.git.ensure()

    def file_at(self, tag: str, path: str) -> str | None:
        return self.git.file_at(tag, path)

    def tag_commit(self, tag: str) -> str | None:
        return self.git.tag_commit(tag)

    def tags(self, prefix: str = "") -> list[str]:
        return self.git.tags(prefix)

    def log(self, n: int = 50) -> list[dict[str, Any]]:
        return self.git.log(n)

    def tag_info(self, prefix: str = "") -> list[dict[str, Any]]:
        return self.git.tag_info(prefix)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise writers of this repo across processes (re-entrant in this process).

        Hold it around a whole sequence (set_params → commit_stage → save_version → push) so
        that two writers never interleave; each mutating method also takes it.
        """
        if not (self.path / ".git").is_dir():
            raise VersioningError(
                f"no versioned repo at {self.path}: run `lifecycle init` to create it"
            )
        with repo_lock(self.path / ".git" / "lifecycle-versioning.lock"):
            yield

    def _dvc_api(self) -> contextlib.AbstractContextManager[Any]:
        return dvc_api(self.path, self._overrides)


def _copy_if_changed(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    if not dst.exists() or dst.read_bytes() != data:
        write_atomic(dst, data)


def _config_contains(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        if isinstance(value, dict):
            if not isinstance(current.get(key), dict) or not _config_contains(current[key], value):
                return False
        elif str(current.get(key)).lower() != str(value).lower():
            return False
    return True


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
