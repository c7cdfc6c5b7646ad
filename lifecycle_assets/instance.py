"""The home's Dagster instance config (`<home>/dagster/dagster.yaml`): which storage it uses.

The embedded default keeps runs, event logs and schedules in SQLite files inside the home.
`lifecycle init --instance postgresql://USER:PASSWORD@HOST:PORT/DB` writes a config whose
storage is that PostgreSQL database (Dagster's `dagster-postgres`), for a team whose runs
outgrow one machine (docs/deployment.md). Both keep the `QueuedRunCoordinator`: runs that
the daemon launches (schedules, sensors, the UI) wait their turn, one at a time, since they
share the home's registry repo.

The URL is checked before anything is written: an unreachable server, a wrong password or a
missing database is one line naming the URL (its password masked), and the home is left as
it was.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from lifecycle_assets.errors import LifecycleError

POSTGRES_SCHEMES = ("postgresql", "postgres")
# SQLAlchemy 2.1 reads a bare `postgresql://` as the psycopg 3 driver; dagster-postgres
# installs psycopg2, so the stored URL names it.
DAGSTER_SCHEME = "postgresql+psycopg2"
CONNECT_TIMEOUT_S = 5

_RUN_COORDINATOR = {
    "module": "dagster._core.run_coordinator",
    "class": "QueuedRunCoordinator",
    "config": {"max_concurrent_runs": 1},
}


# The embedded default's run storage and event log: Dagster's SQLite storage keeping its
# connections open (lifecycle_assets/automation/run_storage.py and event_log.py), in the
# default places under DAGSTER_HOME.
_SQLITE_RUN_STORAGE = {
    "module": "lifecycle_assets.automation.run_storage",
    "class": "ConnectionKeepingSqliteRunStorage",
    "config": {"dagster_home": {"env": "DAGSTER_HOME"}},
}
_SQLITE_EVENT_LOG = {
    "module": "lifecycle_assets.automation.event_log",
    "class": "EngineKeepingSqliteEventLogStorage",
    "config": {"dagster_home": {"env": "DAGSTER_HOME"}},
}


class InstanceError(LifecycleError, RuntimeError):
    """The instance storage named for the home cannot be used; the message says why."""


def instance_yaml(postgres_url: str | None = None) -> str:
    """The home's dagster.yaml: SQLite storage in the home (None), or `postgres_url`."""
    config: dict[str, object] = {"telemetry": {"enabled": False}}
    if postgres_url is not None:
        stored = urlunsplit(urlsplit(postgres_url)._replace(scheme=DAGSTER_SCHEME))
        config["storage"] = {"postgres": {"postgres_url": stored}}
    else:
        config["run_storage"] = _SQLITE_RUN_STORAGE
        config["event_log_storage"] = _SQLITE_EVENT_LOG
    config["run_coordinator"] = _RUN_COORDINATOR
    return yaml.safe_dump(config, sort_keys=False)


def postgres_url_of(dagster_home: Path) -> str | None:
    """The PostgreSQL URL the instance config in `dagster_home` stores to, if it names one."""
    path = dagster_home / "dagster.yaml"
    if not path.is_file():
        return None
    config = yaml.safe_load(path.read_text()) or {}
    postgres = (config.get("storage") or {}).get("postgres") or {}
    url = postgres.get("postgres_url")
    return url if isinstance(url, str) else None


def masked(url: str) -> str:
    """`url` with its password replaced by `***`, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def check_postgres(url: str) -> None:
    """Raise InstanceError (one line, naming the URL) unless `url` is a PostgreSQL URL whose
    database accepts a connection now (a `+driver` in its scheme is allowed)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in POSTGRES_SCHEMES:
        raise InstanceError(
            f"--instance {masked(url)}: not a PostgreSQL URL "
            "(postgresql://USER:PASSWORD@HOST:PORT/DATABASE)"
        )
    import psycopg2  # dagster-postgres's driver; imported here to keep start-up light

    try:
        libpq_url = urlunsplit(parts._replace(scheme="postgresql"))
        psycopg2.connect(libpq_url, connect_timeout=CONNECT_TIMEOUT_S).close()
    except psycopg2.Error as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise InstanceError(
            f"cannot use PostgreSQL at {masked(url)} for the Dagster instance: {reason}"
        ) from None
