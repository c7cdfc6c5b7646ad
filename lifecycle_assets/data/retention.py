"""Dataset versions in the home's repo: listing, retention planning and restore (no Dagster).

A dataset version is a git tag `<stage>/<day>` in the home's repo (DVC's data-registry
pattern). Retention keeps the newest `versioning.keep_versions` of each dataset plus every
version a registered model was trained on or a decision record was tested on; the rest lose
their tag and `dvc gc` reclaims their data from the cache and the remote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.storage import AssetStore
from lifecycle_assets.versioning.errors import VersioningError
from lifecycle_assets.versioning.repo import VersionedRepo

DATASET_STAGES = ("train_split", "test_split")


def open_repo(home: LifecycleHome) -> VersionedRepo:
    """The home's repo, refused when its DVC remote is not the one the home's config means
    (`VersionedRepo.check_remote`)."""
    repo = VersionedRepo.of(home)
    repo.check_remote(home.remote_url())
    return repo


def _tags_in(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return []
    return [
        str(record[k])
        for k in ("train_split_tag", "test_split_tag")
        if isinstance(record.get(k), str) and record[k]
    ]


def pinned_versions(home: LifecycleHome, repo: VersionedRepo) -> dict[str, list[str]]:
    """{tag: [why]}: dataset versions that registered models or decisions depend on."""
    pinned: dict[str, list[str]] = {}

    def pin(tag: str, why: str) -> None:
        pinned.setdefault(tag, []).append(why)

    for versions in sorted((home.repo / "registry").rglob("versions.json")):
        data = json.loads(versions.read_text())
        for version, record in sorted(data.items()):
            for tag in _tags_in(record):
                pin(tag, f"model {version}")
    # Decision records: the Dagster outputs in the home, and every committed
    # reports/validation.json (the git history survives a wiped assets folder).
    store = AssetStore.of(home)
    for day in store.record_partitions("validation_report"):
        for tag in _tags_in(store.read_record("validation_report", day) or {}):
            pin(tag, f"decision {day}")
    if repo.head() is not None:
        shas = repo.git.run("log", "--format=%H", "--", "reports/validation.json").stdout.split()
        for sha in shas:
            shown = repo.git.run("show", f"{sha}:reports/validation.json", check=False)
            if shown.returncode == 0:
                try:
                    record = json.loads(shown.stdout)
                except json.JSONDecodeError:
                    continue
                for tag in _tags_in(record):
                    pin(tag, f"decision {record.get('day', sha[:12])}")
    return {tag: sorted(set(why)) for tag, why in pinned.items()}


def list_versions(home: LifecycleHome) -> list[dict[str, Any]]:
    """Every dataset version: tag, stage, day, commit, date, DVC hash, pinned-by."""
    repo = open_repo(home)
    pinned = pinned_versions(home, repo)
    rows = []
    for stage in DATASET_STAGES:
        for info in repo.tag_info(f"{stage}/"):
            rows.append(
                {
                    **info,
                    "stage": stage,
                    "day": info["tag"].split("/", 1)[1],
                    "dvc_hash": repo.out_hash(f"datasets/{stage}", info["tag"]),
                    "pinned_by": pinned.get(info["tag"], []),
                }
            )
    return rows


def retention_plan(home: LifecycleHome, keep: int) -> dict[str, Any]:
    """Which dataset tags retention keeps and deletes (newest `keep` per stage + pinned)."""
    repo = open_repo(home)
    pinned = pinned_versions(home, repo)
    keep_tags: list[str] = []
    delete: list[str] = []
    for stage in DATASET_STAGES:
        # Tags are `<stage>/<YYYY-MM-DD>`: version order is date order.
        tags = repo.tags(f"{stage}/")
        newest = set(tags[-keep:]) if keep > 0 else set()
        for tag in tags:
            (keep_tags if tag in newest or tag in pinned else delete).append(tag)
    return {"keep": keep_tags, "delete": delete, "pinned": pinned}


def restore_version(home: LifecycleHome, version: str, out: Path | None) -> dict[str, Any]:
    """Bring back dataset version `<stage>/<day>` into `out` (default `HOME/restored/...`)."""
    stage, _, day = version.partition("/")
    if stage not in DATASET_STAGES or not day:
        raise VersioningError(
            f"unknown dataset version {version!r}: expected <stage>/<YYYY-MM-DD> with stage one "
            f"of {', '.join(DATASET_STAGES)} (`lifecycle data versions` lists them)"
        )
    repo = open_repo(home)
    if repo.tag_commit(version) is None:
        raise VersioningError(
            f"no dataset version {version!r} in {repo.path}: `lifecycle data versions` lists them"
        )
    dest = Path(out) if out is not None else home.root / "restored" / stage / day
    path = f"datasets/{stage}"
    repo.restore(path, version, dest, overwrite=True)
    return {
        "version": version,
        "path": str(dest),
        "dvc_hash": repo.out_hash(path, version),
        "files": sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()),
    }
