"""The home's git + DVC repo against real git, real DVC and a real local remote (no mocks)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from lifecycle_assets.home import LifecycleHome, project_root
from lifecycle_assets.versioning.errors import VersioningError
from lifecycle_assets.versioning.repo import VersionedRepo

PROJECT_DVC_YAML = project_root() / "dvc.yaml"
STAGES = ["train_split", "test_split", "candidate_model", "validation_report", "production_model"]


@pytest.fixture
def home(tmp_path: Path) -> LifecycleHome:
    return LifecycleHome(tmp_path / "home")


@pytest.fixture
def repo(home: LifecycleHome) -> VersionedRepo:
    return VersionedRepo.init(
        home.repo, str(home.default_remote), PROJECT_DVC_YAML, home.tool_env()
    )


def git(repo: VersionedRepo, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo.path), *args],
        env=repo.git.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def dvc_cli(repo: VersionedRepo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo.path,
        env=repo.git.env,
        capture_output=True,
        text=True,
    )


def write_split(directory: Path, day: str, rows: int) -> None:
    """A dataset directory as the data pipeline writes it: parquet plus a data card."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    frame = pl.DataFrame(
        {"x": [float(i) for i in range(rows)], "label": [i % 2 for i in range(rows)]}
    )
    frame.write_parquet(directory / "data.parquet")
    (directory / "data_card.md").write_text(f"# train_split {day}\n\nrows: {rows}\n")


def tree_bytes(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_project_dvc_yaml_declares_one_stage_per_versioned_asset() -> None:
    pipeline = yaml.safe_load(PROJECT_DVC_YAML.read_text())
    assert list(pipeline["stages"]) == STAGES
    for name, stage in pipeline["stages"].items():
        # the home's launcher (`lifecycle init` writes it), not whatever is on PATH
        assert stage["cmd"] == (
            f"bin/lifecycle materialize --workdir .. --select {name} --partition ${{{name}.day}}"
        )
        assert stage["params"] == [f"{name}.day"]
        # a failed stage leaves its outputs as they were
        for key in ("outs", "metrics"):
            for entry in stage.get(key, []):
                assert next(iter(entry.values()))["persist"] is True, (name, entry)
    validation = pipeline["stages"]["validation_report"]
    assert validation["outs"] == [{"reports/validation.json": {"cache": False, "persist": True}}]
    assert validation["metrics"] == [{"reports/metrics.json": {"cache": False, "persist": True}}]


def test_home_dvc_yaml_does_not_drift_and_dvc_dag_works(repo: VersionedRepo) -> None:
    assert (repo.path / "dvc.yaml").read_bytes() == PROJECT_DVC_YAML.read_bytes()
    dag = dvc_cli(repo, "dag")
    assert dag.returncode == 0, dag.stderr
    for stage in STAGES:
        assert stage in dag.stdout


def test_init_is_idempotent(home: LifecycleHome, repo: VersionedRepo) -> None:
    head = repo.head()
    config = (repo.path / ".dvc" / "config").read_bytes()
    params = (repo.path / "params.yaml").read_bytes()

    again = VersionedRepo.init(
        home.repo, str(home.default_remote), PROJECT_DVC_YAML, home.tool_env()
    )

    assert again.head() == head
    assert (repo.path / ".dvc" / "config").read_bytes() == config
    assert (repo.path / "params.yaml").read_bytes() == params
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert (home.default_remote.stat().st_mode & 0o777) == 0o700
    assert repo.remote_url() == str(home.default_remote)
    assert {"datasets/.gitignore", "models/.gitignore"} <= set(git(repo, "ls-files").split())


def test_init_brings_a_changed_dvc_yaml_into_the_home(
    home: LifecycleHome, repo: VersionedRepo, tmp_path: Path
) -> None:
    changed = tmp_path / "dvc.yaml"
    changed.write_text(PROJECT_DVC_YAML.read_text() + "# a newer project dvc.yaml\n")

    VersionedRepo.init(home.repo, str(home.default_remote), changed, home.tool_env())

    assert (repo.path / "dvc.yaml").read_bytes() == changed.read_bytes()
    assert git(repo, "status", "--porcelain") == ""
    assert len(repo.log()) == 2


def test_versions_commit_push_and_restore_from_the_remote_alone(
    home: LifecycleHome, repo: VersionedRepo, tmp_path: Path
) -> None:
    split = repo.path / "datasets" / "train_split"

    write_split(split, "2026-06-10", rows=50)
    first_copy = tree_bytes(split)
    repo.set_params("train_split", day="2026-06-10")
    hashes = repo.commit_stage("train_split")
    first = repo.save_version("train_split 2026-06-10", "train_split/2026-06-10")
    repo.push()

    assert list(hashes) == ["datasets/train_split"]
    assert hashes["datasets/train_split"].endswith(".dir")
    assert repo.out_hash("datasets/train_split") == hashes["datasets/train_split"]
    assert repo.status_clean(["train_split"])
    assert git(repo, "status", "--porcelain") == ""
    assert any((home.default_remote / "files" / "md5").rglob("*.dir"))
    params = yaml.safe_load((repo.path / "params.yaml").read_text())
    assert params["train_split"] == {"day": "2026-06-10"}

    write_split(split, "2026-06-11", rows=80)
    second_copy = tree_bytes(split)
    repo.set_params("train_split", day="2026-06-11")
    second_hashes = repo.commit_stage("train_split")
    second = repo.save_version("train_split 2026-06-11", "train_split/2026-06-11")
    repo.push()

    assert second != first
    assert second_hashes != hashes
    assert repo.tags("train_split/") == ["train_split/2026-06-10", "train_split/2026-06-11"]
    assert (
        repo.out_hash("datasets/train_split", "train_split/2026-06-10")
        == hashes["datasets/train_split"]
    )
    assert [entry["tags"] for entry in repo.log(2)] == [
        ["train_split/2026-06-11"],
        ["train_split/2026-06-10"],
    ]
    # Saving the same version again changes nothing.
    assert repo.save_version("train_split 2026-06-11", "train_split/2026-06-11") == second

    # Only the remote is left: no cache, no workspace copy.
    shutil.rmtree(repo.path / ".dvc" / "cache")
    shutil.rmtree(split)
    repo.restore("datasets/train_split", "train_split/2026-06-10", tmp_path / "v1")
    repo.restore("datasets/train_split", second, tmp_path / "v2")

    assert tree_bytes(tmp_path / "v1") == first_copy
    assert tree_bytes(tmp_path / "v2") == second_copy
    with pytest.raises(VersioningError, match="exists"):
        repo.restore("datasets/train_split", first, tmp_path / "v2")
    repo.restore("datasets/train_split", first, tmp_path / "v2", overwrite=True)
    assert tree_bytes(tmp_path / "v2") == first_copy


def test_the_whole_pipeline_commits_clean_and_metrics_show(repo: VersionedRepo) -> None:
    day = "2026-06-10"
    write_split(repo.path / "datasets" / "train_split", day, rows=20)
    write_split(repo.path / "datasets" / "test_split", day, rows=10)
    for model_dir in ("candidate", "production"):
        model = repo.path / "models" / model_dir
        model.mkdir(parents=True)
        (model / "model.safetensors").write_bytes(b"\x00" * 64)
        (model / "model.json").write_text(json.dumps({"version": 1}))
        (model / "model_card.md").write_text("# model v1\n")
    (repo.path / "reports").mkdir()
    (repo.path / "reports" / "validation.json").write_text(
        json.dumps({"decision": "FIRST_MODEL", "auc": 0.91, "reason": "no production model"})
    )
    (repo.path / "reports" / "metrics.json").write_text(json.dumps({"auc": {"challenger": 0.91}}))

    for stage in STAGES:
        repo.set_params(stage, day=day)
        repo.commit_stage(stage)
    repo.save_version(f"day {day}", "model/v1")
    repo.push()

    assert repo.status() == {}
    assert repo.status_clean()
    assert git(repo, "status", "--porcelain") == ""
    assert repo.out_hash("reports/validation.json", "model/v1") is not None
    metrics = dvc_cli(repo, "metrics", "show", "--json")
    assert metrics.returncode == 0, metrics.stderr
    shown = json.loads(metrics.stdout)
    # the concise figures are the metrics; the full record is versioned beside them
    assert shown[""]["data"] == {"reports/metrics.json": {"data": {"auc": {"challenger": 0.91}}}}
    assert repo.out_hash("reports/metrics.json", "model/v1") is not None


def test_commit_of_a_missing_output_says_what_to_do(repo: VersionedRepo) -> None:
    with pytest.raises(VersioningError, match="materialise the asset first") as err:
        repo.commit_stage("test_split")
    assert "\n" not in str(err.value)


def test_unreachable_remote_is_a_one_line_error(home: LifecycleHome, repo: VersionedRepo) -> None:
    write_split(repo.path / "datasets" / "train_split", "2026-06-10", rows=5)
    repo.commit_stage("train_split")
    repo.save_version("v", "train_split/2026-06-10")

    shutil.rmtree(home.default_remote)
    with pytest.raises(VersioningError) as missing:
        repo.push()
    home.default_remote.write_text("not a directory")
    with pytest.raises(VersioningError) as blocked:
        repo.push()

    for err in (missing, blocked):
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith(f"DVC remote 'storage' at {home.default_remote} is unreachable: ")
        assert "versioning.dvc_remote in lifecycle.yaml" in message


def test_push_error_from_dvc_itself_is_one_line(home: LifecycleHome, tmp_path: Path) -> None:
    # The remote directory exists but cannot take objects: DVC's own error, mapped.
    remote = tmp_path / "remote"
    repo = VersionedRepo.init(home.repo, str(remote), PROJECT_DVC_YAML, home.tool_env())
    write_split(repo.path / "datasets" / "train_split", "2026-06-10", rows=5)
    repo.commit_stage("train_split")
    (remote / "files").write_text("a file where DVC wants a directory")

    with pytest.raises(
        VersioningError, match=r"^DVC remote 'storage' at .* is unreachable: "
    ) as err:
        repo.push()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "tag",
    [
        "../escape",
        "-f",
        "/abs",
        "a..b",
        "a b",
        "a;rm",
        "x.lock",
        "a//b",
        "",
        "a/",
        ".hidden",
        "a/.b",
        "a@{1}",
        "a~1",
        "a:b",
        "a*",
        "trail.",
    ],
)
def test_bad_tag_names_are_rejected_before_git(repo: VersionedRepo, tag: str) -> None:
    head = repo.head()
    with pytest.raises(VersioningError, match="invalid tag"):
        repo.save_version("m", tag)
    assert repo.head() == head
    assert repo.tags() == []


@pytest.mark.parametrize("stage", ["../x", "-x", "/x", "a..b", "nope"])
def test_bad_stage_names_are_rejected(repo: VersionedRepo, stage: str) -> None:
    with pytest.raises(VersioningError, match="stage"):
        repo.commit_stage(stage)
    with pytest.raises(VersioningError, match="stage"):
        repo.set_params(stage, day="2026-06-10")


def test_tags_are_immutable(repo: VersionedRepo) -> None:
    write_split(repo.path / "datasets" / "train_split", "2026-06-10", rows=5)
    repo.commit_stage("train_split")
    repo.save_version("v1", "model/v1")
    write_split(repo.path / "datasets" / "train_split", "2026-06-10", rows=6)
    repo.commit_stage("train_split")

    head = repo.head()
    with pytest.raises(VersioningError, match="immutable"):
        repo.save_version("v1 again", "model/v1")
    # Refused before committing: no stray commit, the change left unstaged in the tree.
    assert repo.head() == head
    status = subprocess.run(
        ["git", "-C", str(repo.path), "status", "--porcelain"], capture_output=True, text=True
    ).stdout
    assert " M dvc.lock" in status.splitlines() and "M  dvc.lock" not in status


def test_save_version_without_changes_returns_head(repo: VersionedRepo) -> None:
    head = repo.head()
    assert repo.save_version("nothing new", None) == head
    with pytest.raises(VersioningError, match="extra path"):
        repo.save_version("escape", None, extra_paths=["../outside.json"])
    with pytest.raises(VersioningError, match="unknown revision"):
        repo.out_hash("datasets/train_split", "no-such-tag")


def test_restore_errors_are_one_line(
    home: LifecycleHome, repo: VersionedRepo, tmp_path: Path
) -> None:
    write_split(repo.path / "datasets" / "train_split", "2026-06-10", rows=5)
    repo.commit_stage("train_split")
    repo.save_version("v", "train_split/2026-06-10")
    repo.push()

    with pytest.raises(VersioningError, match="neither a DVC output"):
        repo.restore("datasets/nope", "train_split/2026-06-10", tmp_path / "nope")
    with pytest.raises(VersioningError, match="unknown revision"):
        repo.restore("datasets/train_split", "train_split/1999-01-01", tmp_path / "nope")

    # Neither the cache nor a usable remote holds the data any more.
    shutil.rmtree(repo.path / ".dvc" / "cache")
    shutil.rmtree(home.default_remote)
    with pytest.raises(VersioningError, match="cannot restore datasets/train_split") as err:
        repo.restore("datasets/train_split", "train_split/2026-06-10", tmp_path / "gone")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "gone").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".gone")] == []


def test_restore_of_a_git_tracked_metric(repo: VersionedRepo, tmp_path: Path) -> None:
    report = repo.path / "reports" / "validation.json"
    report.parent.mkdir()
    report.write_text(json.dumps({"decision": "PASS", "auc": 0.9}))
    repo.save_version(
        "report", "validation_report/2026-06-10", extra_paths=["reports/validation.json"]
    )
    report.write_text(json.dumps({"decision": "FAIL", "auc": 0.7}))

    repo.restore("reports/validation.json", "validation_report/2026-06-10", tmp_path / "v.json")

    assert json.loads((tmp_path / "v.json").read_text())["decision"] == "PASS"


def test_dvc_does_not_keep_this_process_s_streams_or_cwd(repo: VersionedRepo) -> None:
    stdout, stderr, cwd = sys.stdout, sys.stderr, Path.cwd()
    repo.status()
    assert (sys.stdout, sys.stderr, Path.cwd()) == (stdout, stderr, cwd)


def test_object_storage_remote_without_its_plugin_is_unreachable(home: LifecycleHome) -> None:
    repo = VersionedRepo.init(
        home.repo, "s3://lifecycle-test-bucket/dvc", PROJECT_DVC_YAML, home.tool_env()
    )
    write_split(repo.path / "datasets" / "train_split", "2026-06-10", rows=5)
    repo.commit_stage("train_split")

    with pytest.raises(VersioningError, match=r"^DVC remote 'storage' at s3://") as err:
        repo.push()
    assert "\n" not in str(err.value)
    assert (home.root / "dvc-site-cache").is_dir()  # DVC's state stays inside the home


def test_a_repo_that_was_never_initialised_says_so(tmp_path: Path) -> None:
    with pytest.raises(VersioningError, match="lifecycle init"):
        VersionedRepo(tmp_path / "nowhere").save_version("m", None)


def _save(repo: VersionedRepo, day: str, rows: int) -> None:
    write_split(repo.path / "datasets" / "train_split", day, rows)
    repo.set_params("train_split", day=day)
    repo.commit_stage("train_split")
    repo.save_version(f"train_split {day}", f"train_split/{day}")
    repo.push()


def test_gc_drops_deleted_versions_from_cache_and_remote_and_keeps_the_rest(
    home: LifecycleHome, repo: VersionedRepo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for day, rows in (("2026-06-10", 10), ("2026-06-11", 20), ("2026-06-12", 30)):
        _save(repo, day, rows)
    info = repo.tag_info("train_split/")
    assert [t["tag"] for t in info] == [
        "train_split/2026-06-10",
        "train_split/2026-06-11",
        "train_split/2026-06-12",
    ]
    assert all(len(t["commit"]) == 40 for t in info)
    assert info[0]["commit"] == repo.tag_commit("train_split/2026-06-10")
    old_dir = repo.out_hash("datasets/train_split", "train_split/2026-06-10")
    assert old_dir is not None

    def remote_has(md5: str) -> bool:
        return (home.default_remote / "files" / "md5" / md5[:2] / md5[2:]).exists()

    assert remote_has(old_dir)
    with pytest.raises(VersioningError, match="unknown tags"):
        repo.gc(["train_split/1999-01-01"])
    assert repo.gc(["train_split/2026-06-10"], dry=True)["dry_run"] is True
    assert repo.tag_commit("train_split/2026-06-10") is not None

    with caplog.at_level(logging.WARNING, logger="dvc"):
        repo.gc(["train_split/2026-06-10"])
    # The kept tags' dvc.lock has no entry for the stages that never ran: DVC says so once
    # per revision and output ("missing version info"), which is expected and not shown.
    assert "missing version info" not in caplog.text
    assert repo.tags("train_split/") == ["train_split/2026-06-11", "train_split/2026-06-12"]
    assert not remote_has(old_dir)
    assert not (repo.path / ".dvc" / "cache" / "files" / "md5" / old_dir[:2] / old_dir[2:]).exists()
    # the kept versions still restore from the remote alone
    shutil.rmtree(repo.path / ".dvc" / "cache")
    repo.restore("datasets/train_split", "train_split/2026-06-11", tmp_path / "kept")
    assert pl.read_parquet(tmp_path / "kept" / "data.parquet").height == 20
