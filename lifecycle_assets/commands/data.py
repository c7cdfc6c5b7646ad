"""`lifecycle data versions | restore VERSION | gc`: the versioned dataset repository."""

from __future__ import annotations

import argparse
from pathlib import Path

from lifecycle_assets.cli_support import AddCommand, add_json_flag, emit, open_home, progress


def cmd_versions(args: argparse.Namespace) -> int:
    from lifecycle_assets.data import retention  # deferred: polars, DVC

    home = open_home(args)
    rows = retention.list_versions(home)
    lines = [
        f"{r['tag']:<28} {r['commit'][:12]}  {r['date'][:19]}  {r['dvc_hash'] or '-'}"
        + (f"  pinned: {', '.join(r['pinned_by'])}" if r["pinned_by"] else "")
        for r in rows
    ]
    emit(args, {"versions": rows}, "\n".join(lines) or "no dataset versions yet")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    progress(f"restoring {args.version} from the DVC remote")
    from lifecycle_assets.data import retention  # deferred: polars, DVC

    home = open_home(args)
    result = retention.restore_version(home, args.version, Path(args.out) if args.out else None)
    emit(
        args,
        result,
        f"restored {result['version']} ({result['dvc_hash']}) into {result['path']}",
    )
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    progress("planning which dataset versions to keep")
    from lifecycle_assets.data import retention  # deferred: polars, DVC

    home = open_home(args)
    keep = home.config().versioning.keep_versions
    plan = retention.retention_plan(home, keep)
    result = retention.open_repo(home).gc(plan["delete"], dry=args.dry_run)
    data = {**plan, **result, "keep_versions": keep}
    verb = "would delete" if args.dry_run else "deleted"
    emit(
        args,
        data,
        f"kept {len(plan['keep'])} dataset versions ({len(plan['pinned'])} pinned by models or "
        f"decisions), {verb} {len(plan['delete'])}"
        + (f": {', '.join(plan['delete'])}" if plan["delete"] else ""),
    )
    return 0


def register(add: AddCommand) -> None:
    p = add("data", "the versioned dataset repository (versions, restore, gc)")
    sub = p.add_subparsers(dest="data_command", required=True)

    def sub_add(name: str, help_: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_)
        # SUPPRESS: `data --workdir H versions` must not be reset by the subcommand's default
        q.add_argument(
            "--workdir",
            default=argparse.SUPPRESS,
            help="the lifecycle home (default: $LIFECYCLE_HOME or ./.lifecycle)",
        )
        add_json_flag(q)
        return q

    q = sub_add("versions", "list dataset versions (tags), their DVC hashes and pins")
    q.set_defaults(func=cmd_versions)
    q = sub_add("restore", "restore a dataset version byte-identically (cache, else remote)")
    q.add_argument("version", help="a dataset version, e.g. train_split/2026-06-10")
    q.add_argument("--out", help="target directory (default: HOME/restored/<stage>/<day>)")
    q.set_defaults(func=cmd_restore)
    q = sub_add("gc", "apply the retention policy (versioning.keep_versions) with dvc gc")
    q.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    q.set_defaults(func=cmd_gc)
