"""`lifecycle validation show DAY` and `lifecycle validation recheck DAY [--shadow]`."""

from __future__ import annotations

import argparse
from typing import Any

from lifecycle_assets.cli_support import AddCommand, add_json_flag, emit, open_home, progress

EXIT_MISMATCH = 1


def register(add: AddCommand) -> None:
    parser = add("validation", "show or recheck a day's gate decision")
    sub = parser.add_subparsers(dest="validation_command", required=True)
    for name, help_, func in (
        ("show", "show the decision record of a day", cmd_show),
        ("recheck", "recompute a day's decision from its versioned data and models", cmd_recheck),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("day", help="the validation_report partition, YYYY-MM-DD")
        p.add_argument(
            "--workdir",
            # SUPPRESS: given here or before the sub-command, never reset by a default
            default=argparse.SUPPRESS,
            help="the lifecycle home (default: $LIFECYCLE_HOME or ./.lifecycle)",
        )
        add_json_flag(p)
        p.set_defaults(func=func)
        if name == "recheck":
            p.add_argument(
                "--shadow",
                action="store_true",
                help="the day's shadow gate decision instead, from its window's logged scores",
            )


def cmd_show(args: argparse.Namespace) -> int:
    from lifecycle_assets.validation.record import load_record

    record = load_record(open_home(args), args.day)
    emit(args, record, describe(record))
    return 0


def cmd_recheck(args: argparse.Namespace) -> int:
    if args.shadow:
        progress(f"recomputing the shadow decision of {args.day} from its window's logged scores")
        from lifecycle_assets.validation.shadow import recheck_shadow

        result = recheck_shadow(open_home(args), args.day)
        source = "the window's logged scores and labels"
    else:
        progress(f"recomputing the decision of {args.day} from its versioned data and models")
        from lifecycle_assets.validation.record import recheck

        result = recheck(open_home(args), args.day)
        source = "the versioned data and models"
    if result["matches"] is None or "note" in result:
        verdict = {None: "", True: " — matches", False: " — does NOT match"}[result["matches"]]
        text = f"{result['day']}: {result['decision']} — {result['note']}{verdict}"
    elif result["matches"]:
        text = (
            f"{result['day']}: {result['decision']} reproduced from {source} "
            f"(Δ lower bound {result['recomputed']['delta_lower_bound']})"
        )
    else:
        text = (
            f"{result['day']}: stored {result['decision']} does NOT match the recomputation:\n"
            + ("\n".join(f"  {d}" for d in result["differences"]))
        )
    emit(args, result, text)
    return EXIT_MISMATCH if result["matches"] is False else 0


def _num(value: Any, fmt: str = "+.4f") -> str:
    return "—" if value is None else format(value, fmt)


def describe(r: dict[str, Any]) -> str:
    from lifecycle_assets.decision import Decision  # (pydantic: not on the parser's path)

    lines = [
        f"decision {r.get('day')}: {r.get('decision')}",
        f"  reason      {r.get('reason', '')}",
        f"  challenger  {r.get('challenger_version')}   production {r.get('production_version')}",
        f"  decided at  {r.get('decided_at')}   by {r.get('actor') or r.get('run_id') or '—'}",
    ]
    if r.get("decision") == Decision.FORCED:
        gate = r.get("superseded")
        if isinstance(gate, dict):
            lines.append(
                f"  overrides   gate decision {gate.get('decision')}: {gate.get('reason')}"
            )
        return "\n".join(lines)
    if "metric" in r and r.get("challenger_metric") is not None:
        alpha = r.get("alpha", 0.05)
        lines += [
            f"  metric      {r['metric']}: challenger {_num(r.get('challenger_metric'), '.4f')} "
            f"{_interval(r.get('challenger_interval'))}, production "
            f"{_num(r.get('production_metric'), '.4f')} {_interval(r.get('production_interval'))}",
            f"  Δ           {_num(r.get('delta'))}, one-sided {1 - alpha:.0%} lower bound "
            f"{_num(r.get('delta_lower_bound'))} vs −margin {_num(-r.get('margin', 0))}",
        ]
    for name, guard in (r.get("guards") or {}).items():
        lines.append(
            f"  guard       {name}: {'pass' if guard['passed'] else 'FAIL'} — {guard['reason']}"
        )
    lines += [
        f"  data        {r.get('test_split_tag')} (dvc {str(r.get('test_split_dvc_hash'))[:12]}), "
        f"{r.get('test_rows')} rows; trained on {r.get('train_split_tag')}",
        f"  code        {str(r.get('code_commit'))[:12]}{' (dirty)' if r.get('code_dirty') else ''}"
        f", uv.lock {str(r.get('lockfile_sha256'))[:12]}",
    ]
    if r.get("golden_dataset_tag"):
        lines.append(f"  golden      {r['golden_dataset_tag']}")
    if r.get("stage"):
        lines.append(
            f"  stage       {r['stage']}"
            + (f": {r['stage_reason']}" if r.get("stage_reason") else "")
        )
    shadow = r.get("shadow_gate")
    if isinstance(shadow, dict):
        lines.append(
            f"  shadow gate {shadow.get('day')}: {shadow.get('decision')} ({shadow.get('action')}) "
            f"on {shadow.get('n_rows')} live rows — {shadow.get('reason')}"
        )
    return "\n".join(lines)


def _interval(value: list[float] | None) -> str:
    return "" if not value else f"[{value[0]:.4f}, {value[1]:.4f}]"
