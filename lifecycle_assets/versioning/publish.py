"""One DVC-native version of a stage's output: write it, record it, commit it, push it.

`publish_stage` replaces the stage's output in the home's repo with what `write` produces
(a staging path renamed over it), records it with `dvc commit`, commits and tags the DVC
metafiles (and `extra_paths`) in git and pushes the data to the DVC remote. The Dagster
resource (`defs/resources/versioning.py`) and the release process call it alike.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lifecycle_assets.files import replace_tree
from lifecycle_assets.versioning.repo import VersionedRepo


def publish_stage(
    repo: VersionedRepo,
    stage: str,
    day: str,
    out: str,
    write: Callable[[Path], object],
    *,
    message: str,
    tag: str | None,
    extra_paths: tuple[str, ...] = (),
    push: bool = True,
) -> dict[str, Any]:
    """Replace the stage's output `out` (a path in the repo) with what `write` produces; the
    stage, its DVC hash for `out`, the git commit and tag."""
    target = repo.path / out
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    if staging.exists():
        staging.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    write(staging)
    replace_tree(staging, target)
    if os.environ.get("DVC_STAGE"):
        # Run as a stage command by `dvc repro`: DVC records the output itself (dvc.lock,
        # cache) once the command returns; recording it here as well would race it.
        return {"dvc_stage": stage, "dvc_hash": "", "git_commit": "", "git_tag": ""}
    repo.set_params(stage, day=day)
    hashes = repo.commit_stage(stage)
    recorded = repo.tag_commit(tag) if tag is not None else None
    if recorded is not None and tag is not None and repo.out_hash(out, tag) == hashes.get(out):
        # The same version again (a rerun after its push failed): the tag stands as it is
        # and the push below sends what the remote is missing.
        commit = recorded
    else:
        commit = repo.save_version(message, tag, extra_paths=list(extra_paths))
    if push:
        repo.push()
    return {
        "dvc_stage": stage,
        "dvc_hash": hashes.get(out, ""),
        "git_commit": commit,
        "git_tag": tag or "",
    }
