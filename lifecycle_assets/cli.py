"""The `lifecycle` command line. Every command takes `--workdir` (the lifecycle home)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import sys
from collections.abc import Sequence

from lifecycle_assets.cli_support import progress
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.home import LifecycleHome, project_root, resolve_home

EXIT_USAGE = 2


class UsageError(LifecycleError):
    """A command-line argument that cannot be used; the message says which."""


def _home(args: argparse.Namespace) -> LifecycleHome:
    home = LifecycleHome(resolve_home(args.workdir)).require()
    home.activate()
    return home


def cmd_init(args: argparse.Namespace) -> int:
    from lifecycle_assets.home_setup import init_home

    home = init_home(args.workdir, args.config, args.instance)
    print(f"lifecycle home ready at {home.root} (config {home.config_path})")
    return 0


def cmd_materialize(args: argparse.Namespace) -> int:
    progress(f"loading the loop to materialise {args.select} for {args.partition}")
    from lifecycle_assets.automation.loop import materialize

    home = _home(args)
    assets = [a.strip() for a in args.select.split(",") if a.strip()]
    try:
        dt.date.fromisoformat(args.partition)
    except ValueError:
        raise UsageError(f"--partition {args.partition!r} is not a date (YYYY-MM-DD)") from None
    from lifecycle_assets.definitions import ASSETS
    from lifecycle_assets.defs.partitions import daily

    if not daily.has_partition_key(args.partition):
        raise UsageError(
            f"--partition {args.partition}: not a day of the loop's daily partitions, "
            f"{daily.get_first_partition_key()} to {daily.get_last_partition_key()} "
            "(the last complete day)"
        )

    names = {a.key.to_user_string() for a in ASSETS}
    unknown = sorted(set(assets) - names)
    if unknown or not assets:
        raise UsageError(
            f"--select {unknown or '(empty)'}: not assets of the loop; choose from {sorted(names)}"
        )
    # A run can take a while (a Bento build up to half a minute): say what started.
    print(f"materialising {', '.join(assets)} for {args.partition} …", flush=True)
    outcome = materialize(home, assets, args.partition)
    print(f"run {outcome.run_id}: materialised {', '.join(assets)} for {args.partition}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lifecycle_assets.demo import run_demo

    summary = run_demo(
        workdir=args.workdir, days=args.days, seed=args.seed, port=args.port,
        config_file=args.config, bentos=args.bentos, start_date=args.start_date,
        shadow_days=args.shadow_days, drift_end_day=args.drift_end_day,
    )  # fmt: skip
    return 0 if summary["completed"] else 130


def loop_first_day(home: LifecycleHome) -> str | None:
    """The home's first day of data (ISO): the earliest day the service logged or any asset
    stored a value for; None for a home with neither yet."""
    from lifecycle_assets.records.reader import log_fingerprints
    from lifecycle_assets.storage import AssetStore

    days = [
        d
        for d in (AssetStore.of(home).first_day(), min(log_fingerprints(home.logs), default=None))
        if d
    ]
    return min(days) if days else None


def cmd_ui(args: argparse.Namespace) -> int:
    from lifecycle_assets.config import FIRST_DAY_ENV

    home = _home(args)
    cmd = [
        sys.executable, "-m", "dagster", "dev",
        "-w", str(project_root() / "workspace.yaml"),
        "--host", args.host, "--port", str(args.port),
    ]  # fmt: skip
    env = {**os.environ, **home.tool_env()}
    # The UI's daily partitions begin with the home's data, so that it counts and plots the
    # days the loop has lived (not every day since the first day the loop can partition).
    first = loop_first_day(home)
    if first:
        env[FIRST_DAY_ENV] = first
    print(
        f"Dagster UI for {home.root} on http://{args.host}:{args.port}, days from "
        f"{first or 'the first partition'} (Ctrl-C stops it)"
    )
    sys.stdout.flush()
    # Become `dagster dev`: signals reach it directly and it stops its webserver and daemon.
    os.chdir(project_root())
    os.execve(sys.executable, cmd, env)


# Command groups that live with their stage; each module has `register(add)`, where
# `add(name, help)` returns a sub-parser that already takes --workdir.
COMMAND_GROUPS: tuple[str, ...] = (
    "lifecycle_assets.commands.data",
    "lifecycle_assets.commands.validation",
    "lifecycle_assets.commands.registry",
    "lifecycle_assets.commands.replay",
)


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
    p.add_argument(
        "--instance",
        metavar="POSTGRES_URL",
        help="store the Dagster instance in this PostgreSQL database "
        "(postgresql://USER:PASSWORD@HOST:PORT/DB; default: SQLite in the home)",
    )
    p.set_defaults(func=cmd_init)

    p = add("materialize", "materialise assets of the loop for one daily partition")
    p.add_argument("--select", required=True, help="comma-separated asset names")
    p.add_argument("--partition", required=True, help="the day, YYYY-MM-DD")
    p.set_defaults(func=cmd_materialize)

    p = add("demo", "run the end-to-end demo on the built-in simulator")
    p.add_argument("--days", type=int, default=None, help="simulated days (default 18)")
    p.add_argument("--seed", type=int, default=None, help="simulator seed")
    p.add_argument("--port", type=int, default=None, help="port for bentoml serve")
    p.add_argument("--config", help="a lifecycle.yaml for the simulator (default: the example)")
    p.add_argument(
        "--start-date",
        type=dt.date.fromisoformat,
        default=None,
        help="the first simulated day, YYYY-MM-DD (default: the days end yesterday)",
    )
    p.add_argument(
        "--no-bentos",
        dest="bentos",
        action="store_false",
        help="skip the Bento per promotion (each build takes seconds to half a minute)",
    )
    p.add_argument(
        "--shadow-days",
        type=int,
        default=None,
        help="serve each challenger that passes the offline gate in shadow for N days before "
        "the shadow gate decides (release.shadow_days; default: the config's, 0 in the example)",
    )
    p.add_argument(
        "--drift-end-day",
        type=int,
        default=None,
        help="the simulated day (counted from 0) on which the drift ends and the pattern "
        "before it returns (simulation.drift_end_day; default: the drift lasts)",
    )
    p.set_defaults(func=cmd_demo)

    p = add("ui", "start `dagster dev` on the home")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    for module in COMMAND_GROUPS:
        importlib.import_module(module).register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LifecycleError as err:
        print(f"lifecycle {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"lifecycle {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
