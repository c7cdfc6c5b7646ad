"""`lifecycle replay` and `lifecycle simulate`: replay a labelled file through the loop, and
write the built-in simulator's traffic as such a file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lifecycle_assets.cli_support import AddCommand, emit
from lifecycle_assets.home import project_root

DEFAULT_DIR = ".lifecycle-replay"


def _say(msg: str) -> None:
    print(f"[replay {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cmd_replay(args: argparse.Namespace) -> int:
    from lifecycle_assets.replay.runner import run_replay

    workdir = args.workdir or str(project_root() / DEFAULT_DIR)
    summary = run_replay(
        args.data,
        args.config,
        workdir,
        policies=args.policy or None,
        period=args.period,
        serve=args.serve,
        echo=(lambda _: None) if args.json else _say,
        jobs=args.jobs,
    )
    root = Path(workdir).resolve()
    means = summary["comparison"]["mean_quality"]
    lines = [
        f"replay of {summary['requests']} requests in {summary['periods']} {summary['period']}s:"
    ]
    for name, res in summary["policies"].items():
        q = means.get(name)
        lines.append(
            f"  {name:9} mean {summary['metric']} {'—' if q is None else f'{q:.4f}'}; "
            f"trained {res['retrains']}, promoted {res['promotions']}, rejected "
            f"{res['rejections']}, alerts {res['alerts']}; {res['seconds_per_period']} s/period"
        )
    lines.append(f"  best: {summary['comparison']['best']}; {root}/replay.json, {root}/report.html")
    data = {k: v for k, v in summary.items() if k != "policies"}
    data["policies"] = {
        k: {x: y for x, y in v.items() if x != "periods"} for k, v in summary["policies"].items()
    }
    emit(args, data, "\n".join(lines))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from lifecycle_assets.config import example_config_path
    from lifecycle_assets.replay.simulated import write_simulated_traffic

    config = args.config or str(example_config_path())
    path = write_simulated_traffic(config, args.days, args.out, seed=args.seed)
    emit(
        args, {"path": str(path), "days": args.days}, f"wrote {args.days} simulated days to {path}"
    )
    return 0


def register(add: AddCommand) -> None:
    p = add(
        "replay",
        "replay a timestamped, labelled Parquet/CSV file through the whole loop per policy",
    )
    p.add_argument("data", help="the file (.parquet or .csv); columns named by the config")
    p.add_argument("--config", required=True, help="the lifecycle.yaml describing the file")
    p.add_argument(
        "--policy",
        action="append",
        choices=["never", "periodic", "triggered", "shadow"],
        help="a retraining policy (repeat for several; default: the config's replay.policies)",
    )
    p.add_argument(
        "--period",
        choices=["day", "week", "month"],
        default=None,
        help="the data's time replayed as one loop day (default: the config's replay.period)",
    )
    p.add_argument(
        "--serve",
        choices=["inprocess", "http"],
        default="inprocess",
        help="the serving code path in this process (default) or a real `bentoml serve`",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="policies replayed at once, each in a process of its own (default 1: one after "
        "the other; the results are the same, the seconds per period are not comparable)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_replay)

    p = add("simulate", "write the built-in simulator's traffic as a labelled replay file")
    p.add_argument("--days", type=int, required=True, help="simulated days")
    p.add_argument("--out", required=True, help="the file to write (.parquet or .csv)")
    p.add_argument("--config", help="a lifecycle.yaml (simulation; default: the built-in example)")
    p.add_argument("--seed", type=int, default=None, help="simulator seed")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_simulate)
