"""Where one day of the loop spends its time: a profile of one demo day and of a replay.

    .venv/bin/python benchmarks/profile_loop.py                 # both, into docs/profiles/
    .venv/bin/python benchmarks/profile_loop.py --part demo --days 6 --out /tmp/prof --html

`demo`: `lifecycle demo` in this process (a real `bentoml serve` beside it) for `--days`
simulated days, the last one profiled with pyinstrument: serving it traffic over HTTP, the
labels, and the day's Dagster runs. `replay`: `lifecycle replay` of `--replay-days` simulated
days with the `never` and `periodic` policies, profiled whole (divide by the periods for one).

Each profile is saved as its call tree in text (`<out>/demo-day.txt`, `<out>/replay.txt`;
`--html` adds pyinstrument's interactive page, several MB) and split into where the time
went: every sample is given to the innermost frame of this project's code on its stack, read
with the library it was in (`LIBRARIES`, `CATEGORIES`). The split goes to
`<out>/profile.json` (each part rewritten as it finishes) and is printed as a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinstrument import Profiler
from pyinstrument.frame import Frame

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Libraries whose time is one kind of work wherever it is called from.
STORAGE = "Dagster instance storage (SQLAlchemy, SQLite)"
DVC = "DVC (commit, push, gc, dvc.yaml)"
DVC_LIBRARIES = (
    "dvc", "dvc_data", "dvc_objects", "dvc_render", "ruamel", "voluptuous", "sqltrie",
    "diskcache", "dpath", "pathspec", "funcy", "scmrepo", "dulwich", "pygit2", "flufl",
)  # fmt: skip
LIBRARIES = {
    "sqlalchemy": STORAGE,
    "alembic": STORAGE,
    "yaml": "YAML parsing (PyYAML: lifecycle.yaml, Dagster config)",
    **dict.fromkeys(DVC_LIBRARIES, DVC),
}

# (category, a test on (innermost project frame's file:function, the sample's library file)):
# after the library map, the first that matches takes the sample.
CATEGORIES: list[tuple[str, Callable[[str, str], bool]]] = [
    ("training", lambda ours, lib: "/training/" in ours),
    ("gate (bootstrap, guards)", lambda ours, lib: "/validation/" in ours),
    ("IO manager reads/writes", lambda ours, lib: "io_manager" in ours or "storage.py" in ours),
    ("data pipeline (polars)", lambda ours, lib: "/data/" in ours or "/records/" in ours),
    ("monitoring", lambda ours, lib: "/monitoring/" in ours),
    ("serving over HTTP (client side)", lambda ours, lib: "demo.py" in ours or "httpx" in lib),
    ("serving in process", lambda ours, lib: "/serving/" in ours),
    ("Dagster run overhead", lambda ours, lib: "/dagster" in lib),
    ("registry and release", lambda ours, lib: "/registry/" in ours),
]
GIT = "git subprocesses"


def _ours(path: str) -> bool:
    return "/lifecycle_assets/" in path and "/site-packages/" not in path


def split_time(root: Frame | None) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Seconds per category of a pyinstrument frame tree (self time of every frame), and per
    category the seconds per innermost project function that led there (who asked)."""
    out: dict[str, float] = defaultdict(float)
    callers: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    if root is None:
        return {}, {}

    def walk(frame: Frame, ours: str, lib: str) -> None:
        path = frame.file_path or ""
        if path and not path.startswith("<"):
            lib = path  # a built-in (a wait, a read) counts with the code that called it
        if _ours(path):
            ours = "/" + f"{path.split('/lifecycle_assets/')[-1]}:{frame.function}"
        self_time = frame.time - sum(child.time for child in frame.children)
        if self_time > 0:
            if "/versioning/git.py:run" in ours:
                category: str | None = GIT
            else:
                category = LIBRARIES.get(_package(lib)) or next(
                    (name for name, test in CATEGORIES if test(ours, lib)), None
                )
            name = category or f"other: {_package(lib)}"
            out[name] += self_time
            callers[name][ours or "(outside the project)"] += self_time
        for child in frame.children:
            walk(child, ours, lib)

    walk(root, "", "")
    return dict(out), {k: dict(v) for k, v in callers.items()}


def _package(path: str) -> str:
    """The library a file belongs to (its top-level package), or the file's name."""
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0]
    if "/lib/python3" in path:
        return "stdlib: " + Path(path).stem
    return Path(path).name or "?"


def table(root: Frame | None, top: int = 3) -> list[dict[str, Any]]:
    """Categories by seconds, each with its share and the project functions that asked
    for most of it."""
    split, callers = split_time(root)
    total = sum(split.values()) or 1.0
    return [
        {
            "category": k,
            "seconds": round(v, 3),
            "share": round(v / total, 4),
            "from": {
                f: round(t, 3) for f, t in sorted(callers[k].items(), key=lambda kv: -kv[1])[:top]
            },
        }
        for k, v in sorted(split.items(), key=lambda kv: -kv[1])
    ]


HTML = False  # --html: also pyinstrument's interactive HTML (several MB; not for the repo)


def save(profiler: Profiler, out: Path, name: str) -> None:
    """The call tree as text (frames under 1 % of the time folded away), and with --html
    pyinstrument's interactive page (its call tree and timeline)."""
    (out / f"{name}.txt").write_text(
        profiler.output_text(unicode=True, color=False, show_all=False, time="seconds")
    )
    if HTML:
        (out / f"{name}.html").write_text(profiler.output_html())


def profile_demo(days: int, out: Path) -> dict[str, Any]:
    import lifecycle_assets.demo as demo
    from lifecycle_assets.serving.process import free_port

    profiled: dict[str, Any] = {}
    original = demo._run_one_day

    def one_day(
        home: Any, transport: Any, sim: Any, index: int, never: Any = None, bentos: bool = False
    ) -> Any:
        if index != days - 1:
            return original(home, transport, sim, index, never, bentos)
        profiler = Profiler(interval=0.002)
        profiler.start()
        started = time.perf_counter()
        try:
            return original(home, transport, sim, index, never, bentos)
        finally:
            profiled["seconds"] = time.perf_counter() - started
            profiler.stop()
            profiled["profiler"] = profiler

    demo._run_one_day = one_day
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # The loop's own work: a Bento build is a `bentoml build` subprocess of its own.
            summary = demo.run_demo(
                workdir=str(Path(tmp) / "home"), days=days, port=free_port(), bentos=False
            )
    finally:
        demo._run_one_day = original
    profiler = profiled["profiler"]
    save(profiler, out, "demo-day")
    last = summary["daily"][-1]
    return {
        "what": f"day {days} of `lifecycle demo --days {days}` (3,000 payments a day)",
        "wall_seconds": round(profiled["seconds"], 2),
        "demo_stage_seconds": last["seconds"],
        "decision": last["decision"],
        "split": table(profiler.last_session.root_frame() if profiler.last_session else None),
    }


def profile_replay(days: int, out: Path) -> dict[str, Any]:
    from lifecycle_assets.config import example_config_path
    from lifecycle_assets.replay.runner import run_replay
    from lifecycle_assets.replay.simulated import write_simulated_traffic

    with tempfile.TemporaryDirectory() as tmp:
        data = write_simulated_traffic(None, days, Path(tmp) / "traffic.parquet")
        profiler = Profiler(interval=0.002)
        started = time.perf_counter()
        profiler.start()
        try:
            result = run_replay(
                data,
                example_config_path(),
                Path(tmp) / "replay",
                policies=["never", "periodic"],
            )
        finally:
            profiler.stop()
        seconds = time.perf_counter() - started
    save(profiler, out, "replay")
    periods = int(result["periods"])
    return {
        "what": f"`lifecycle replay` of {days} simulated days, policies never and periodic",
        "wall_seconds": round(seconds, 2),
        "periods": periods,
        "seconds_per_period": {
            name: p["seconds_per_period"] for name, p in result["policies"].items()
        },
        "split": table(profiler.last_session.root_frame() if profiler.last_session else None),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["demo", "replay", "both"], default="both")
    parser.add_argument("--days", type=int, default=8, help="demo days (the last is profiled)")
    parser.add_argument("--replay-days", type=int, default=6, help="simulated days replayed")
    parser.add_argument("--out", default=str(ROOT / "docs" / "profiles"))
    parser.add_argument("--html", action="store_true", help="also write pyinstrument's HTML")
    args = parser.parse_args(argv)
    global HTML
    HTML = args.html
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "profile.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.is_file() else {}
    parts = ["demo", "replay"] if args.part == "both" else [args.part]
    for part in parts:
        if part == "demo":
            results["demo"] = profile_demo(args.days, out)
        else:
            results["replay"] = profile_replay(args.replay_days, out)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        r = results[part]
        print(f"\n{part}: {r['what']}: {r['wall_seconds']} s")
        for row in r["split"]:
            if row["share"] < 0.01:
                continue
            print(f"  {row['category']:<52} {row['seconds']:>7.2f} s {100 * row['share']:5.1f} %")
            for caller, seconds in row["from"].items():
                print(f"      {seconds:>7.2f} s  from {caller}")
        rest = sum(row["seconds"] for row in r["split"] if row["share"] < 0.01)
        print(f"  {'the rest (each under 1 %)':<52} {rest:>7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
