"""The lifecycle home: one directory holding all runtime state (docs/architecture.md).

Layout::

    HOME/lifecycle.yaml     the active config
    HOME/clock.json         the loop's clock when it is simulated (absent: wall time)
    HOME/dagster/           DAGSTER_HOME (dagster.yaml; the SQLite instance, or PostgreSQL)
    HOME/models/            the registry's model store: each registered version's files, once
    HOME/bentoml/           BENTOML_HOME (bentos, and the models they pack, exported at build)
    HOME/repo/              git + DVC repo: dataset and model versions, the registry
    HOME/dvc-remote/        default DVC remote (a local directory)
    HOME/logs/              the log store: prediction and ground-truth segments
    HOME/lookup/            the offline lookup store
    HOME/assets/            Dagster asset outputs (Parquet, JSON: records, model references)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.files import write_atomic

if TYPE_CHECKING:  # the config (pydantic) is imported where a home's config is read
    from lifecycle_assets.config import LifecycleConfig

HOME_ENV = "LIFECYCLE_HOME"
DEFAULT_HOME_NAME = ".lifecycle"


class HomeError(LifecycleError, RuntimeError):
    """The lifecycle home is missing or unusable; the message says how to fix it."""


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def default_home() -> Path:
    return project_root() / DEFAULT_HOME_NAME


def resolve_home(workdir: str | Path | None = None) -> Path:
    """--workdir wins, then $LIFECYCLE_HOME, then the project's `.lifecycle/`."""
    if workdir:
        return Path(workdir).expanduser().resolve()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return default_home()


@dataclass(frozen=True)
class LifecycleHome:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "lifecycle.yaml"

    @property
    def clock_path(self) -> Path:
        return self.root / "clock.json"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def bentoml_home(self) -> Path:
        return self.root / "bentoml"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def default_remote(self) -> Path:
        return self.root / "dvc-remote"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def lookup(self) -> Path:
        return self.root / "lookup"

    @property
    def assets(self) -> Path:
        return self.root / "assets"

    @property
    def alerts_path(self) -> Path:
        return self.root / "alerts.jsonl"

    def exists(self) -> bool:
        return self.config_path.is_file() and (self.repo / ".dvc").is_dir()

    def require(self) -> LifecycleHome:
        if not self.exists():
            raise HomeError(
                f"no lifecycle home at {self.root}: run `lifecycle init --workdir {self.root}` first"
            )
        return self

    def config(self) -> LifecycleConfig:
        from lifecycle_assets.config import load_config

        return load_config(self.config_path)

    def remote_url(self, config: LifecycleConfig | None = None) -> str:
        cfg = config or self.config()
        return cfg.versioning.dvc_remote or str(self.default_remote)

    def tool_env(self) -> dict[str, str]:
        """Environment that keeps every tool's state inside the home, telemetry off."""
        env = {
            HOME_ENV: str(self.root),
            "DAGSTER_HOME": str(self.dagster_home),
            "BENTOML_HOME": str(self.bentoml_home),
            "DVC_SITE_CACHE_DIR": str(self.root / "dvc-site-cache"),
            "DVC_GLOBAL_CONFIG_DIR": str(self.root / "dvc-global-config"),
            "DVC_NO_ANALYTICS": "1",
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "BENTOML_DO_NOT_TRACK": "true",
            "UV_CACHE_DIR": str(self.root / "uv-cache"),
            "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", "lifecycle"),
            "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", "lifecycle@localhost"),
            "GIT_COMMITTER_NAME": os.environ.get("GIT_COMMITTER_NAME", "lifecycle"),
            "GIT_COMMITTER_EMAIL": os.environ.get("GIT_COMMITTER_EMAIL", "lifecycle@localhost"),
        }
        # Training takes the torch-xla path only where PJRT_DEVICE is set (a TPU VM, or the
        # tests with PJRT_DEVICE=CPU); on a plain CPU machine it trains with eager PyTorch.
        if os.environ.get("PJRT_DEVICE"):
            env["PJRT_DEVICE"] = os.environ["PJRT_DEVICE"]
        return env

    def activate(self) -> None:
        """Point this process's tools at the home (call at command start, never at import)."""
        os.environ.update(self.tool_env())


# --- the one clock -------------------------------------------------------------------------


def today(home: LifecycleHome | None) -> dt.date:
    """The loop's "today": the simulated date when the home has one, else the wall clock."""
    if home is not None and home.clock_path.is_file():
        return dt.date.fromisoformat(json.loads(home.clock_path.read_text())["today"])
    return dt.datetime.now(dt.UTC).date()


def now(home: LifecycleHome | None) -> dt.datetime:
    """The loop's current time; with a simulated date, noon UTC of that date."""
    if home is not None and home.clock_path.is_file():
        day = today(home)
        return dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC)


def time_horizon(now: dt.datetime, simulated: bool, config: LifecycleConfig) -> dt.datetime:
    """The latest plausible event time: the clock plus `data.max_clock_skew_seconds`. The
    data pipeline quarantines later rows and the service refuses them at the edge.

    A simulated clock only knows the day (`home.now()` is its noon), so the whole simulated
    day is "now" for this test.
    """
    skew = dt.timedelta(seconds=config.data.max_clock_skew_seconds)
    if simulated:
        end_of_day = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
        return end_of_day + skew
    return now + skew


def set_simulated_today(home: LifecycleHome, day: dt.date) -> None:
    write_atomic(home.clock_path, json.dumps({"today": day.isoformat()}))


def copy_if_changed(src: Path, dst: Path) -> None:
    if not dst.exists() or dst.read_bytes() != src.read_bytes():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
