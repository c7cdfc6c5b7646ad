"""Scale-out benchmark: the same loop on the embedded components and on their at-scale
counterparts, run here against real servers the script starts (docs/deployment.md).

    PJRT_DEVICE=CPU .venv/bin/python benchmarks/scale_out.py            # 5 days, the table
    PJRT_DEVICE=CPU .venv/bin/python benchmarks/scale_out.py --days 3   # a quick look

- seconds per loop day (`run_day`, in process: ingest, label refresh, training and the
  gate) on a home whose Dagster instance is SQLite in the home vs a PostgreSQL server
  (`initdb` + `pg_ctl` on a free port), over the same simulated days (the tests' small days);
- push and pull seconds of one day's datasets (`train_split` and `test_split` at the last
  day's tags) through a local-directory DVC remote vs an S3-compatible endpoint (moto's
  server on a free port): push into an empty remote from the home's cache, pull into a
  fresh clone of the registry repo with an empty cache.

Prints a Markdown table and writes the figures as JSON (--out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lifecycle_assets.automation.loop import run_day
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.home_setup import init_home
from lifecycle_assets_tests.automation.test_loop import simulate_day
from lifecycle_assets_tests.data.test_pipeline_home import CONFIG
from lifecycle_assets_tests.servers import postgres_server, s3_environment, s3_server

BUCKET = "lifecycle-bench"
SPLITS = ("train_split", "test_split")


def _home(root: Path, config_text: str, instance: str | None = None) -> LifecycleHome:
    os.environ.update(LifecycleHome(root).tool_env())
    root.parent.mkdir(parents=True, exist_ok=True)
    config = root.parent / f"{root.name}.yaml"
    config.write_text(config_text)
    return init_home(root, config, instance)


def loop_days(homes: list[LifecycleHome], days: int) -> list[list[float]]:
    """Seconds of each day on each home, the homes taking turns day by day (so a change in
    the machine's load falls on both alike)."""
    seconds: list[list[float]] = [[] for _ in homes]
    for index in range(days):
        for home, figures in zip(homes, seconds, strict=True):
            home.activate()
            day = simulate_day(home, index)
            started = time.perf_counter()
            run_day(home, day)
            figures.append(round(time.perf_counter() - started, 2))
    return seconds


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def transfer(home: LifecycleHome, remote: str, options: dict[str, str], base: Path) -> dict:
    """Push the last day's datasets from `home` into the empty `remote`, then pull them into
    a fresh clone of the registry repo (empty cache): seconds of each."""
    env = home.tool_env()

    def dvc(cwd: Path, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "dvc", *args],
            cwd=cwd, env={**os.environ, **env}, check=True, capture_output=True,
        )  # fmt: skip

    dvc(home.repo, "remote", "add", "--local", "-f", "bench", remote)
    for key, value in options.items():
        dvc(home.repo, "remote", "modify", "--local", "bench", key, value)
    targets = [f"dvc.yaml:{s}" for s in SPLITS]
    from dvc.repo import Repo  # in process: the figures are the transfers, not start-up

    home.activate()
    with contextlib.chdir(home.repo), Repo(str(home.repo)) as source:
        push = _timed(lambda: source.push(targets=targets, remote="bench"))
    clone = base / f"clone-{len(list(base.glob('clone-*')))}"
    subprocess.run(["git", "clone", "-q", str(home.repo), str(clone)], check=True)
    dvc(clone, "remote", "add", "--local", "-f", "bench", remote)
    for key, value in options.items():
        dvc(clone, "remote", "modify", "--local", "bench", key, value)
    with contextlib.chdir(clone), Repo(str(clone)) as fresh:
        pull = _timed(lambda: fresh.pull(targets=targets, remote="bench"))
    size = sum(p.stat().st_size for s in SPLITS for p in (clone / "datasets" / s).rglob("*"))
    return {"push_s": round(push, 2), "pull_s": round(pull, 2), "bytes": size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("PJRT_DEVICE", "CPU")
    results: dict = {"days": args.days}
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        base = Path(tmp)
        os.environ.update(s3_environment(base))
        sqlite_home = _home(base / "sqlite" / "home", CONFIG)
        with postgres_server() as url:
            pg_home = _home(base / "postgres" / "home", CONFIG, url)
            sq, pg = loop_days([sqlite_home, pg_home], args.days)
        results["sqlite_day_s"], results["postgres_day_s"] = sq, pg
        results["local_remote"] = transfer(sqlite_home, str(base / "bench-remote"), {}, base)
        with s3_server(BUCKET) as endpoint:
            results["s3_remote"] = transfer(
                sqlite_home, f"s3://{BUCKET}/bench", {"endpointurl": endpoint}, base
            )
    local, s3 = results["local_remote"], results["s3_remote"]
    print(
        "| measure | embedded | at scale |\n|---|---|---|\n"
        f"| seconds per loop day, median of {args.days} (SQLite vs PostgreSQL) | "
        f"{statistics.median(sq):.1f} | {statistics.median(pg):.1f} |\n"
        f"| push of a day's datasets, s (local remote vs S3 endpoint; {local['bytes']} bytes) | "
        f"{local['push_s']:.2f} | {s3['push_s']:.2f} |\n"
        f"| pull into a fresh clone, s (local remote vs S3 endpoint) | "
        f"{local['pull_s']:.2f} | {s3['pull_s']:.2f} |"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
