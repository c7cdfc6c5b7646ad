"""How good can a policy with few retrains be? The best retrain days chosen with hindsight,
from the candidates a periodic replay trained, against the replay's own policies.

    .venv/bin/python benchmarks/retrain_oracle.py --workdir /work/runs/qfull-folds
    .venv/bin/python benchmarks/retrain_oracle.py --workdir DIR --scenarios public-housing

For a `benchmarks/quality.py` workdir, each scenario's periodic home holds one candidate
model per retrain day (`candidate_model`). Every candidate is scored on every later day's
labelled examples (`labeled_examples`: the day's served rows whose labels arrived), so
Q[i, j] is the quality model i would have had on day j. A schedule is a set of retrain days
whose candidates are all promoted (no gate): day j is served by the newest candidate trained
before it, the first model until then. For k = 1 … a third of periodic's retrains, a dynamic
programme finds the at most k days whose schedule has the best mean over the judged days; beside
them, the same measure of promoting every candidate ("always") and of the days the
`triggered` replay actually promoted. This is an upper bound, not a policy: no trigger knows
which candidate will generalise. It says whether the bar "`triggered` within 0.003 of
`periodic` with at most a third of the retrains" can be met on a scenario at all, and
which days a trigger would have had to pick.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from challenger_blend import periodic_homes, stored_model  # noqa: E402

from lifecycle_assets.home import LifecycleHome  # noqa: E402
from lifecycle_assets.metrics import HIGHER_IS_BETTER, metric  # noqa: E402
from lifecycle_assets.storage import AssetStore  # noqa: E402


def quality_matrix(home: LifecycleHome) -> tuple[list[str], dict[tuple[int, int], float]]:
    """The loop's days (with labelled examples) and Q[(i, j)]: candidate of day i on day j."""
    config = home.config()
    label, name = config.problem.label, config.validation.metric
    store = AssetStore.of(home)
    days = sorted(p.stem for p in (home.root / "assets" / "labeled_examples").glob("*.parquet"))
    trained = sorted(p.name.removesuffix(".json") for p in store.root.glob("candidate_model/*"))
    index = {d: i for i, d in enumerate(days)}
    frames = {}
    for day in days:
        frame = pl.read_parquet(store.frame_path("labeled_examples", day)).drop_nulls(label)
        y = frame[label].cast(pl.Float64).to_numpy()
        if len(y) and (config.problem.task != "binary" or len(np.unique(y)) == 2):
            frames[index[day]] = (frame, y)
    q: dict[tuple[int, int], float] = {}
    for day in trained:
        if day not in index:
            continue
        model, i = stored_model(home, "candidate_model", day), index[day]
        for j, (frame, y) in frames.items():
            if j > i:
                q[i, j] = metric(name, y, model.score(frame))
    return days, q


def schedule_mean(
    q: dict[tuple[int, int], float], first: int, retrains: set[int], judged: list[int]
) -> float:
    """Mean quality over `judged` days when `first` and then each day of `retrains` promote."""
    served = sorted({first} | retrains)
    values = [q[max(i for i in served if i < j), j] for j in judged]
    return float(np.mean(values))


def best_schedules(
    q: dict[tuple[int, int], float], first: int, judged: list[int], most: int, higher: bool
) -> dict[int, tuple[float, list[int]]]:
    """For k = 1 … `most`: the best mean with at most k retrains after `first`, and its
    days. f(i, k) = the best total over the judged days after i with model i serving and at
    most k retrains left: serve to the end, or to some later candidate i' and go on from
    there."""
    sign = 1.0 if higher else -1.0
    candidates = sorted({i for i, _ in q} - {first})
    served = {i: [j for j in judged if (i, j) in q] for i in {first, *candidates}}

    def total(i: int, until: int | None) -> float:
        return sum(sign * q[i, j] for j in served[i] if until is None or j <= until)

    @cache
    def f(i: int, k: int) -> tuple[float, tuple[int, ...]]:
        best: tuple[float, tuple[int, ...]] = (total(i, None), ())
        for nxt in (c for c in candidates if c > i) if k else ():
            rest, days = f(nxt, k - 1)
            value = total(i, nxt) + rest
            if value > best[0]:
                best = (value, (nxt, *days))
        return best

    out = {}
    for k in range(1, most + 1):
        value, days = f(first, k)
        out[k] = (sign * value / len(judged), list(days))
    return out


def scenario(home: LifecycleHome) -> dict[str, Any]:
    """The oracle's schedules and the replay's policies, on one scenario's periodic home."""
    config = home.config()
    higher = HIGHER_IS_BETTER[config.validation.metric]
    replay = json.loads((home.root.parent / "replay.json").read_text())
    policies = replay["policies"]
    days, q = quality_matrix(home)
    index = {d: i for i, d in enumerate(days)}
    first = min(i for i, _ in q)
    judged = sorted({j for i, j in q if i == first})
    candidates = {i for i, _ in q} - {first}
    periodic_retrains = policies["periodic"]["retrains"]
    most = max(1, periodic_retrains // 3)
    result: dict[str, Any] = {
        "metric": config.validation.metric,
        "judged_days": len(judged),
        "periodic": {"retrains": periodic_retrains, "mean": policies["periodic"]["mean_quality"]},
        "always": schedule_mean(q, first, candidates, judged),
        "never": schedule_mean(q, first, set(), judged),
        "best": {
            str(k): {"mean": mean, "days": [days[i] for i in picked]}
            for k, (mean, picked) in best_schedules(q, first, judged, most, higher).items()
        },
    }
    if "triggered" in policies:
        periods = policies["triggered"]["periods"]
        promoted = {
            index[p["loop_day"]] for p in periods if p["promoted"] and p["loop_day"] in index
        } - {first}
        result["triggered"] = {
            "retrains": policies["triggered"]["retrains"],
            "mean": policies["triggered"]["mean_quality"],
            "promoted_days": [days[i] for i in sorted(promoted)],
            "schedule_mean": schedule_mean(q, first, promoted & candidates, judged),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    homes = periodic_homes(__doc__.splitlines()[0], argv)
    for path in homes:
        name = path.parents[1].name
        result = scenario(LifecycleHome(path))
        (path.parents[1] / "retrain-oracle.json").write_text(json.dumps(result, indent=2))
        best = "; ".join(
            f"{k}: {b['mean']:.4f} ({', '.join(d[5:] for d in b['days'])})"
            for k, b in result["best"].items()
        )
        trig = result.get("triggered")
        print(
            f"{name} ({result['metric']}, {result['judged_days']} days): never "
            f"{result['never']:.4f}, always {result['always']:.4f}"
            + (
                f", triggered's promotions {trig['schedule_mean']:.4f} "
                f"({trig['retrains']} retrains, days "
                f"{', '.join(d[5:] for d in trig['promoted_days'])})"
                if trig
                else ""
            )
            + f"\n  best k retrains with hindsight: {best}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
