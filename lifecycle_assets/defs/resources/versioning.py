"""DVC-native versions in the home's repo, as a resource (docs/architecture.md)."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.versioning.publish import publish_stage
from lifecycle_assets.versioning.repo import VersionedRepo


class VersioningResource(dg.ConfigurableResource):
    """Writes a stage's output into the home repo, records it with `dvc commit`, commits and
    tags the metafiles in git and pushes the data to the DVC remote."""

    home: LifecycleHomeResource
    push: bool = True

    def repo(self) -> VersionedRepo:
        home = self.home.get()
        repo = VersionedRepo.of(home)
        repo.check_remote(home.remote_url())
        return repo

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
        """Replace the stage's output `out` with what `write` produces and version it
        (`versioning.publish.publish_stage`)."""
        return publish_stage(
            self.repo(), stage, day, out, write,
            message=message, tag=tag, extra_paths=extra_paths, push=self.push,
        )  # fmt: skip

    def commit_paths(self, message: str, paths: list[str]) -> str:
        """Commit git-tracked files (the registry) without a DVC stage."""
        return self.repo().save_version(message, None, extra_paths=paths)
