"""Ingestion and validation, table-driven: every bad-row case is counted under its reason and
the good rows come through untouched (JSONL and Parquet segments, schema evolution)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from lifecycle_assets.config import parse_config
from lifecycle_assets.data import validation
from lifecycle_assets.data.transforms import build_labeled_examples
from lifecycle_assets.records import (
    GroundTruthRecord,
    LogWriter,
    PredictionRecord,
    day_dir,
    read_ground_truth,
    read_predictions,
)
from lifecycle_assets.training.features import OOV_TOKEN

DAY = dt.date(2026, 6, 1)
UTC = dt.UTC
NOON = dt.datetime(2026, 6, 1, 12, tzinfo=UTC)
LATER = dt.datetime(2026, 6, 5, 12, tzinfo=UTC)  # the clock when the pipeline runs
CFG = parse_config(
    {
        "problem": {
            "numeric_features": ["amount", "hour"],
            "categorical_features": ["country"],
            "pii_columns": ["card_number"],
        },
        "labels": {"maturity_days": 3},
        "data": {"categories": {"country": ["DE", "FR"]}},
    }
)
P = CFG.problem


def record(i: int, **overrides) -> PredictionRecord:
    fields = {
        "request_id": f"r{i}",
        "entity_id": f"card{i % 3}",
        "event_time": dt.datetime(2026, 6, 1, 10, i, tzinfo=UTC),
        "features": {"amount": 10.0 + i, "hour": 10, "country": "DE"},
        "model_version": "v1",
        "score": 0.25,
        "decision": "approve",
        "logged_at": dt.datetime(2026, 6, 1, 10, i, 1, tzinfo=UTC),
    }
    fields.update(overrides)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


GOOD = [record(i) for i in range(4)]
GOOD_IDS = [r.request_id for r in GOOD]


def line(i: int = 9, **changes) -> str:
    """A JSON line for request r{i}; `changes` edit the fields (... removes one)."""
    row = {
        "request_id": f"r{i}",
        "entity_id": "card9",
        "event_time": f"2026-06-01T11:{i:02d}:00+00:00",
        "features": {"amount": 5.0, "hour": 11, "country": "FR"},
        "model_version": "v1",
        "score": 0.5,
        "decision": "approve",
        "logged_at": f"2026-06-01T11:{i:02d}:00+00:00",
    }
    for key, value in changes.items():
        target = row["features"] if key in ("amount", "hour", "country") else row
        if value is ...:
            target.pop(key)  # type: ignore[attr-defined]
        else:
            target[key] = value  # type: ignore[index]
    return json.dumps(row)


def append(root: Path, text: str, name: str = "w.jsonl") -> None:
    folder = day_dir(root, "predictions", DAY)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")


def parquet_segment(root: Path, records: list[PredictionRecord], name: str, **cast) -> Path:
    frame = pl.DataFrame(
        [
            {
                "request_id": r.request_id,
                "entity_id": r.entity_id,
                "event_time": r.event_time,
                "model_version": r.model_version,
                "score": r.score,
                "decision": r.decision,
                "logged_at": r.logged_at,
                **r.features,
            }
            for r in records
        ]
    ).with_columns(**{k: pl.col(k).cast(v) for k, v in cast.items()})
    folder = day_dir(root, "predictions", DAY)
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(folder / name)
    return folder / name


def write_labels(root: Path, labels: list[GroundTruthRecord]) -> None:
    writer = LogWriter(root, "labels")
    writer.write_ground_truth(labels)
    writer.close()


def run_pipeline(root: Path, now: dt.datetime = LATER):
    """Reader → validation → labelled examples, as the assets chain them (one day)."""
    preds, bad_read = read_predictions(
        root, DAY, P.numeric_features, P.categorical_features, P.pii_columns
    )
    preds, bad_valid, counts = validation.validate_predictions(preds, now, CFG)
    labels = pl.concat([read_ground_truth(root, DAY + dt.timedelta(days=i))[0] for i in range(4)])
    labels, bad_future = validation.validate_ground_truth(labels, now, CFG)
    examples, bad_join = build_labeled_examples(preds, labels, DAY, now.date(), CFG)
    quarantine = pl.concat([bad_read, bad_valid, bad_future, bad_join])
    return examples, quarantine, counts


def baseline(tmp_path: Path, now: dt.datetime) -> pl.DataFrame:
    root = tmp_path / "baseline"
    writer = LogWriter(root, "w")
    writer.write_predictions(GOOD)
    writer.close()
    return run_pipeline(root, now)[0]


Case = tuple[str, Callable[[Path], None], dict[str, int]]

CASES: list[Case] = [
    ("wrong-type-numeric", lambda r: append(r, line(amount="5.0")), {"bad_numeric_feature": 1}),
    ("wrong-type-bool", lambda r: append(r, line(hour=True)), {"bad_numeric_feature": 1}),
    (
        "wrong-type-categorical",
        lambda r: append(r, line(country=49)),
        {"bad_categorical_feature": 1},
    ),
    ("wrong-type-request-id", lambda r: append(r, line(request_id=7)), {"missing_request_id": 1}),
    ("wrong-type-version", lambda r: append(r, line(model_version=[1])), {"bad_model_version": 1}),
    ("missing-request-id", lambda r: append(r, line(request_id=...)), {"missing_request_id": 1}),
    ("missing-event-time", lambda r: append(r, line(event_time=...)), {"bad_event_time": 1}),
    ("missing-features", lambda r: append(r, line(features=...)), {"missing_features": 1}),
    ("missing-numeric", lambda r: append(r, line(amount=...)), {"bad_numeric_feature": 1}),
    (
        "nan",
        lambda r: append(r, line().replace('"amount": 5.0', '"amount": NaN')),
        {"non_finite_numeric": 1},
    ),
    (
        "inf",
        lambda r: append(r, line().replace('"amount": 5.0', '"amount": Infinity')),
        {"non_finite_numeric": 1},
    ),
    (
        "minus-inf",
        lambda r: append(r, line().replace('"hour": 11', '"hour": -Infinity')),
        {"non_finite_numeric": 1},
    ),
    ("torn-line", lambda r: append(r, line()[:30]), {"corrupt_line": 1}),
    (
        "duplicate-request-id",
        lambda r: append(r, line(0, request_id="r0")),
        {"duplicate_request_id": 1},
    ),
    (
        "replayed-request-id",
        lambda r: (append(r, line(7)), append(r, line(7), name="retry.jsonl")),
        {"replayed_request_id": 1},
    ),
    (
        "future-event-time",
        lambda r: append(r, line(event_time="2026-06-01T23:00:00+00:00")),
        {"future_event_time": 1},
    ),
    (
        "event-outside-partition",
        lambda r: append(r, line(event_time="2026-05-30T10:00:00+00:00")),
        {"event_time_outside_partition": 1},
    ),
    (
        "label-before-prediction",
        lambda r: (
            append(r, line(8)),
            write_labels(r, [GroundTruthRecord("r8", 1.0, dt.datetime(2026, 6, 1, 9, tzinfo=UTC))]),
        ),
        {"label_before_prediction": 1},
    ),
    (
        "label-from-the-future",
        lambda r: write_labels(
            r, [GroundTruthRecord("r0", 1.0, dt.datetime(2026, 6, 2, 23, tzinfo=UTC))]
        ),
        {"future_observed_time": 1},
    ),
    (
        "corrupt-parquet-segment",
        lambda r: (day_dir(r, "predictions", DAY) / "bad.parquet").write_bytes(b"PAR1garbage"),
        {"corrupt_segment": 1},
    ),
    (
        "empty-jsonl-segment",
        lambda r: (day_dir(r, "predictions", DAY) / "empty.jsonl").write_bytes(b""),
        {"empty_segment": 1},
    ),
    (
        "empty-parquet-segment",
        lambda r: (
            parquet_segment(r, [record(9)], "empty.parquet")
            and pl.read_parquet(day_dir(r, "predictions", DAY) / "empty.parquet")
            .clear()
            .write_parquet(day_dir(r, "predictions", DAY) / "empty.parquet")
        ),
        {"empty_segment": 1},
    ),
    (
        "parquet-column-of-the-wrong-type",
        lambda r: parquet_segment(r, [record(7), record(8)], "typed.parquet", amount=pl.String),
        {"bad_numeric_feature": 2},
    ),
    (
        "parquet-naive-timestamps",
        lambda r: parquet_segment(
            r, [record(7)], "naive.parquet", event_time=pl.Datetime("us", None)
        ),
        {"bad_event_time": 1},
    ),
]


@pytest.mark.parametrize(
    ("make_bad", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_bad_row_is_counted_under_its_reason_and_good_rows_are_untouched(
    tmp_path: Path, make_bad: Callable[[Path], None], expected: dict[str, int]
) -> None:
    root = tmp_path / "dirty"
    writer = LogWriter(root, "w")
    writer.write_predictions(GOOD)
    writer.close()
    make_bad(root)
    # the future cases run with the clock at noon of the day itself
    now = NOON if any(k.startswith("future") for k in expected) else LATER
    examples, quarantine, _ = run_pipeline(root, now)
    assert dict(Counter(quarantine["reason"].to_list())) == expected
    good = examples.filter(pl.col("request_id").is_in(GOOD_IDS))
    assert_frame_equal(good, baseline(tmp_path, now))
    # nothing vanished: every line is a row or a quarantine entry
    assert quarantine["raw"].null_count() == 0


def test_stale_event_times_are_quarantined_against_the_clock(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, "w")
    writer.write_predictions(GOOD)
    writer.close()
    far = NOON + dt.timedelta(days=CFG.data.max_event_age_days + 1)
    examples, quarantine, _ = run_pipeline(tmp_path, now=far)
    assert examples.height == 0
    assert quarantine["reason"].to_list() == ["stale_event_time"] * 4


def test_unknown_category_is_kept_mapped_to_oov_and_counted(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, "w")
    writer.write_predictions(
        [*GOOD, record(7, features={"amount": 1.0, "hour": 1, "country": "XX"})]
    )
    writer.close()
    examples, quarantine, counts = run_pipeline(tmp_path)
    assert quarantine.height == 0
    assert counts == {"unknown_category:country": 1, "unknown_category": 1}
    assert examples.filter(pl.col("request_id") == "r7")["country"].to_list() == [OOV_TOKEN]
    assert examples.filter(pl.col("request_id") != "r7")["country"].unique().to_list() == ["DE"]


def test_parquet_segments_tolerate_reordered_and_new_optional_columns(tmp_path: Path) -> None:
    jsonl_root = tmp_path / "jsonl"
    writer = LogWriter(jsonl_root, "w")
    writer.write_predictions(GOOD)
    writer.close()
    expected, _ = read_predictions(jsonl_root, DAY, P.numeric_features, P.categorical_features)

    pq_root = tmp_path / "parquet"
    path = parquet_segment(pq_root, GOOD, "landing.parquet")
    frame = pl.read_parquet(path)
    evolved = frame.with_columns(pl.lit("eu-west").alias("region")).select(
        [*reversed(frame.columns), "region"]
    )
    evolved.write_parquet(path)
    rows, quarantine = read_predictions(pq_root, DAY, P.numeric_features, P.categorical_features)
    assert quarantine.height == 0
    assert_frame_equal(rows, expected)


def test_jsonl_tolerates_a_new_optional_field(tmp_path: Path) -> None:
    append(tmp_path, line(1))
    append(tmp_path, json.dumps({**json.loads(line(2)), "region": "eu-west", "tags": [1, 2]}))
    rows, quarantine = read_predictions(tmp_path, DAY, P.numeric_features, P.categorical_features)
    assert quarantine.height == 0
    assert rows["request_id"].to_list() == ["r1", "r2"]


def test_parquet_with_nested_features_struct(tmp_path: Path) -> None:
    path = parquet_segment(tmp_path, GOOD, "nested.parquet")
    frame = pl.read_parquet(path)
    frame.select(
        pl.exclude("amount", "hour", "country"),
        pl.struct("amount", "hour", "country").alias("features"),
    ).write_parquet(path)
    rows, quarantine = read_predictions(tmp_path, DAY, P.numeric_features, P.categorical_features)
    assert quarantine.height == 0
    assert rows["amount"].to_list() == [10.0, 11.0, 12.0, 13.0]


# Lines the vectorised reader must classify exactly like the per-line contract.
LINE_KINDS = st.sampled_from(
    [
        line(1),
        line(2, amount="1"),
        line(3, hour=False),
        line(4, country=None),
        line(5, request_id=""),
        line(6, score="high"),
        line(7, entity_id=None),
        line(8, event_time="2026-06-01 08:00:00+00:00"),
        line(9, logged_at=None),
        line(10, model_version=None, score=None, decision=None),
        "{not json",
        "[]",
        line(11).replace('"amount": 5.0', '"amount": NaN'),
    ]
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(LINE_KINDS, min_size=1, max_size=30))
def test_vectorised_reader_agrees_with_the_per_line_rules(tmp_path: Path, lines: list[str]) -> None:
    from lifecycle_assets.records import reader as records

    root = tmp_path / f"h{abs(hash(tuple(lines)))}"
    folder = day_dir(root, "predictions", DAY)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "w.jsonl").write_text("\n".join(lines) + "\n")
    rows, quarantine = read_predictions(root, DAY, P.numeric_features, P.categorical_features)
    stream = records._prediction_stream(P.numeric_features, P.categorical_features, ())
    slow_rows, slow_bad, _ = records._per_row(stream, "w.jsonl", records._json_rows(lines), lines)
    assert_frame_equal(rows, slow_rows)
    assert_frame_equal(quarantine, slow_bad)
