"""How fast the CLI answers `--help`: `lifecycle --help` and `lifecycle <command> --help` for
every command, each in a fresh process, as a user types them.

    .venv/bin/python benchmarks/cli_startup.py                 # 7 runs of each, a table
    .venv/bin/python benchmarks/cli_startup.py --runs 3 --out /tmp/cli.json

The bar: the median of each is under 0.5 s. The command modules import their stage (PyTorch,
Dagster, polars, DVC, BentoML) only when a command runs, so `--help` costs the interpreter's
start and the parser. The interpreter's own start (`python -c pass`) is measured in the same
run and printed beside, as the floor no parser change can go under. Timings are wall-clock
on this machine and move with its load: read them against that floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BAR_SECONDS = 0.5


def commands() -> list[list[str]]:
    """`--help` alone, then each command's `--help`, in the parser's order."""
    from lifecycle_assets.cli import build_parser

    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [["--help"], *([name, "--help"] for name in sub.choices)]


def time_one(argv: list[str]) -> float:
    """Seconds for one fresh process to answer (its output discarded); a failure is an error."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-500:]}")
    return seconds


def measure(runs: int, only: list[list[str]] | None = None) -> dict[str, Any]:
    """Each command's timings over `runs` fresh processes, the interpreter's floor, and the
    verdict per command (median under `BAR_SECONDS`)."""
    python = [sys.executable]
    floor = [time_one([*python, "-c", "pass"]) for _ in range(runs)]
    rows = []
    for args in only or commands():
        seconds = [time_one([*python, "-m", "lifecycle_assets.cli", *args]) for _ in range(runs)]
        median = statistics.median(seconds)
        rows.append(
            {
                "command": " ".join(["lifecycle", *args]),
                "median_s": round(median, 3),
                "max_s": round(max(seconds), 3),
                "verdict": "PASS" if median < BAR_SECONDS else "MISS",
            }
        )
    return {
        "runs": runs,
        "bar_s": BAR_SECONDS,
        "python_floor_median_s": round(statistics.median(floor), 3),
        "commands": rows,
        "missed": [r["command"] for r in rows if r["verdict"] == "MISS"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="fresh processes per command")
    ap.add_argument("--out", type=Path, help="write the result as JSON here")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    result = measure(args.runs)
    print(f"python -c pass: median {result['python_floor_median_s']:.3f} s (the floor)")
    for row in result["commands"]:
        print(
            f"{row['command']:<36} median {row['median_s']:.3f} s  max {row['max_s']:.3f} s  "
            f"{row['verdict']} (< {BAR_SECONDS} s)"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
