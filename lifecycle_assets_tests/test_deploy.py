"""The scale-out example (deploy/, docs/deployment.md), validated as far as this machine
allows: Dagster accepts the instance config, the lifecycle config loads, DVC takes the
object-storage remote. Kubernetes, Postgres, S3 and TPUs are not reachable here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config

from lifecycle_assets.config import load_config
from lifecycle_assets.home import LifecycleHome, project_root
from lifecycle_assets.versioning.repo import VersionedRepo

DEPLOY = project_root() / "deploy"


def test_dagster_accepts_the_kubernetes_instance_config() -> None:
    config, custom_class = dagster_instance_config(str(DEPLOY))
    assert custom_class is None
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert "postgres" in config["storage"]


def test_the_schema_check_is_real(tmp_path: Path) -> None:
    broken = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    broken["storage"]["postgres"]["postgres_db"]["portt"] = 5432
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(DagsterInvalidConfigError):
        dagster_instance_config(str(tmp_path))


def test_scale_config_loads_and_dvc_takes_the_object_storage_remote(tmp_path: Path) -> None:
    config = load_config(DEPLOY / "lifecycle.yaml")
    remote = config.versioning.dvc_remote
    assert remote is not None and remote.startswith("s3://")
    home = LifecycleHome(tmp_path / "home")
    shutil.copyfile(DEPLOY / "lifecycle.yaml", tmp_path / "lifecycle.yaml")
    repo = VersionedRepo.init(home.repo, remote, project_root() / "dvc.yaml", env=home.tool_env())
    assert repo.remote_url() == remote
