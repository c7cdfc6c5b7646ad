"""Helpers shared by the command groups of the `lifecycle` CLI (each group a module of
`commands/`, registered in `lifecycle_assets.cli.COMMAND_GROUPS`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from lifecycle_assets.home import LifecycleHome, resolve_home

AddCommand = Callable[..., argparse.ArgumentParser]


def open_home(args: argparse.Namespace) -> LifecycleHome:
    """The home named by --workdir (or $LIFECYCLE_HOME), checked to exist, tools pointed at it."""
    home = LifecycleHome(resolve_home(args.workdir)).require()
    home.activate()
    return home


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def emit(args: argparse.Namespace, data: Any, human: str) -> None:
    """Print `data` as JSON with --json, else the human-readable text."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(human)


def progress(message: str) -> None:
    """A first line for a person at a terminal, on stderr, before a command's slow part
    (its imports alone take seconds): it says what started. Not printed when stderr is not
    a terminal, so scripts see the result or one line of error and nothing else."""
    if sys.stderr.isatty():
        print(f"{message} …", file=sys.stderr, flush=True)
