"""Data pipeline benchmark: N simulated log rows through ingestion → labelled examples →
features → train/test splits, by three engines on the same Parquet input, side by side.

    .venv/bin/python benchmarks/data_pipeline.py                 # 10 M rows (the bar)
    .venv/bin/python benchmarks/data_pipeline.py --rows 1000000  # a quick look

- polars: the project's own code path — `records.read_predictions`/`read_ground_truth` on
  the log store's daily Parquet segments, `data.validation.validate_predictions`,
  `transforms.build_labeled_examples` and `build_feature_table` per day (as the daily
  partitions run), then the splits over the feature partitions with a streaming scan.
- pandas: the same transforms, vectorised (no apply/iterrows), on pyarrow-backed frames.
- duckdb: the same transforms as SQL (one query per day, then the split queries).

Each engine runs in its own child process; peak memory is that process's max RSS
(`resource.getrusage`). Rows are generated with numpy straight to Parquet (not through the
per-payment simulator): 10 daily partitions, ~3 % labelled, plus a small share of bad rows
(non-finite numbers, duplicates, unknown categories, labels before their prediction).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from lifecycle_assets.simulator.fraud import (
    CATEGORICAL_FEATURES,
    CHANNELS,
    COUNTRIES,
    MERCHANT_CATEGORIES,
    NUMERIC_FEATURES,
)

DAYS = 10
START = dt.date(2026, 6, 1)
# The simulator's schema, so the benchmark's rows look like the demo's traffic.
NUMERIC = NUMERIC_FEATURES
CATEGORICAL = CATEGORICAL_FEATURES
CATEGORIES = {
    "merchant_category": MERCHANT_CATEGORIES,
    "country": COUNTRIES,
    "channel": CHANNELS,
}
MATURITY = 3
TRAIN_DAYS, TEST_DAYS = 5, 2
SPLIT_DAY = START + dt.timedelta(days=DAYS + MATURITY - 1)  # train/test of this day
NOW = dt.datetime.combine(START + dt.timedelta(days=DAYS + MATURITY), dt.time(), dt.UTC)


def config():
    from lifecycle_assets.config import parse_config

    return parse_config(
        {
            "labels": {"maturity_days": MATURITY},
            "windows": {"train_days": TRAIN_DAYS, "test_days": TEST_DAYS},
            "data": {"pii_mode": "drop", "max_event_age_days": 365},
        }
    )


# --- data ------------------------------------------------------------------------------------


def generate(root: Path, rows: int, seed: int = 7) -> int:
    """Daily Parquet segments under root/predictions and root/ground_truth; returns bytes."""
    rng = np.random.default_rng(seed)
    per_day = rows // DAYS
    for d in range(DAYS):
        day = START + dt.timedelta(days=d)
        n = per_day
        seconds = np.sort(rng.integers(0, 86_400, n))
        midnight = np.datetime64(day.isoformat(), "us")
        event = midnight + seconds.astype("timedelta64[s]").astype("timedelta64[us]")
        ids = np.char.add(f"pay-{day:%Y%m%d}-", np.arange(n).astype(str))
        amount = np.round(rng.lognormal(3.5, 0.9, n), 2)
        bad = rng.random(n)
        amount = np.where(bad < 0.0005, np.nan, amount)  # non-finite numerics
        cats = {c: rng.integers(0, len(v), n) for c, v in CATEGORIES.items()}
        country = np.array(CATEGORIES["country"] + ("ZZ",))[
            np.where(bad > 0.9995, len(CATEGORIES["country"]), cats["country"])
        ]  # unknown categories
        card = rng.integers(0, 200_000, n)
        frame = pl.DataFrame(
            {
                "request_id": ids,
                "entity_id": np.char.add("card-", card.astype(str)),
                "event_time": pl.Series(event).dt.replace_time_zone("UTC"),
                "model_version": ["v1"] * n,
                "score": rng.random(n),
                "decision": np.array(["approve", "review", "decline"])[rng.integers(0, 3, n)],
                "logged_at": pl.Series(event).dt.replace_time_zone("UTC"),
                "amount": amount,
                "merchant_risk": np.round(rng.beta(2, 8, n), 4),
                "hour": (seconds // 3600).astype(np.float64),
                "card_age_days": rng.integers(0, 1095, n).astype(np.float64),
                "txn_count_24h": rng.poisson(2.0, n).astype(np.float64),
                "merchant_category": np.array(CATEGORIES["merchant_category"])[
                    cats["merchant_category"]
                ],
                "country": country,
                "channel": np.array(CATEGORIES["channel"])[cats["channel"]],
                "card_number": np.char.add("4", (card * 7919 % 10**15).astype(str)),
            }
        )
        # replayed writes: a few rows written twice
        frame = pl.concat([frame, frame.head(max(n // 2000, 1))])
        folder = root / "predictions" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(folder / "landing.parquet", row_group_size=256_000)

        fraud = rng.random(n) < 0.03
        delay = rng.integers(0, 3, fraud.sum())
        obs_seconds = rng.integers(0, 86_400, fraud.sum())
        for k in range(3):
            pick = delay == k
            observed = np.datetime64((day + dt.timedelta(days=k)).isoformat(), "us") + obs_seconds[
                pick
            ].astype("timedelta64[s]").astype("timedelta64[us]")
            labels = pl.DataFrame(
                {
                    "request_id": ids[fraud][pick],
                    "label": np.ones(pick.sum()),
                    "observed_time": pl.Series(observed).dt.replace_time_zone("UTC"),
                }
            )
            arrival = day + dt.timedelta(days=k)
            folder = root / "ground_truth" / f"date={arrival}"
            folder.mkdir(parents=True, exist_ok=True)
            labels.write_parquet(folder / f"from-{day}.parquet")
    return sum(p.stat().st_size for p in root.rglob("*.parquet"))


# --- engines ---------------------------------------------------------------------------------


def run_polars(logs: Path, out: Path) -> dict[str, int]:
    from lifecycle_assets.data import transforms, validation
    from lifecycle_assets.records import read_ground_truth, read_predictions

    cfg = config()
    p = cfg.problem
    features_dir = out / "feature_table"
    features_dir.mkdir(parents=True)
    quarantined = 0
    for d in range(DAYS):
        day = START + dt.timedelta(days=d)
        preds, bad = read_predictions(
            logs, day, p.numeric_features, p.categorical_features, p.pii_columns
        )
        preds, bad2, _ = validation.validate_predictions(preds, NOW, cfg)
        labels = pl.concat(
            [read_ground_truth(logs, day + dt.timedelta(days=k))[0] for k in range(MATURITY + 1)]
        )
        examples, bad3 = transforms.build_labeled_examples(preds, labels, day, NOW.date(), cfg)
        quarantined += bad.height + bad2.height + bad3.height
        del preds, labels
        transforms.build_feature_table(examples, cfg).write_parquet(features_dir / f"{day}.parquet")
        del examples
    # The splits read the window's partitions lazily, one day at a time, and stream them to
    # Parquet: memory stays bounded by one partition.
    counts = {"quarantined": quarantined}
    days = [pl.scan_parquet(f) for f in sorted(features_dir.glob("*.parquet"))]
    for which in ("train", "test"):
        split = transforms.stream_split(days, SPLIT_DAY, which, cfg)
        split.sink_parquet(out / f"{which}.parquet", engine="streaming")
        counts[which] = pl.scan_parquet(out / f"{which}.parquet").select(pl.len()).collect().item()
    return counts


def run_pandas(logs: Path, out: Path) -> dict[str, int]:
    import pandas as pd

    features_dir = out / "feature_table"
    features_dir.mkdir(parents=True)
    keep = [
        "request_id",
        "entity_id",
        "event_time",
        *NUMERIC,
        *CATEGORICAL,
        "is_fraud",
        "label_status",
        "label_matured",
        "model_version",
        "score",
    ]
    quarantined = 0
    now = pd.Timestamp(NOW)
    for d in range(DAYS):
        day = START + dt.timedelta(days=d)
        df = pd.concat(
            [pd.read_parquet(f) for f in sorted((logs / "predictions" / f"date={day}").glob("*"))]
        )
        lo = pd.Timestamp(dt.datetime.combine(day, dt.time(), dt.UTC))
        num = df[list(NUMERIC)].to_numpy()
        ok = (
            df["request_id"].notna()
            & df["event_time"].notna()
            & np.isfinite(num).all(axis=1)
            & df[list(CATEGORICAL)].notna().all(axis=1)
            & (df["event_time"] >= lo)
            & (df["event_time"] < lo + pd.Timedelta(days=1))
            & (df["event_time"] <= now + pd.Timedelta(seconds=300))
        )
        quarantined += int((~ok).sum())
        df = df[ok]
        dup = df["request_id"].duplicated(keep="first")
        quarantined += int(dup.sum())
        df = df[~dup]
        for col, known in CATEGORIES.items():
            df[col] = df[col].where(df[col].isin(known), "__oov__")
        df = df.drop(columns=["card_number"])
        labels = pd.concat(
            [
                pd.read_parquet(f)
                for k in range(MATURITY + 1)
                for f in sorted(
                    (logs / "ground_truth" / f"date={day + dt.timedelta(days=k)}").glob("*")
                )
            ]
        )
        window_end = lo + pd.Timedelta(days=MATURITY + 1)
        labels = labels[labels["observed_time"] < window_end].sort_values(
            "observed_time", kind="stable"
        )
        labels = labels.drop_duplicates("request_id", keep="first")
        joined = df.merge(labels, on="request_id", how="left")
        leaked = joined["observed_time"] < joined["event_time"]
        quarantined += int(leaked.sum())
        joined = joined[~leaked]
        labeled = joined["label"].notna()
        joined["is_fraud"] = joined["label"].fillna(0.0)
        joined["label_status"] = np.where(labeled, "labeled", "matured_negative")
        joined["label_matured"] = True
        joined[keep].to_parquet(features_dir / f"{day}.parquet", index=False)
    counts = {"quarantined": quarantined}
    table = pd.read_parquet(features_dir)
    for which, (start, end) in _windows().items():
        lo = pd.Timestamp(dt.datetime.combine(start, dt.time(), dt.UTC))
        hi = pd.Timestamp(dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC))
        part = table[
            (table["event_time"] >= lo)
            & (table["event_time"] < hi)
            & table["label_matured"]
            & table["is_fraud"].notna()
        ].sort_values(["event_time", "request_id"])
        part.to_parquet(out / f"{which}.parquet", index=False)
        counts[which] = len(part)
    return counts


def run_duckdb(logs: Path, out: Path) -> dict[str, int]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute(f"SET threads={os.cpu_count() or 1}")
    features_dir = out / "feature_table"
    features_dir.mkdir(parents=True)
    checks = " AND ".join(
        [f"isfinite({c})" for c in NUMERIC] + [f"{c} IS NOT NULL" for c in CATEGORICAL]
    )
    oov = ", ".join(
        f"CASE WHEN {c} IN ({', '.join(repr(v) for v in known)}) THEN {c} ELSE '__oov__' END AS {c}"
        for c, known in CATEGORIES.items()
    )
    quarantined = 0
    for d in range(DAYS):
        day = START + dt.timedelta(days=d)
        lo = f"TIMESTAMPTZ '{day} 00:00:00+00'"
        hi = f"TIMESTAMPTZ '{day + dt.timedelta(days=1)} 00:00:00+00'"
        end = f"TIMESTAMPTZ '{day + dt.timedelta(days=MATURITY + 1)} 00:00:00+00'"
        now = f"TIMESTAMPTZ '{NOW.isoformat()}' + INTERVAL 300 SECOND"
        label_files = [
            str(f)
            for k in range(MATURITY + 1)
            for f in sorted(
                (logs / "ground_truth" / f"date={day + dt.timedelta(days=k)}").glob("*")
            )
        ]
        pred_glob = str(logs / "predictions" / f"date={day}" / "*.parquet")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE raw AS
            SELECT *, row_number() OVER () AS _pos FROM read_parquet('{pred_glob}')""")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE good AS
            SELECT * EXCLUDE (card_number, merchant_category, country, channel, _rank), {oov}
            FROM (
              SELECT *, row_number() OVER (PARTITION BY request_id ORDER BY _pos) AS _rank
              FROM raw
              WHERE request_id IS NOT NULL AND {checks}
                AND event_time >= {lo} AND event_time < {hi} AND event_time <= {now}
            ) WHERE _rank = 1""")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE labels AS
            SELECT request_id, arg_min(label, observed_time) AS label,
                   min(observed_time) AS observed_time
            FROM read_parquet({label_files!r}) WHERE observed_time < {end}
            GROUP BY request_id""")
        con.execute(f"""
            COPY (
              SELECT g.request_id, g.entity_id, g.event_time, {", ".join(NUMERIC)},
                     {", ".join(CATEGORICAL)}, coalesce(l.label, 0.0) AS is_fraud,
                     CASE WHEN l.label IS NULL THEN 'matured_negative' ELSE 'labeled' END
                       AS label_status,
                     true AS label_matured, g.model_version, g.score
              FROM good g LEFT JOIN labels l USING (request_id)
              WHERE l.observed_time IS NULL OR l.observed_time >= g.event_time
              ORDER BY g._pos
            ) TO '{features_dir / f"{day}.parquet"}' (FORMAT parquet)""")
        total = con.execute("SELECT count(*) FROM raw").fetchone()[0]  # type: ignore[index]
        kept = con.execute(
            f"SELECT count(*) FROM read_parquet('{features_dir / f'{day}.parquet'}')"
        ).fetchone()[0]  # type: ignore[index]
        quarantined += total - kept
    counts = {"quarantined": quarantined}
    for which, (start, end_day) in _windows().items():
        lo = f"TIMESTAMPTZ '{start} 00:00:00+00'"
        hi = f"TIMESTAMPTZ '{end_day + dt.timedelta(days=1)} 00:00:00+00'"
        con.execute(f"""
            COPY (SELECT * FROM read_parquet('{features_dir}/*.parquet')
                  WHERE event_time >= {lo} AND event_time < {hi} AND label_matured
                    AND is_fraud IS NOT NULL
                  ORDER BY event_time, request_id)
            TO '{out / f"{which}.parquet"}' (FORMAT parquet)""")
        counts[which] = con.execute(
            f"SELECT count(*) FROM read_parquet('{out / f'{which}.parquet'}')"
        ).fetchone()[0]  # type: ignore[index]
    return counts


def _windows() -> dict[str, tuple[dt.date, dt.date]]:
    """The days each split holds, as the project's splits define them (the train split
    reaches back over the history: `transforms.split_range`)."""
    from lifecycle_assets.data.transforms import split_range

    return {which: split_range(SPLIT_DAY, which, config()) for which in ("train", "test")}


ENGINES = {"polars": run_polars, "pandas": run_pandas, "duckdb": run_duckdb}


def peak_rss() -> int:
    """This process's peak resident memory in bytes.

    VmHWM (Linux) is per address space, so it starts afresh at exec; `ru_maxrss` of a child
    would still count the forking parent's footprint (here: the 10 M generated rows).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(engine: str, logs: Path, out: Path) -> None:
    started = time.perf_counter()
    counts = ENGINES[engine](logs, out)
    seconds = time.perf_counter() - started
    peak = peak_rss()
    print(json.dumps({"engine": engine, "seconds": seconds, "peak_rss": peak, **counts}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--engines", default="polars,duckdb,pandas")
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "LOGS", "OUT"))
    args = parser.parse_args()
    if args.child:
        engine, logs, out = args.child
        child(engine, Path(logs), Path(out))
        return

    work = Path(tempfile.mkdtemp(prefix="lifecycle-bench-"))
    try:
        t0 = time.perf_counter()
        size = generate(work / "logs", args.rows)
        print(
            f"generated {args.rows:,} rows in {time.perf_counter() - t0:.1f} s; "
            f"input Parquet {size / 2**20:.0f} MiB"
        )
        # The baseline interpreter's own footprint, for reading the RSS numbers.
        base = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r});"
                "import polars, pandas, duckdb, lifecycle_assets.data.validation;"
                "from data_pipeline import peak_rss; print(peak_rss())",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        imports_rss = int(base.stdout)
        results = {}
        for engine in args.engines.split(","):
            out = work / f"out-{engine}"
            proc = subprocess.run(
                [sys.executable, __file__, "--child", engine, str(work / "logs"), str(out)],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                raise SystemExit(f"{engine} failed")
            results[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
            shutil.rmtree(out, ignore_errors=True)
            r = results[engine]
            print(
                f"{engine:<7} {r['seconds']:8.1f} s  peak RSS {r['peak_rss'] / 2**20:7.0f} MiB  "
                f"train {r['train']:,}  test {r['test']:,}  quarantined {r['quarantined']:,}"
            )
        print(f"(interpreter + imports alone: {imports_rss / 2**20:.0f} MiB RSS)")
        rows = {e: (r["train"], r["test"], r["quarantined"]) for e, r in results.items()}
        if len(set(rows.values())) > 1:
            raise SystemExit(f"the engines disagree on the rows (train, test, quarantined): {rows}")
        pol = results.get("polars")
        if pol:
            if "pandas" in results:
                print(
                    f"speed vs pandas: {results['pandas']['seconds'] / pol['seconds']:.2f}x "
                    "(bar: >= 5x)"
                )
            if "duckdb" in results:
                print(
                    f"speed vs duckdb: {results['duckdb']['seconds'] / pol['seconds']:.2f}x "
                    "(bar: >= 1.5x)"
                )
            print(f"peak memory / input Parquet: {pol['peak_rss'] / size:.2f}x (bar: <= 2x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
