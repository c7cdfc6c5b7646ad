"""`lifecycle init`: make a lifecycle home idempotently (docs/architecture.md)."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from lifecycle_assets.config import ConfigError, example_config_path, load_config, parse_config
from lifecycle_assets.data.validation import ensure_pii_key
from lifecycle_assets.files import write_atomic
from lifecycle_assets.home import HomeError, LifecycleHome, project_root, resolve_home
from lifecycle_assets.instance import check_postgres, instance_yaml
from lifecycle_assets.versioning.repo import VersionedRepo


def project_dvc_yaml() -> Path:
    return project_root() / "dvc.yaml"


STAGE_LAUNCHER = Path("bin") / "lifecycle"


def write_stage_launcher(repo: Path) -> Path:
    """`repo/bin/lifecycle`, which dvc.yaml's stages run: the lifecycle CLI through this
    interpreter, so `dvc repro` works without the virtual environment on PATH. It names a
    path of this machine, so it is never versioned (`bin/.gitignore`); `lifecycle init`
    writes it again on another machine or after the environment moved."""
    launcher = repo / STAGE_LAUNCHER
    launcher.parent.mkdir(parents=True, exist_ok=True)
    ignore = launcher.parent / ".gitignore"
    if not ignore.is_file():
        ignore.write_text("*\n")
    text = (
        "#!/bin/sh\n"
        "# Written by `lifecycle init` for this machine: run it again if the environment moved.\n"
        f'exec {shlex.quote(sys.executable)} -m lifecycle_assets.cli "$@"\n'
    )
    if not launcher.is_file() or launcher.read_text() != text:
        write_atomic(launcher, text)
    launcher.chmod(0o700)
    return launcher


def init_home(
    workdir: str | Path | None = None,
    config_file: str | Path | None = None,
    instance: str | None = None,
) -> LifecycleHome:
    """Create or update the home; running it again with the same inputs changes nothing.

    `instance`, a PostgreSQL URL, makes it the Dagster instance's storage (checked first: a
    server that cannot be used leaves the home as it was); without it a new home stores to
    SQLite in the home and an existing one keeps its instance config."""
    if instance is not None:
        check_postgres(instance)
    home = LifecycleHome(resolve_home(workdir))
    if home.root.exists() and not home.root.is_dir():
        raise HomeError(f"{home.root} exists and is not a directory; pick another --workdir")
    for folder in (
        home.root,
        home.dagster_home,
        home.models,
        home.bentoml_home,
        home.logs,
        home.lookup,
        home.assets,
    ):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    if config_file is not None:
        load_config(config_file)  # validate before it replaces anything
        if (
            not home.config_path.exists()
            or Path(config_file).read_bytes() != home.config_path.read_bytes()
        ):
            shutil.copyfile(config_file, home.config_path)
    elif not home.config_path.exists():
        shutil.copyfile(example_config_path(), home.config_path)
    try:
        config = home.config()
    except ConfigError as err:
        raise ConfigError(f"{err} (edit it, or re-run init with --config FILE)") from None
    dagster_yaml = home.dagster_home / "dagster.yaml"
    wanted = instance_yaml(instance)
    if not dagster_yaml.exists() or (instance is not None and dagster_yaml.read_text() != wanted):
        write_atomic(dagster_yaml, wanted)
    home.activate()
    VersionedRepo.init(
        home.repo,
        home.remote_url(config),
        project_dvc_yaml(),
        env=home.tool_env(),
        remote_options=config.versioning.dvc_remote_options,
    )
    write_stage_launcher(home.repo)
    # The HMAC key for `data.pii_mode: hash` lives in the home (owner-only), never in a repo.
    ensure_pii_key(home.root, config)
    return home


def set_shadow_days(home: LifecycleHome, days: int, source: str) -> None:
    """Write `release.shadow_days: days` into the home's config (the Dagster runs read the
    home's config, not the one it was made from); a refused value (one line naming `source`)
    leaves the file as it was."""
    import yaml

    config = yaml.safe_load(home.config_path.read_text())
    config.setdefault("release", {})["shadow_days"] = days
    parse_config(config, source)
    write_atomic(home.config_path, yaml.safe_dump(config, sort_keys=False))
