"""`lifecycle models …`: list, verify, restore, show, approve, release, rollback, served-at,
reproduce.

Every argument naming a version is validated before anything touches the filesystem or git;
every model is loaded through `load_artifact` (hash-checked) before an alias moves.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from lifecycle_assets.cli_support import AddCommand, add_json_flag, emit, open_home, progress
from lifecycle_assets.home import LifecycleHome

if TYPE_CHECKING:
    from lifecycle_assets.registry.release import Report

EXIT_MISMATCH = 1


def register(add: AddCommand) -> None:
    parser = add("models", "the model registry and its release process")
    sub = parser.add_subparsers(dest="models_command", required=True)

    def command(name: str, help_: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument(
            "--workdir",
            default=argparse.SUPPRESS,  # given here or before the sub-command
            help="the lifecycle home (default: $LIFECYCLE_HOME or ./.lifecycle)",
        )
        add_json_flag(p)
        p.set_defaults(func=func)
        return p

    command("list", "registered versions, their aliases, decisions and approval", cmd_list)
    p = command("verify", "check versions against their registration in git history", cmd_verify)
    p.add_argument("version", nargs="?", help="e.g. v3 (default: every version)")
    p = command(
        "restore",
        "bring a version into this home's registry model store from the DVC remote (a fresh node)",
        cmd_restore,
    )
    p.add_argument("version", nargs="?", help="e.g. v3 (default: the production version)")
    p = command("show", "a version's record, decision, alias history and model card", cmd_show)
    p.add_argument("version", help="e.g. v3")
    p = command("approve", "approve a version the gate passed (review its card first)", cmd_approve)
    p.add_argument("version")
    p.add_argument("--reason", default="reviewed the model card", help="why it is approved")
    p = command("release", "point production at a version (approved, or passed)", cmd_release)
    p.add_argument("version")
    p.add_argument("--force", action="store_true", help="override the gate (FORCED record)")
    p.add_argument("--reason", help="why (required with --force)")
    p = command("rollback", "restore an earlier production model", cmd_rollback)
    p.add_argument("--to", help="the version to restore (default: the previous production)")
    p.add_argument("--reason", required=True, help="why the rollback")
    p = command("served-at", "which version served at a time, by the loop's clock", cmd_served_at)
    p.add_argument("time", help="now, YYYY-MM-DD (end of that day) or an ISO time (UTC)")
    p = command("reproduce", "retrain a version from its data version and compare", cmd_reproduce)
    p.add_argument("version")
    p.add_argument(
        "--device",
        choices=("cpu", "xla"),
        help="train on this path (default: the one that trained the version)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="largest score difference accepted between eager and XLA (default 1e-6)",
    )


def cmd_list(args: argparse.Namespace) -> int:
    from lifecycle_assets.registry.queries import list_versions

    rows = list_versions(open_home(args))
    lines = [
        f"{'version':8} {'aliases':22} {'stage':10} {'day':10} {'decision':12} {'approval':18} "
        "device"
    ]
    for r in rows:
        lines.append(
            f"{r['version']:8} {','.join(r['aliases']) or '-':22} {r['stage']:10} "
            f"{r['day'] or '-':10} {r['decision'] or '-':12} {r['approval'] or '-':18} "
            f"{r['device'] or '-'}"
        )
    emit(args, rows, "\n".join(lines) if rows else "no model versions yet")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 1 when any version does not match what registered it."""
    progress(f"verifying {args.version or 'every version'} against its registration")
    from lifecycle_assets.registry import release as rel
    from lifecycle_assets.registry.registry import verify_versions

    home = open_home(args)
    versions = None if args.version is None else [rel.check_version_arg(args.version)]
    rows = verify_versions(home, home.config().problem.name, versions)
    lines = [f"{r['version']:8} {'ok' if r['ok'] else 'FAILED':7} {r['reason']}" for r in rows]
    emit(args, rows, "\n".join(lines) if rows else "no model versions yet")
    return 0 if all(r["ok"] for r in rows) else EXIT_MISMATCH


def cmd_restore(args: argparse.Namespace) -> int:
    progress(f"restoring {args.version or 'the production version'}")
    from lifecycle_assets.registry.queries import registry_for
    from lifecycle_assets.registry.registry import RegistryError, validate_version

    home = open_home(args)
    reg = registry_for(home)
    version = validate_version(args.version) if args.version else reg.alias("production")
    if version is None:
        raise RegistryError("no production version to restore yet: name one (e.g. v1)")
    restored = reg.restore(version)
    where = "restored from the DVC remote into" if restored else "already in"
    emit(
        args,
        {"version": version, "restored": restored},
        f"{reg.model_name}:{version} {where} the model store of {home.root}",
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from lifecycle_assets.registry import release as rel
    from lifecycle_assets.registry.queries import show_version

    version = rel.check_version_arg(args.version)
    data = show_version(open_home(args), version)
    decision = data["decision"] or {}
    text = "\n".join(
        [
            f"{version}: aliases {', '.join(data['aliases']) or 'none'}; "
            f"approval {(data['approval'] or {}).get('status', 'none')}; "
            f"gate {decision.get('decision', 'none')} on {decision.get('day', '-')}",
            "",
            "Alias history:",
            *(
                f"  {e['time']}  {e['alias']}: {e.get('from') or '-'} -> {e.get('to') or '-'}"
                f"  by {e.get('actor', '?')}: {e.get('reason', '')}"
                for e in data["alias_history"]
            ),
            *([] if data["alias_history"] else ["  (never on an alias)"]),
            "",
            data["model_card"] or "(no model card)",
        ]
    )
    emit(args, data, text)
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    progress(f"approving {args.version}")
    from lifecycle_assets.registry import release as rel

    version = rel.check_version_arg(args.version)
    out = rel.approve(open_home(args), version, actor=rel.cli_actor(), reason=args.reason)
    emit(args, out, f"{version} approved by {out['approval']['actor']}")
    return 0


def runless_report(home: LifecycleHome) -> Report:
    from lifecycle_assets.automation.loop import runless_report as report  # brings Dagster

    return report(home)


def cmd_release(args: argparse.Namespace) -> int:
    progress(f"releasing {args.version} to production")
    from lifecycle_assets.registry import release as rel

    version = rel.check_version_arg(args.version)
    home = open_home(args)
    out = rel.release(
        home,
        version,
        actor=rel.cli_actor(),
        reason=args.reason,
        force=args.force,
        report=runless_report(home),
    )
    emit(args, out, _moved(out))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    progress(f"rolling production back to {args.to or 'the previous version'}")
    from lifecycle_assets.registry import release as rel

    to = rel.check_version_arg(args.to) if args.to is not None else None
    home = open_home(args)
    out = rel.rollback(
        home, to=to, actor=rel.cli_actor(), reason=args.reason, report=runless_report(home)
    )
    emit(args, out, _moved(out))
    return 0


def cmd_served_at(args: argparse.Namespace) -> int:
    from lifecycle_assets.registry.queries import parse_time, served_at

    home = open_home(args)
    out = served_at(home, parse_time(args.time, home))
    text = (
        f"{out['time']}: {out['version']} (production since {out['since']}, "
        f"by {out['actor']}: {out['reason']})"
        if out["version"]
        else f"{out['time']}: no production model yet"
    )
    emit(args, out, text)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    progress(f"retraining {args.version} from its recorded data version")
    from lifecycle_assets.registry import release as rel
    from lifecycle_assets.registry.reproduce import CROSS_DEVICE_TOLERANCE, reproduce

    version = rel.check_version_arg(args.version)
    out = reproduce(
        open_home(args),
        version,
        device=args.device,
        tolerance=CROSS_DEVICE_TOLERANCE if args.tolerance is None else args.tolerance,
    )
    verdict = "reproduced" if out["matches"] else "DOES NOT MATCH"
    text = (
        f"{version} {verdict}: retrained on {out['data_version']} ({out['rows']} rows) with "
        f"{out['device_used']} (recorded {out['device_recorded']}); {out['comparison']}: "
        f"bitwise {out['bitwise_identical']}, max weight Δ {out['max_weight_diff']:.3g}, "
        f"max score Δ {out['max_score_diff']:.3g}"
    )
    emit(args, out, text)
    return 0 if out["matches"] else EXIT_MISMATCH


def _moved(out: dict[str, Any]) -> str:
    e = out["event"]
    return (
        f"{out['action']}: production {e['from'] or '(none)'} → {e['to']} by {e['actor']} at "
        f"{e['time']} ({e['reason']}); commit {out['git_commit'][:12]}"
    )
