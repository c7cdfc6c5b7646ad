"""The gate's paired bootstrap at the sizes of a large day: `validation.gate.decide` on a test
split of N rows, each size in a fresh process (its own peak RSS).

    PYTHONPATH=. .venv/bin/python benchmarks/gate_speed.py                      # 100 k, 1 M
    PYTHONPATH=. .venv/bin/python benchmarks/gate_speed.py --rows 20000 --out /tmp/gate.json

The rows look like the scale run's card-fraud day: 3 % positives, scores as float32
probabilities (so many tie), two models of close quality, and three categorical slice
features (18 slices of the slice guard). The gate's defaults: 1,000 resamples at least, more
while the verdict is within the resampling's own error. Each size reports the seconds of
`decide`, the process's peak RSS, the resamples drawn and a digest of the record's figures,
so two runs (two commits) can be checked to decide the same. No bar of its own: the loop's
scale bar (`benchmarks/loop_scale.py`) counts the gate among the non-training stages.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one_size(rows: int) -> dict[str, Any]:
    """Time `decide` on `rows` synthetic test rows in this process."""
    import numpy as np

    from lifecycle_assets.config import ValidationConfig
    from lifecycle_assets.validation.gate import decide

    rng = np.random.default_rng(0)
    y = (rng.random(rows) < 0.03).astype(np.float64)

    def model(lift: float) -> np.ndarray:
        logit = rng.normal(-3.5, 1.2, rows) + lift * y
        return (1 / (1 + np.exp(-logit))).astype(np.float32).astype(np.float64)

    challenger, production = model(2.0), model(1.9)
    slices = {
        "country": rng.choice(list("ABCDEFG"), rows),
        "channel": rng.choice(["web", "app", "pos"], rows),
        "merchant": rng.choice([f"m{i}" for i in range(8)], rows),
    }
    started = time.perf_counter()
    record = decide(y, challenger, production, ValidationConfig(), seed=3, slices=slices)
    seconds = time.perf_counter() - started
    figures = {
        k: record[k]
        for k in ("decision", "challenger_metric", "production_metric", "delta_lower_bound")
    }
    figures["slices"] = [s["delta_interval"] for s in record["guards"]["slices"]["slices"]]
    digest = hashlib.sha256(json.dumps(figures, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "resamples": record["bootstrap_samples"],
        "slices_tested": record["guards"]["slices"]["tested"],
        "decision": record["decision"],
        "record_digest": digest,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", action="append", type=int, help="test rows (repeatable)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one_size(args.child)))
        return 0
    results = []
    for rows in args.rows or [100_000, 1_000_000]:
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(rows)],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(
            f"{r['rows']:>9,} rows: {r['seconds']:8.2f} s, peak RSS {r['peak_rss_mib']:,} MiB, "
            f"{r['resamples']} resamples, {r['slices_tested']} slices, {r['decision']} "
            f"(record {r['record_digest']})",
            flush=True,
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
