"""Real servers the scale-out tests start for themselves, each in a temp dir on a free local
port and stopped at the end: PostgreSQL (Debian's `postgresql` package: `initdb`, `pg_ctl`)
and an S3-compatible endpoint (moto's standalone server, a dev dependency). A test skips,
naming what is missing, only where the PostgreSQL binaries are absent (`make test` installs
them)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lifecycle_assets.serving.process import free_port, kill_tree

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


# Credentials the S3 tests use: moto accepts any; none of the user's AWS files are read.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "lifecycle-test", "AWS_SECRET_ACCESS_KEY": "lifecycle-test"}


def s3_environment(root: Path) -> dict[str, str]:
    """The AWS environment of a test: its credentials, a region, and AWS files in `root`."""
    return {
        **S3_CREDENTIALS,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(root / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@contextmanager
def s3_server(bucket: str, *, authenticating: bool = False) -> Iterator[str]:
    """moto's S3-compatible server in its own process on a free port, with an empty `bucket`;
    yields its endpoint URL. Needs `s3_environment` in os.environ.

    `authenticating`: once the bucket exists, every request is checked against the server's
    own (empty) set of access keys, so any credentials are refused as a real endpoint
    refuses wrong ones (moto's `INITIAL_NO_AUTH_ACTION_COUNT`)."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "1"} if authenticating else {})}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env,
    )  # fmt: skip
    try:
        client = boto3.client("s3", endpoint_url=endpoint)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:  # botocore's EndpointConnectionError while it starts
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        yield endpoint
    finally:
        kill_tree(server.pid)
        server.wait()


class TcpGate:
    """A TCP forwarder on a free local port to `127.0.0.1:target`, which a test can close
    (new connections refused, open ones cut: the server looks down) and open again on the
    same port."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()
        self.open()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            link.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
