"""The `lifecycle` command line. Every command takes `--workdir` (the lifecycle home)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from lifecycle_assets.config import ConfigError
from lifecycle_assets.home import HomeError, LifecycleHome, project_root, resolve_home

EXIT_USAGE = 2


def _home(args: argparse.Namespace) -> LifecycleHome:
    home = LifecycleHome(resolve_home(args.workdir)).require()
    home.activate()
    return home


def cmd_init(args: argparse.Namespace) -> int:
    from lifecycle_assets.home_setup import init_home

    home = init_home(args.workdir, args.config)
    print(f"lifecycle home ready at {home.root} (config {home.config_path})")
    return 0


def cmd_materialize(args: argparse.Namespace) -> int:
    from lifecycle_assets.automation.loop import materialize

    home = _home(args)
    assets = [a.strip() for a in args.select.split(",") if a.strip()]
    dt.date.fromisoformat(args.partition)
    outcome = materialize(home, assets, args.partition)
    print(f"run {outcome.run_id}: materialised {', '.join(assets)} for {args.partition}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lifecycle_assets.demo import run_demo

    summary = run_demo(workdir=args.workdir, days=args.days, seed=args.seed, port=args.port)
    return 0 if summary.get("completed") else 1


def cmd_ui(args: argparse.Namespace) -> int:
    home = _home(args)
    env = {**os.environ, **home.tool_env()}
    cmd = [
        sys.executable, "-m", "dagster", "dev",
        "-w", str(project_root() / "workspace.yaml"),
        "--host", args.host, "--port", str(args.port),
    ]  # fmt: skip
    print(f"Dagster UI for {home.root} on http://{args.host}:{args.port} (Ctrl-C stops it)")
    # Its own process group, so Ctrl-C stops the webserver and the daemon together.
    proc = subprocess.Popen(cmd, env=env, cwd=project_root(), start_new_session=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifecycle", description="Keep a fresh, validated model in production."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument(
            "--workdir", help="the lifecycle home (default: $LIFECYCLE_HOME or ./.lifecycle)"
        )
        return p

    p = add("init", "create the lifecycle home (idempotent)")
    p.add_argument("--config", help="a lifecycle.yaml (default: the built-in example)")
    p.set_defaults(func=cmd_init)

    p = add("materialize", "materialise assets of the loop for one daily partition")
    p.add_argument("--select", required=True, help="comma-separated asset names")
    p.add_argument("--partition", required=True, help="the day, YYYY-MM-DD")
    p.set_defaults(func=cmd_materialize)

    p = add("demo", "run the end-to-end demo on the built-in simulator")
    p.add_argument("--days", type=int, default=None, help="simulated days (default 14)")
    p.add_argument("--seed", type=int, default=None, help="simulator seed")
    p.add_argument("--port", type=int, default=None, help="port for bentoml serve")
    p.set_defaults(func=cmd_demo)

    p = add("ui", "start `dagster dev` on the home")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from lifecycle_assets.registry.registry import RegistryError
    from lifecycle_assets.training.artifact import ArtifactError

    known: tuple[type[BaseException], ...] = (
        ConfigError, HomeError, RegistryError, ArtifactError, ValueError,
    )  # fmt: skip
    try:
        from lifecycle_assets.automation.loop import RunFailed
        from lifecycle_assets.versioning.repo import VersioningError

        known = (*known, VersioningError, RunFailed)
        return int(args.func(args) or 0)
    except known as err:
        print(f"lifecycle {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"lifecycle {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
