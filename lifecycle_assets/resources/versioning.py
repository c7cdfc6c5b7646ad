"""DVC-native versions in the home's repo, as a resource (docs/architecture.md)."""

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from lifecycle_assets.resources.home import LifecycleHomeResource
from lifecycle_assets.versioning.repo import VersionedRepo


class VersioningResource(dg.ConfigurableResource):
    """Writes a stage's output into the home repo, records it with `dvc commit`, commits and
    tags the metafiles in git and pushes the data to the DVC remote."""

    home: LifecycleHomeResource
    push: bool = True

    def repo(self) -> VersionedRepo:
        home = self.home.get()
        return VersionedRepo(home.repo, env=home.tool_env())

    def publish(
        self,
        stage: str,
        day: str,
        out: str,
        write: Callable[[Path], object],
        *,
        message: str,
        tag: str | None,
        extra_paths: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Replace the stage's output `out` (a path in the repo) with what `write` produces."""
        repo = self.repo()
        target = repo.path / out
        staging = target.with_name(target.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        if staging.exists():
            staging.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        write(staging)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(staging, target)
        if os.environ.get("DVC_STAGE"):
            # Run as a stage command by `dvc repro`: DVC records the output itself (dvc.lock,
            # cache) once the command returns; recording it here as well would race it.
            return {"dvc_stage": stage, "dvc_hash": "", "git_commit": "", "git_tag": ""}
        repo.set_params(stage, day=day)
        hashes = repo.commit_stage(stage)
        commit = repo.save_version(message, tag, extra_paths=list(extra_paths))
        if self.push:
            repo.push()
        return {
            "dvc_stage": stage,
            "dvc_hash": hashes.get(out, ""),
            "git_commit": commit,
            "git_tag": tag or "",
        }

    def commit_paths(self, message: str, paths: list[str]) -> str:
        """Commit git-tracked files (the registry) without a DVC stage."""
        return self.repo().save_version(message, None, extra_paths=paths)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
