"""Would a challenger averaged with production be rejected less? Measured offline on the
periodic replays a `benchmarks/quality.py` workdir keeps, with the gate's own decision.

    .venv/bin/python benchmarks/challenger_blend.py --workdir /work/runs/qfull-folds
    .venv/bin/python benchmarks/challenger_blend.py --workdir DIR --scenarios public-housing

For every day the periodic policy's gate decided (PASS or FAIL), it reads from that replay's
home the day's challenger (`candidate_model`), the production model it faced (the
`production_model` of the day before) and the day's test split, and decides again with
`validation.record.evaluate_scores` (the home's config, the day's bootstrap seed) for three
challengers:

- `fitted`: the challenger as trained (a check: its decision must equal the recorded one);
- `blend`: the mean of its probability and production's;
- `blend if history`: the blend where the history choice kept the history
  (`training/history.py`), the challenger as fitted where it kept the recent window.

For each it also scores the next gated day's test split, which none of the models saw. It
prints one row per scenario: FAILs of each, and mean quality on the gate's split and on the
next one. Nothing is retrained and no blend is served: a blend promoted would become
production and be blended again, which this does not follow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lifecycle_assets.home import LifecycleHome  # noqa: E402
from lifecycle_assets.metrics import metric  # noqa: E402
from lifecycle_assets.registry.registry import load_reference  # noqa: E402
from lifecycle_assets.storage import AssetStore, ModelReference  # noqa: E402
from lifecycle_assets.training.artifact import ModelArtifact  # noqa: E402
from lifecycle_assets.validation.record import evaluate_scores, gate_seed  # noqa: E402

KINDS = ("fitted", "blend", "blend if history")


def stored_model(home: LifecycleHome, asset: str, day: str) -> ModelArtifact:
    """A model asset's value of `day`: a reference resolved through the registry, or an
    artifact stored whole (homes from before references)."""
    value = AssetStore.of(home).read(asset, day)
    if isinstance(value, ModelReference):
        return load_reference(home, value, f"{asset} {day}")
    if not isinstance(value, ModelArtifact):
        raise SystemExit(f"{home.root}: no {asset} stored for {day}")
    return value


def challengers(cand: ModelArtifact, fitted: np.ndarray, prod: np.ndarray) -> dict:
    blend = (fitted + prod) / 2
    kept_history = (cand.metadata.get("history") or {}).get("chosen") == "history"
    return {"fitted": fitted, "blend": blend, "blend if history": blend if kept_history else fitted}


def scenario(home: LifecycleHome) -> dict[str, Any]:
    """The three challengers' decisions and qualities over the periodic replay in `home`."""
    config = home.config()
    label, name = config.problem.label, config.validation.metric
    replay = json.loads((home.root.parent / "replay.json").read_text())
    periods = replay["policies"]["periodic"]["periods"]
    days = [p["loop_day"] for p in periods]
    gated = [i for i, p in enumerate(periods) if p["decision"] in ("PASS", "FAIL")]
    fails = dict.fromkeys(KINDS, 0)
    quality: dict[str, dict[str, list[float]]] = {"gate": {}, "next": {}}
    agree = 0
    for n, i in enumerate(gated):
        day = days[i]
        cand = stored_model(home, "candidate_model", day)
        prod = stored_model(home, "production_model", days[i - 1])
        rows = pl.read_parquet(AssetStore.of(home).frame_path("test_split", day))
        production = prod.score(rows)
        scored = challengers(cand, cand.score(rows), production)
        seed = gate_seed(config, dt.date.fromisoformat(day))
        for kind, scores in scored.items():
            record = evaluate_scores(rows, lambda s=scores: s, lambda p=production: p, config, seed)
            fails[kind] += record["decision"] == "FAIL"
            if kind == "fitted":
                agree += record["decision"] == periods[i]["decision"]
        splits = {"gate": (rows, scored, production)}
        if n + 1 < len(gated):
            after = pl.read_parquet(
                AssetStore.of(home).frame_path("test_split", days[gated[n + 1]])
            )
            after_prod = prod.score(after)
            splits["next"] = (after, challengers(cand, cand.score(after), after_prod), after_prod)
        for where, (frame, by_kind, prod_scores) in splits.items():
            y = frame[label].cast(pl.Float64).to_numpy()
            if config.problem.task == "binary" and len(np.unique(y)) < 2:
                continue
            for kind, scores in {**by_kind, "production": prod_scores}.items():
                quality[where].setdefault(kind, []).append(metric(name, y, scores))
    return {
        "metric": name,
        "challengers": len(gated),
        "fails": fails,
        "recorded_decisions_reproduced": agree,
        "mean": {
            where: {k: float(np.mean(v)) for k, v in by.items()} for where, by in quality.items()
        },
    }


def periodic_homes(description: str, argv: list[str] | None) -> list[Path]:
    """The periodic replay homes of the `benchmarks/quality.py` workdir the command line
    names (`--workdir`, and optionally `--scenarios`, `--family`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workdir", type=Path, required=True, help="a quality.py workdir")
    parser.add_argument("--scenarios", default="", help="comma-separated (default: all there)")
    parser.add_argument("--family", default="gbdt", help="the replay's family (its folder)")
    args = parser.parse_args(argv)
    wanted = [s for s in args.scenarios.split(",") if s]
    homes = sorted(args.workdir.glob(f"*/replay-{args.family}/periodic"))
    homes = [h for h in homes if not wanted or h.parents[1].name in wanted]
    if not homes:
        parser.error(f"no periodic replay of {args.family} under {args.workdir}")
    return homes


def main(argv: list[str] | None = None) -> int:
    homes = periodic_homes(__doc__.splitlines()[0], argv)
    print("| scenario | challengers | FAILs: " + " / ".join(KINDS) + " | gate split: production"
          " / " + " / ".join(KINDS) + " | next split: same |")  # fmt: skip
    print("|---|---|---|---|---|")
    for path in homes:
        result = scenario(LifecycleHome(path))
        out = path.parents[1] / "challenger-blend.json"
        out.write_text(json.dumps(result, indent=2))
        means = result["mean"]
        cells = [
            " / ".join(f"{means[w].get(k, float('nan')):.4f}" for k in ("production", *KINDS))
            for w in ("gate", "next")
        ]
        fails = " / ".join(str(result["fails"][k]) for k in KINDS)
        check = result["recorded_decisions_reproduced"]
        print(
            f"| {path.parents[1].name} | {result['challengers']} (reproduced {check}) | {fails} "
            f"| {cells[0]} | {cells[1]} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
