"""Starting and stopping a real `bentoml serve` of `bentos/` on a lifecycle home."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from lifecycle_assets.home import LifecycleHome, project_root
from lifecycle_assets.serving.fence import WORKERS_ENV
from lifecycle_assets.serving.setup import FEEDBACK_TOKEN_ENV

SERVICE = "service:Lifecycle"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """`bentoml serve` in its own process group; a context manager that always stops it."""

    def __init__(
        self,
        home: LifecycleHome,
        port: int | None = None,
        workers: int = 1,
        log_path: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.workers = workers
        self.log_path = log_path or home.root / "service.log"
        self.extra_env = extra_env or {}
        # /feedback needs a token (serving.feedback_auth: required); one per run unless given.
        self.feedback_token = (
            self.extra_env.get(FEEDBACK_TOKEN_ENV)
            or os.environ.get(FEEDBACK_TOKEN_ENV)
            or secrets.token_urlsafe(24)
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def auth_headers(self) -> dict[str, str]:
        """Headers for the mutating endpoints (/feedback)."""
        return {"Authorization": f"Bearer {self.feedback_token}"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> ServiceProcess:
        env = {
            **os.environ,
            **self.home.tool_env(),
            FEEDBACK_TOKEN_ENV: self.feedback_token,
            **self.extra_env,
        }
        # The worker count, for BentoML and for the workers' version fence (serving/fence.py).
        options = env.get("BENTOML_CONFIG_OPTIONS", "")
        env["BENTOML_CONFIG_OPTIONS"] = f"{options} services.lifecycle.workers={self.workers}"
        env[WORKERS_ENV] = str(self.workers)
        cmd = [
            sys.executable, "-m", "bentoml", "serve", SERVICE,
            "--working-dir", str(project_root() / "bentos"),
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=project_root(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"bentoml serve exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(
            f"bentoml serve did not become healthy in {timeout:.0f}s; see {self.log_path}"
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM, so logs are flushed), then SIGKILL whatever is left.

        BentoML's workers run in process groups of their own, so the tree is collected first
        and every process in it is reached, never only the arbiter's group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        tree = _process_tree(self.proc.pid)
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(self.proc.pid)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        _kill_survivors(tree)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return []


def _kill_survivors(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a server and every process under it (see `ServiceProcess.stop`)."""
    procs = _process_tree(pid)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)
    psutil.wait_procs(procs, timeout=30)
