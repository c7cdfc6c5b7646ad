"""Logs → labelled examples → feature table → train/test splits, on small hand-built frames."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lifecycle_assets.config import parse_config
from lifecycle_assets.data.transforms import (
    ACCESS_POLICY,
    CONFLICTING_LABEL,
    LABELED,
    MATURED_NEGATIVE,
    PENDING,
    build_feature_table,
    build_labeled_examples,
    build_split,
    data_card,
    data_card_markdown,
    feature_table_problems,
    split_windows,
    stream_split,
)
from lifecycle_assets.records import GROUND_TRUTH_SCHEMA, PREDICTION_SCHEMA, QUARANTINE_SCHEMA

UTC = dt.UTC
DAY = dt.date(2026, 6, 1)
# Pinned here rather than taken from the defaults, so the hand-computed dates below hold.
PROBLEM = {
    "label": "is_fraud",
    "numeric_features": ["amount", "merchant_risk", "hour"],
    "categorical_features": ["country", "channel"],
    "pii_columns": ["card_number"],
}
CFG = parse_config(
    {
        "problem": PROBLEM,
        "labels": {"maturity_days": 3, "unlabeled_after_maturity": "negative"},
        # no history: the train split is the train window (a history is tested on its own)
        "windows": {"train_days": 10, "test_days": 2, "history_days": 0},
    }
)
DROP_CFG = parse_config(
    {
        "problem": PROBLEM,
        "labels": {"maturity_days": 3, "unlabeled_after_maturity": "drop"},
        "windows": {"train_days": 10, "test_days": 2},
    }
)


def at(day: dt.date, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, us, tzinfo=UTC)


def plus(days: int, base: dt.date = DAY) -> dt.date:
    return base + dt.timedelta(days=days)


def predictions(ids: list[str], times: list[dt.datetime] | None = None, **extra) -> pl.DataFrame:
    """A frame shaped like `read_predictions` returns for the default config."""
    n = len(ids)
    p = CFG.problem
    data = {
        "request_id": ids,
        "entity_id": [f"card{i}" for i in range(n)],
        "event_time": times or [at(DAY, 12)] * n,
        "model_version": ["v1"] * n,
        "score": [0.1 * (i % 10) for i in range(n)],
        "decision": ["approve"] * n,
        "logged_at": times or [at(DAY, 12)] * n,
        "out_of_range": [None] * n,
        "shadow_version": [None] * n,
        "shadow_score": [None] * n,
        **{c: [float(i + j) for i in range(n)] for j, c in enumerate(p.numeric_features)},
        **{c: [f"{c}{i % 2}" for i in range(n)] for c in p.categorical_features},
    }
    data.update(extra)
    schema = {
        **PREDICTION_SCHEMA,
        **{c: pl.Float64() for c in p.numeric_features},
        **{c: pl.String() for c in p.categorical_features},
    }
    schema.update({k: pl.String() for k in extra})
    return pl.DataFrame(data, schema=schema)


def labels(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    """(request_id, label, observed_time[, received_at]) rows."""
    return pl.DataFrame(
        {
            "request_id": [r[0] for r in rows],
            "label": [r[1] for r in rows],
            "observed_time": [r[2] for r in rows],
            "received_at": [r[3] if len(r) > 3 else None for r in rows],
        },
        schema=GROUND_TRUTH_SCHEMA,
    )


def status_of(examples: pl.DataFrame, label: str = "is_fraud") -> dict[str, tuple]:
    return {
        r["request_id"]: (r[label], r["label_status"], r["label_matured"])
        for r in examples.iter_rows(named=True)
    }


# --- label join ----------------------------------------------------------------------------

LABEL_JOIN_CASES = [
    # (id, config, today, expected {request_id: (label, status, matured)})
    (
        "matured-negative-policy",
        CFG,
        plus(3),
        {
            "r1": (1.0, LABELED, True),
            "r2": (0.0, LABELED, True),
            "r3": (0.0, MATURED_NEGATIVE, True),
        },
    ),
    (
        "matured-drop-policy",
        DROP_CFG,
        plus(3),
        {"r1": (1.0, LABELED, True), "r2": (0.0, LABELED, True), "r3": (None, PENDING, True)},
    ),
    (
        "not-yet-matured",
        CFG,
        plus(2),
        {"r1": (1.0, LABELED, False), "r2": (0.0, LABELED, False), "r3": (None, PENDING, False)},
    ),
    (
        "long-after-maturity",
        CFG,
        plus(30),
        {
            "r1": (1.0, LABELED, True),
            "r2": (0.0, LABELED, True),
            "r3": (0.0, MATURED_NEGATIVE, True),
        },
    ),
]


@pytest.mark.parametrize(
    ("config", "today", "expected"),
    [c[1:] for c in LABEL_JOIN_CASES],
    ids=[c[0] for c in LABEL_JOIN_CASES],
)
def test_label_join_status(config, today, expected):
    preds = predictions(["r1", "r2", "r3"])
    gt = labels([("r1", 1.0, at(plus(1), 9)), ("r2", 0.0, at(plus(2), 9))])
    examples, quarantine = build_labeled_examples(preds, gt, DAY, today, config)
    assert status_of(examples) == expected
    assert quarantine.height == 0
    assert examples.schema["is_fraud"] == pl.Float64()
    # the prediction columns pass through unchanged, in order
    assert_frame_equal(examples.select(preds.columns), preds)


def test_labels_arriving_after_the_maturity_window_are_ignored():
    preds = predictions(["in", "edge", "late"])
    window_end = at(plus(CFG.labels.maturity_days + 1))  # midnight after the last matured day
    gt = labels(
        [
            ("in", 1.0, at(plus(3), 12)),
            ("edge", 1.0, window_end - dt.timedelta(microseconds=1)),
            ("late", 1.0, window_end),
        ]
    )
    examples, _ = build_labeled_examples(preds, gt, DAY, plus(10), CFG)
    assert status_of(examples) == {
        "in": (1.0, LABELED, True),
        "edge": (1.0, LABELED, True),
        "late": (0.0, MATURED_NEGATIVE, True),
    }


def test_the_maturity_window_reads_arrival_not_the_client_time():
    """A label that arrived inside the window counts whatever `observed_time` it claims; one
    that arrived after the window does not, even when it claims an earlier time."""
    preds = predictions(["backdated", "late"], times=[at(DAY, 1), at(DAY, 1)])
    window_end = at(plus(CFG.labels.maturity_days + 1))
    gt = labels(
        [
            ("backdated", 1.0, dt.datetime(1990, 1, 1, tzinfo=dt.UTC), at(plus(1), 9)),
            ("late", 1.0, at(plus(1), 9), window_end),
        ]
    )
    examples, quarantine = build_labeled_examples(preds, gt, DAY, plus(10), CFG)
    assert status_of(examples)["late"] == (0.0, MATURED_NEGATIVE, True)
    # kept by arrival; its claimed time is before the prediction: quarantined as leakage
    assert quarantine["reason"].to_list() == ["label_before_prediction"]


def test_first_label_wins_on_duplicates():
    preds = predictions(["r1", "r2"])
    gt = labels(
        [
            ("r1", 1.0, at(plus(2))),  # later
            ("r1", 0.0, at(plus(1))),  # first to arrive
            ("r2", 1.0, at(plus(1), 8)),
            ("r2", 0.0, at(plus(1), 9)),
        ]
    )
    examples, _ = build_labeled_examples(preds, gt, DAY, plus(5), CFG)
    assert status_of(examples) == {"r1": (0.0, LABELED, True), "r2": (1.0, LABELED, True)}
    assert examples.height == 2
    assert examples.filter(pl.col("request_id") == "r1")["observed_time"].item() == at(plus(1))


def test_labels_resolve_by_arrival_at_the_service_not_by_client_time():
    """A later label claiming an earlier `observed_time` cannot displace the first arrival;
    the disagreement is quarantined as a conflict (counted once, on the prediction's day)."""
    preds = predictions(["r1", "r2"])
    gt = labels(
        [
            ("r1", 1.0, at(plus(2)), at(plus(2), 10)),  # arrived first
            ("r1", 0.0, at(plus(1)), at(plus(3), 10)),  # arrived later, backdated
            ("r1", 1.0, at(plus(2)), at(plus(3), 11)),  # a repeat: not a conflict
            ("r2", 0.0, at(plus(1)), at(plus(1), 10)),
        ]
    )
    examples, quarantine = build_labeled_examples(preds, gt, DAY, plus(5), CFG)
    assert status_of(examples) == {"r1": (1.0, LABELED, True), "r2": (0.0, LABELED, True)}
    assert "received_at" not in examples.columns
    assert quarantine["reason"].to_list() == [CONFLICTING_LABEL]
    assert '"label":0.0' in quarantine["raw"].item()


def test_label_before_prediction_is_quarantined():
    preds = predictions(["ok", "leak"], times=[at(DAY, 12), at(DAY, 12)])
    gt = labels([("ok", 1.0, at(DAY, 12)), ("leak", 1.0, at(DAY, 11, 59))])
    examples, quarantine = build_labeled_examples(preds, gt, DAY, plus(5), CFG)
    # a label at the very moment of the prediction is fine; one before it is a leak
    assert status_of(examples) == {"ok": (1.0, LABELED, True)}
    assert quarantine.columns == list(QUARANTINE_SCHEMA)
    assert quarantine["reason"].to_list() == ["label_before_prediction"]
    assert quarantine["source"].to_list() == ["ground_truth"]
    assert '"request_id":"leak"' in quarantine["raw"].item()


def test_duplicate_request_ids_are_quarantined_and_the_first_kept():
    preds = predictions(["r1", "r2", "r1"])
    preds = preds.with_columns(
        pl.Series("amount", [1.0, 2.0, 3.0]), pl.Series("score", [0.1, 0.2, 0.3])
    )
    examples, quarantine = build_labeled_examples(preds, labels([]), DAY, plus(1), CFG)
    assert examples["request_id"].to_list() == ["r1", "r2"]
    assert examples.filter(pl.col("request_id") == "r1")["amount"].item() == 1.0
    assert quarantine["reason"].to_list() == ["duplicate_request_id"] * 2
    assert quarantine["source"].to_list() == ["raw_prediction_logs"] * 2
    assert all('"request_id":"r1"' in raw for raw in quarantine["raw"])


def test_both_kinds_of_quarantine_are_reported_together():
    preds = predictions(["d", "d", "leak"])
    gt = labels([("leak", 0.0, at(DAY, 1))])
    examples, quarantine = build_labeled_examples(preds, gt, DAY, plus(5), CFG)
    assert sorted(quarantine["reason"].to_list()) == [
        "duplicate_request_id",
        "duplicate_request_id",
        "label_before_prediction",
    ]
    assert examples["request_id"].to_list() == ["d"]


def test_no_labels_at_all_gives_an_empty_typed_quarantine():
    examples, quarantine = build_labeled_examples(
        predictions(["r1"]), labels([]), DAY, plus(1), CFG
    )
    assert status_of(examples) == {"r1": (None, PENDING, False)}
    assert quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert quarantine.height == 0


def test_a_label_column_called_label_is_kept():
    cfg = parse_config({"problem": {**PROBLEM, "label": "label"}})
    gt = labels([("r1", 1.0, at(plus(1)))])
    examples, _ = build_labeled_examples(predictions(["r1", "r2"]), gt, DAY, plus(3), cfg)
    assert status_of(examples, "label") == {
        "r1": (1.0, LABELED, True),
        "r2": (0.0, MATURED_NEGATIVE, True),
    }


# --- feature table -------------------------------------------------------------------------

FEATURE_COLUMNS = [
    "request_id",
    "entity_id",
    "event_time",
    *CFG.problem.numeric_features,
    *CFG.problem.categorical_features,
    "is_fraud",
    "label_status",
    "label_matured",
    "model_version",
    "score",
]


def test_feature_table_keeps_exactly_the_expected_columns_and_drops_pii():
    preds = predictions(["r1", "r2"], card_number=["4111", "5500"])
    examples, _ = build_labeled_examples(preds, labels([]), DAY, plus(3), CFG)
    assert "card_number" in examples.columns
    table = build_feature_table(examples, CFG)
    assert table.columns == FEATURE_COLUMNS
    assert "card_number" not in table.columns
    assert_frame_equal(table, examples.select(FEATURE_COLUMNS))


def test_feature_table_without_pii_column_present():
    examples, _ = build_labeled_examples(predictions(["r1"]), labels([]), DAY, plus(3), CFG)
    assert build_feature_table(examples, CFG).columns == FEATURE_COLUMNS


# --- windows and splits --------------------------------------------------------------------

WINDOW_CASES = [
    # (id, overrides, day, train (start, end), test (start, end))
    (
        "ten-and-two",
        {"labels": {"maturity_days": 3}, "windows": {"train_days": 10, "test_days": 2}},
        dt.date(2026, 6, 20),
        (dt.date(2026, 6, 6), dt.date(2026, 6, 15)),
        (dt.date(2026, 6, 16), dt.date(2026, 6, 17)),
    ),
    (
        "no-maturity-one-day-each",
        {"labels": {"maturity_days": 0}, "windows": {"train_days": 1, "test_days": 1}},
        dt.date(2026, 6, 20),
        (dt.date(2026, 6, 19), dt.date(2026, 6, 19)),
        (dt.date(2026, 6, 20), dt.date(2026, 6, 20)),
    ),
    (
        "across-february",
        {"labels": {"maturity_days": 7}, "windows": {"train_days": 30, "test_days": 7}},
        dt.date(2026, 3, 1),
        (dt.date(2026, 1, 17), dt.date(2026, 2, 15)),
        (dt.date(2026, 2, 16), dt.date(2026, 2, 22)),
    ),
    (
        "across-new-year",
        {"labels": {"maturity_days": 1}, "windows": {"train_days": 5, "test_days": 3}},
        dt.date(2027, 1, 2),
        (dt.date(2026, 12, 25), dt.date(2026, 12, 29)),
        (dt.date(2026, 12, 30), dt.date(2027, 1, 1)),
    ),
]


@pytest.mark.parametrize(
    ("overrides", "day", "train", "test"),
    [c[1:] for c in WINDOW_CASES],
    ids=[c[0] for c in WINDOW_CASES],
)
def test_split_windows_arithmetic(overrides, day, train, test):
    cfg = parse_config(overrides)
    windows = split_windows(day, cfg)
    assert {k: windows[k] for k in ("train", "test")} == {"train": train, "test": test}
    # the train split holds the history: the days before the test window, as many as it has
    history_start, history_end = windows["history"]
    assert history_end == train[1]
    assert (history_end - history_start).days + 1 == cfg.split_days
    # lengths, adjacency and maturity, independent of the hand-computed dates
    (tr_start, tr_end), (te_start, te_end) = windows["train"], windows["test"]
    assert (tr_end - tr_start).days + 1 == cfg.windows.train_days
    assert (te_end - te_start).days + 1 == cfg.windows.test_days
    assert tr_end + dt.timedelta(days=1) == te_start
    assert te_end + dt.timedelta(days=cfg.labels.maturity_days) == day


def feature_rows(rows: list[tuple[str, dt.datetime, float | None, bool]]) -> pl.DataFrame:
    """A feature table from (request_id, event_time, label, matured)."""
    examples = predictions([r[0] for r in rows], times=[r[1] for r in rows]).with_columns(
        pl.Series("is_fraud", [r[2] for r in rows], dtype=pl.Float64()),
        pl.Series("label_status", [LABELED if r[2] is not None else PENDING for r in rows]),
        pl.Series("label_matured", [r[3] for r in rows], dtype=pl.Boolean()),
    )
    return build_feature_table(examples, CFG)


def test_build_split_keeps_matured_labelled_rows_inside_the_window():
    day = dt.date(2026, 6, 20)  # test 06-16 … 06-17, train 06-06 … 06-15
    tiny = dt.timedelta(microseconds=1)
    table = feature_rows(
        [
            ("test-first", at(dt.date(2026, 6, 16)), 1.0, True),
            ("test-last", at(dt.date(2026, 6, 18)) - tiny, 0.0, True),
            ("after-test", at(dt.date(2026, 6, 18)), 0.0, True),
            ("train-last", at(dt.date(2026, 6, 16)) - tiny, 0.0, True),
            ("train-first", at(dt.date(2026, 6, 6)), 1.0, True),
            ("before-train", at(dt.date(2026, 6, 6)) - tiny, 1.0, True),
            ("test-unmatured", at(dt.date(2026, 6, 17), 3), 0.0, False),
            ("test-pending", at(dt.date(2026, 6, 17), 4), None, True),
            ("train-mid-b", at(dt.date(2026, 6, 10), 5), 0.0, True),
            ("train-mid-a", at(dt.date(2026, 6, 10), 5), 1.0, True),
        ]
    )
    test = build_split(table, day, "test", CFG)
    train = build_split(table, day, "train", CFG)
    assert test["request_id"].to_list() == ["test-first", "test-last"]
    # ordered by event time, ties by request id
    assert train["request_id"].to_list() == [
        "train-first",
        "train-mid-a",
        "train-mid-b",
        "train-last",
    ]
    assert test.columns == table.columns
    assert_frame_equal(
        test,
        table.filter(pl.col("request_id").is_in(["test-first", "test-last"])).sort("event_time"),
    )


def test_a_train_split_with_a_history_reaches_back_history_days():
    day = dt.date(2026, 6, 20)  # test 06-16 … 06-17; train 06-06 … 06-15; history from 05-27
    cfg = parse_config(
        {
            "problem": PROBLEM,
            "labels": {"maturity_days": 3, "unlabeled_after_maturity": "negative"},
            "windows": {"train_days": 10, "test_days": 2, "history_days": 20},
        }
    )
    tiny = dt.timedelta(microseconds=1)
    table = feature_rows(
        [
            ("history-first", at(dt.date(2026, 5, 27)), 1.0, True),
            ("before-history", at(dt.date(2026, 5, 27)) - tiny, 0.0, True),
            ("train-first", at(dt.date(2026, 6, 6)), 0.0, True),
            ("test-first", at(dt.date(2026, 6, 16)), 1.0, True),
        ]
    )
    assert build_split(table, day, "train", cfg)["request_id"].to_list() == [
        "history-first",
        "train-first",
    ]
    assert build_split(table, day, "test", cfg)["request_id"].to_list() == ["test-first"]
    assert build_split(table, day, "train", CFG)["request_id"].to_list() == ["train-first"]


@pytest.mark.parametrize("disjoint", [False, True])
def test_stream_split_over_daily_partitions_is_build_split(tmp_path, disjoint):
    cfg = parse_config({"problem": PROBLEM, "data": {"entity_disjoint_split": disjoint}})
    start = dt.datetime(2026, 5, 1, tzinfo=UTC)
    # every 53 minutes for 30 days, ids against time order, entities shared across days
    times = [start + dt.timedelta(minutes=53 * i) for i in range(30 * 24 * 60 // 53)]
    table = feature_rows(
        [
            (f"r{(7919 * i) % 10007:05d}", t, float(i % 3 == 0), i % 11 != 0)
            for i, t in enumerate(times)
        ]
    ).with_columns(pl.format("card{}", pl.int_range(pl.len()) % 40).alias("entity_id"))
    parts = []
    days = table.with_columns(pl.col("event_time").dt.date().alias("_day"))
    for key, part in sorted(days.partition_by("_day", as_dict=True, include_key=False).items()):
        path = tmp_path / f"{key[0]}.parquet"
        part.sample(fraction=1.0, shuffle=True, seed=3).write_parquet(path)  # unsorted on disk
        parts.append(pl.scan_parquet(path))
    day = dt.date(2026, 5, 25)
    for which in ("train", "test"):
        assert build_split(table, day, which, cfg).height > 7
        streamed = stream_split(parts, day, which, cfg, batch_rows=7)
        assert_frame_equal(
            streamed.collect(engine="streaming"), build_split(table, day, which, cfg)
        )
        sink = tmp_path / f"{which}.parquet"
        streamed.sink_parquet(sink, engine="streaming")
        assert_frame_equal(pl.read_parquet(sink), build_split(table, day, which, cfg))
    assert stream_split([], day, "test", cfg).collect().height == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"labels": {"maturity_days": 0}, "windows": {"train_days": 1, "test_days": 1}},
        {"labels": {"maturity_days": 5}, "windows": {"train_days": 7, "test_days": 3}},
        {"windows": {"train_days": 4, "test_days": 2, "history_days": 12}},
    ],
)
def test_train_and_test_of_the_same_day_never_overlap(overrides):
    cfg = parse_config({"problem": PROBLEM, **overrides})
    start = dt.datetime(2026, 5, 1, tzinfo=UTC)
    # every 5 hours 17 minutes for 40 days: rows land on every hour of the day over time
    times = [start + dt.timedelta(minutes=317 * i) for i in range(40 * 24 * 60 // 317)]
    table = feature_rows([(f"r{i:04d}", t, float(i % 2), True) for i, t in enumerate(times)])
    for day in (dt.date(2026, 5, 25), dt.date(2026, 6, 1), dt.date(2026, 6, 9)):
        train = set(build_split(table, day, "train", cfg)["request_id"])
        test = set(build_split(table, day, "test", cfg)["request_id"])
        assert train and test
        assert not train & test
        windows = split_windows(day, cfg)
        tr_start, te_end = windows["history"][0], windows["test"][1]
        in_span = table.filter(
            (pl.col("event_time") >= at(tr_start))
            & (pl.col("event_time") < at(te_end + dt.timedelta(days=1)))
        )
        assert train | test == set(in_span["request_id"])


# --- checks and the data card --------------------------------------------------------------


def clean_table() -> pl.DataFrame:
    return feature_rows(
        [(f"r{i}", at(DAY, i), float(i % 2), True) for i in range(4)]
        + [("pending", at(DAY, 5), None, False)]
    )


PROBLEM_CASES = [
    ("clean", lambda t: t, []),
    (
        "null-numeric",
        lambda t: t.with_columns(
            pl.when(pl.col("request_id").is_in(["r1", "r2"]))
            .then(None)
            .otherwise(pl.col("amount"))
            .alias("amount")
        ),
        ["2 nulls in amount"],
    ),
    (
        "null-categorical",
        lambda t: t.with_columns(
            pl.when(pl.col("request_id") == "r0")
            .then(None)
            .otherwise(pl.col("country"))
            .alias("country")
        ),
        ["1 nulls in country"],
    ),
    ("missing-column", lambda t: t.drop("channel"), ["missing column channel"]),
    (
        "duplicate-ids",
        lambda t: pl.concat([t, t.head(1)]),
        ["duplicate request ids"],
    ),
    (
        "label-outside-0-1",
        lambda t: t.with_columns(
            pl.when(pl.col("request_id") == "r1")
            .then(2.0)
            .otherwise(pl.col("is_fraud"))
            .alias("is_fraud")
        ),
        ["1 labels outside {0, 1}"],
    ),
    (
        "negative-label",
        lambda t: t.with_columns(
            pl.when(pl.col("request_id") == "r1")
            .then(-1.0)
            .otherwise(pl.col("is_fraud"))
            .alias("is_fraud")
        ),
        ["1 labels outside {0, 1}"],
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in PROBLEM_CASES], ids=[c[0] for c in PROBLEM_CASES]
)
def test_feature_table_problems(mutate, expected):
    assert feature_table_problems(mutate(clean_table()), CFG) == expected


def test_regression_labels_are_not_held_to_zero_and_one():
    cfg = parse_config(
        {
            "problem": {**PROBLEM, "task": "regression"},
            "validation": {"metric": "rmse"},
            "labels": {"unlabeled_after_maturity": "drop"},
        }
    )
    table = clean_table().with_columns(pl.col("is_fraud") * 3.5)
    assert feature_table_problems(table, cfg) == []


def test_data_card_fields():
    day = dt.date(2026, 6, 20)
    split = pl.DataFrame(
        {
            "request_id": ["a", "b", "c", "d"],
            "is_fraud": [1.0, 0.0, 0.0, 0.0],
            "amount": [1.0, None, 2.0, 3.0],
        }
    )
    card = data_card(split, "test_split", day, CFG)
    assert card == {
        "dataset": "test_split",
        "partition": "2026-06-20",
        "window_start": "2026-06-16",
        "window_end": "2026-06-17",
        "source_partitions": [],
        "event_time_min": None,
        "event_time_max": None,
        "sha256": None,
        "rows": 4,
        "label": "is_fraud",
        "label_rate": 0.25,
        "null_rates": {"request_id": 0.0, "is_fraud": 0.0, "amount": 0.25},
        "schema": {"request_id": "String", "is_fraud": "Float64", "amount": "Float64"},
        "pii_handling": "dropped at ingestion, before storage or versioning: ['card_number']",
        "access_policy": ACCESS_POLICY,
    }
    train_card = data_card(split, "train_split", day, CFG)
    assert (train_card["window_start"], train_card["window_end"]) == ("2026-06-06", "2026-06-15")

    markdown = data_card_markdown(card)
    assert markdown.startswith("# Data card: test_split for 2026-06-20\n")
    assert "- Window: 2026-06-16 to 2026-06-17" in markdown
    assert "- Label `is_fraud` rate: 0.2500" in markdown
    assert "| amount | Float64 | 0.2500 |" in markdown


def test_data_card_of_an_empty_split():
    empty = clean_table().clear()
    card = data_card(empty, "train_split", DAY, CFG)
    assert card["rows"] == 0
    assert card["label_rate"] == 0.0
    assert set(card["null_rates"].values()) == {0.0}
    assert list(card["schema"]) == FEATURE_COLUMNS


def test_the_data_pipeline_benchmark_engines_build_the_same_splits(tmp_path: Path) -> None:
    """`benchmarks/data_pipeline.py` compares polars (the project's functions) with pandas and
    DuckDB doing the same work: on a small input the three agree on every count (train split
    over the history, test split, quarantined rows), or the speed ratios would compare
    different work."""
    from lifecycle_assets_tests.conftest import benchmark_module

    bench = benchmark_module("data_pipeline")
    bench.generate(tmp_path / "logs", 20_000)
    counts = {
        engine: run(tmp_path / "logs", tmp_path / f"out-{engine}")
        for engine, run in bench.ENGINES.items()
    }
    assert counts["polars"]["train"] > 0 and counts["polars"]["test"] > 0
    assert counts["pandas"] == counts["polars"] == counts["duckdb"]


def test_has_repeats_answers_from_the_values() -> None:
    from lifecycle_assets.data.transforms import has_repeats

    ids = pl.Series([f"pay-{i}" for i in range(5000)])
    assert not has_repeats(ids) and not has_repeats(ids.head(0))
    assert has_repeats(pl.concat([ids, ids.slice(4321, 1)]))
    assert has_repeats(pl.Series(["a", None, None])) and not has_repeats(pl.Series(["a", None]))
