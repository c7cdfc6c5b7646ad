"""Real servers the scale-out tests start for themselves, each in a temp dir on a free local
port and stopped at the end: PostgreSQL (Debian's `postgresql` package: `initdb`, `pg_ctl`).
A test skips, naming what is missing, only where the binaries are absent (`make test`
installs them)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lifecycle_assets.serving.process import free_port

PG_USER = "lifecycle"
PG_DATABASE = "dagster"


def postgres_bin(name: str) -> str | None:
    """A PostgreSQL server binary: on PATH, else where Debian's package puts it."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_server_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its binaries as `postgres`."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without `runuser`: PostgreSQL cannot be started")
    return [runuser, "-u", "postgres", "--"]


@contextmanager
def postgres_server(database: str = PG_DATABASE) -> Iterator[str]:
    """A fresh PostgreSQL cluster with an empty `database`; yields its URL."""
    initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
        )
    prefix = _as_server_user()
    # Not under pytest's tmp_path: the server's user must be able to reach its directory.
    root = Path(tempfile.mkdtemp(prefix="lifecycle-pg-"))
    if prefix:
        shutil.chown(root, user="postgres")
    data, log = root / "data", root / "server.log"
    port = free_port()
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
         "--no-sync"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    try:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        import psycopg2

        admin = psycopg2.connect(f"postgresql://{PG_USER}@127.0.0.1:{port}/postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{database}"')
        admin.close()
        yield f"postgresql://{PG_USER}@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
