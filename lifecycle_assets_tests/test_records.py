"""The log-record contract: what `LogWriter` writes, `read_*` reads back, and what it quarantines."""

from __future__ import annotations

import datetime as dt
import json
import threading

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lifecycle_assets.records import (
    GROUND_TRUTH,
    PREDICTIONS,
    QUARANTINE_SCHEMA,
    GroundTruthRecord,
    LogWriter,
    PredictionRecord,
    count_records,
    day_dir,
    encode,
    read_ground_truth,
    read_predictions,
)

NUMERIC = ("amount", "hour")
CATEGORICAL = ("country",)
DAY = dt.date(2026, 6, 1)
UTC = dt.UTC
PLUS2 = dt.timezone(dt.timedelta(hours=2))


def prediction(
    i: int,
    *,
    event_time: dt.datetime | None = None,
    version: str | None = "v1",
    score: float | None = 0.25,
    features: dict | None = None,
) -> PredictionRecord:
    return PredictionRecord(
        request_id=f"r{i}",
        entity_id=f"card{i % 3}",
        event_time=event_time or dt.datetime(2026, 6, 1, 10, 0, i % 60, tzinfo=UTC),
        features=features
        if features is not None
        else {"amount": 10.5 + i, "hour": i % 24, "country": "DE"},
        model_version=version,
        score=score if version is not None else None,
        decision=("approve" if version is not None else None),
        logged_at=dt.datetime(2026, 6, 1, 10, 0, 1, tzinfo=UTC),
    )


def read(root, day=DAY):
    return read_predictions(root, day, NUMERIC, CATEGORICAL)


def test_prediction_round_trip_keeps_types_utc_times_and_cold_start_nulls(tmp_path):
    writer = LogWriter(tmp_path, "w1")
    scored = PredictionRecord(
        request_id="r1",
        entity_id="card1",
        # 12:30 at +02:00 is 10:30 UTC, the same day
        event_time=dt.datetime(2026, 6, 1, 12, 30, 0, 123456, tzinfo=PLUS2),
        features={"amount": 12.5, "hour": 10, "country": "DE", "card_number": "4111"},
        model_version="v3",
        score=0.8125,
        decision="decline",
        logged_at=dt.datetime(2026, 6, 1, 10, 30, 1, tzinfo=UTC),
        out_of_range=("amount",),
        shadow_version="v4",
        shadow_score=0.25,
    )
    cold = PredictionRecord(
        request_id="r2",
        entity_id="card2",
        event_time=dt.datetime(2026, 6, 1, 23, 59, 59, tzinfo=UTC),
        features={"amount": 3, "hour": 23, "country": "FR"},
        model_version=None,
        score=None,
        decision=None,
        logged_at=dt.datetime(2026, 6, 2, 0, 0, 0, tzinfo=UTC),
    )
    writer.write_predictions([scored, cold])
    writer.close()

    rows, quarantine = read(tmp_path)
    expected = pl.DataFrame(
        {
            "request_id": ["r1", "r2"],
            "entity_id": ["card1", "card2"],
            "event_time": [
                dt.datetime(2026, 6, 1, 10, 30, 0, 123456, tzinfo=UTC),
                dt.datetime(2026, 6, 1, 23, 59, 59, tzinfo=UTC),
            ],
            "model_version": ["v3", None],
            "score": [0.8125, None],
            "decision": ["decline", None],
            "logged_at": [
                dt.datetime(2026, 6, 1, 10, 30, 1, tzinfo=UTC),
                dt.datetime(2026, 6, 2, 0, 0, 0, tzinfo=UTC),
            ],
            "out_of_range": [["amount"], None],  # served beyond its training range: flagged
            "shadow_version": ["v4", None],
            "shadow_score": [0.25, None],
            "amount": [12.5, 3.0],
            "hour": [10.0, 23.0],
            "country": ["DE", "FR"],
        },
        schema={
            "request_id": pl.String(),
            "entity_id": pl.String(),
            "event_time": pl.Datetime("us", "UTC"),
            "model_version": pl.String(),
            "score": pl.Float64(),
            "decision": pl.String(),
            "logged_at": pl.Datetime("us", "UTC"),
            "out_of_range": pl.List(pl.String()),
            "shadow_version": pl.String(),
            "shadow_score": pl.Float64(),
            "amount": pl.Float64(),
            "hour": pl.Float64(),
            "country": pl.String(),
        },
    )
    assert_frame_equal(rows, expected)
    assert quarantine.height == 0
    assert quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    # features outside the config (the PII column) are not unnested into the frame
    assert "card_number" not in rows.columns


def test_a_shadow_pair_is_read_whole_or_not_at_all_and_older_records_still_read(tmp_path):
    """Lines from before the shadow stage have no shadow fields; a broken pair (a version
    with no score, a score that is no number) costs the row its shadow score, never the row."""
    folder = day_dir(tmp_path, PREDICTIONS, DAY)
    folder.mkdir(parents=True)
    base = json.loads(encode(prediction(0)))
    old = {k: v for k, v in base.items() if not k.startswith("shadow_")}
    lines = [
        old,
        {**base, "request_id": "r1", "shadow_version": "v2", "shadow_score": 0.75},
        {**base, "request_id": "r2", "shadow_version": "v2", "shadow_score": None},
        {**base, "request_id": "r3", "shadow_version": "v2", "shadow_score": "0.5"},
        {**base, "request_id": "r4", "shadow_version": 2, "shadow_score": 0.5},
        {**base, "request_id": "r5", "shadow_version": None, "shadow_score": 0.5},
    ]
    (folder / "w1.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    rows, quarantine = read(tmp_path)
    assert quarantine.height == 0
    assert rows["request_id"].to_list() == [f"r{i}" for i in range(6)]
    assert rows["shadow_version"].to_list() == [None, "v2", None, None, None, None]
    assert rows["shadow_score"].to_list() == [None, 0.75, None, None, None, None]
    assert rows["score"].to_list() == [0.25] * 6


def test_ground_truth_round_trip(tmp_path):
    writer = LogWriter(tmp_path, "w1")
    writer.write_ground_truth(
        [
            GroundTruthRecord("r1", 1.0, dt.datetime(2026, 6, 3, 1, 0, tzinfo=PLUS2)),
            GroundTruthRecord(
                "r2",
                0,
                dt.datetime(2026, 6, 2, 23, 0, tzinfo=UTC),
                received_at=dt.datetime(2026, 6, 3, 1, 0, 5, tzinfo=PLUS2),
            ),
        ]
    )
    writer.close()
    # 01:00 at +02:00 on the 3rd is 23:00 UTC on the 2nd: both arrived on the 2nd
    rows, quarantine = read_ground_truth(tmp_path, dt.date(2026, 6, 2))
    expected = pl.DataFrame(
        {
            "request_id": ["r1", "r2"],
            "label": [1.0, 0.0],
            "observed_time": [
                dt.datetime(2026, 6, 2, 23, 0, tzinfo=UTC),
                dt.datetime(2026, 6, 2, 23, 0, tzinfo=UTC),
            ],
            # the service's arrival stamp, in UTC; None for labels from other writers
            "received_at": [None, dt.datetime(2026, 6, 2, 23, 0, 5, tzinfo=UTC)],
        },
        schema={
            "request_id": pl.String(),
            "label": pl.Float64(),
            "observed_time": pl.Datetime("us", "UTC"),
            "received_at": pl.Datetime("us", "UTC"),
        },
    )
    assert_frame_equal(rows, expected)
    assert quarantine.height == 0
    assert read_ground_truth(tmp_path, dt.date(2026, 6, 3))[0].height == 0


def test_labels_are_filed_by_arrival_not_by_the_client_time(tmp_path):
    writer = LogWriter(tmp_path, "w1")
    arrived = dt.datetime(2026, 6, 3, 9, 0, tzinfo=UTC)
    writer.write_ground_truth(
        [GroundTruthRecord("r1", 1.0, dt.datetime(1900, 1, 1, tzinfo=UTC), received_at=arrived)]
    )
    writer.close()
    assert [p.name for p in (tmp_path / "ground_truth").iterdir()] == ["date=2026-06-03"]
    rows, _ = read_ground_truth(tmp_path, arrived.date())
    assert rows["observed_time"].to_list() == [dt.datetime(1900, 1, 1, tzinfo=UTC)]


def test_predictions_go_to_the_folder_of_their_utc_event_date(tmp_path):
    writer = LogWriter(tmp_path, "w1")
    late_evening_local = dt.datetime(2026, 6, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    early_morning_local = dt.datetime(2026, 6, 2, 1, 30, tzinfo=PLUS2)
    writer.write_predictions(
        [
            prediction(1, event_time=late_evening_local),  # 2026-06-02 01:30 UTC
            prediction(2, event_time=early_morning_local),  # 2026-06-01 23:30 UTC
        ]
    )
    writer.close()
    assert (day_dir(tmp_path, PREDICTIONS, dt.date(2026, 6, 2)) / "w1.jsonl").is_file()
    assert (day_dir(tmp_path, PREDICTIONS, dt.date(2026, 6, 1)) / "w1.jsonl").is_file()
    assert read(tmp_path, dt.date(2026, 6, 1))[0]["request_id"].to_list() == ["r2"]
    assert read(tmp_path, dt.date(2026, 6, 2))[0]["request_id"].to_list() == ["r1"]
    assert read(tmp_path, dt.date(2026, 6, 3))[0].height == 0


def test_ground_truth_goes_to_the_folder_of_its_arrival_date(tmp_path):
    writer = LogWriter(tmp_path, "w1")
    writer.write_predictions([prediction(1)])  # event on June 1st
    writer.write_ground_truth(
        [GroundTruthRecord("r1", 1.0, dt.datetime(2026, 6, 4, 8, 0, tzinfo=UTC))]
    )
    writer.close()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl")) == [
        "ground_truth/date=2026-06-04/w1.jsonl",
        "predictions/date=2026-06-01/w1.jsonl",
    ]
    assert read_ground_truth(tmp_path, DAY)[0].height == 0
    assert read_ground_truth(tmp_path, dt.date(2026, 6, 4))[0]["request_id"].to_list() == ["r1"]


def test_two_writers_in_the_same_day_write_separate_segments(tmp_path):
    a, b = LogWriter(tmp_path, "a"), LogWriter(tmp_path, "b")
    for i in range(50):
        a.write_predictions([prediction(2 * i)])
        b.write_predictions([prediction(2 * i + 1)])
        a.flush(durable=False)
        b.flush(durable=False)
    a.close()
    b.close()
    folder = day_dir(tmp_path, PREDICTIONS, DAY)
    assert sorted(p.name for p in folder.iterdir()) == ["a.jsonl", "b.jsonl"]
    for name, parity in (("a.jsonl", 0), ("b.jsonl", 1)):
        lines = (folder / name).read_text().splitlines()
        ids = [int(json.loads(line)["request_id"][1:]) for line in lines]
        assert ids == list(range(parity, 100, 2))
    rows, quarantine = read(tmp_path)
    assert quarantine.height == 0
    assert sorted(rows["request_id"].to_list()) == sorted(f"r{i}" for i in range(100))


def test_one_writer_shared_by_threads_writes_whole_lines(tmp_path):
    writer = LogWriter(tmp_path, "shared")
    big = {"amount": 1.0, "hour": 2, "country": "X" * 5000}  # long lines tear if interleaved

    def work(t: int) -> None:
        for i in range(40):
            writer.write_predictions([prediction(1000 * t + i, features=big)])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    rows, quarantine = read(tmp_path)
    assert quarantine.height == 0
    assert rows.height == 160
    assert rows["request_id"].n_unique() == 160


def test_writer_appends_to_an_existing_segment(tmp_path):
    first = LogWriter(tmp_path, "w")
    first.write_predictions([prediction(1)])
    first.close()
    again = LogWriter(tmp_path, "w")
    again.write_predictions([prediction(2)])
    again.close()
    assert read(tmp_path)[0]["request_id"].to_list() == ["r1", "r2"]


def test_default_writer_ids_differ(tmp_path):
    assert LogWriter(tmp_path).writer_id != LogWriter(tmp_path).writer_id


NAIVE = dt.datetime(2026, 6, 1, 10, 0)


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda w: w.write_predictions([prediction(1, event_time=NAIVE)]), id="naive-event"
        ),
        pytest.param(
            lambda w: w.write_predictions(
                [
                    PredictionRecord(
                        "r1", "c", dt.datetime(2026, 6, 1, tzinfo=UTC), {}, None, None, None, NAIVE
                    )
                ]
            ),
            id="naive-logged-at",
        ),
        pytest.param(
            lambda w: w.write_ground_truth([GroundTruthRecord("r1", 1.0, NAIVE)]),
            id="naive-observed",
        ),
    ],
)
def test_naive_datetimes_are_refused_at_write(tmp_path, write):
    writer = LogWriter(tmp_path, "w")
    with pytest.raises(ValueError, match="timezone-aware"):
        write(writer)
    writer.close()
    assert count_records(tmp_path, PREDICTIONS, DAY) == 0
    assert count_records(tmp_path, GROUND_TRUTH, DAY) == 0


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda w: w.write_predictions([prediction(1, score=float("nan"))]), id="nan-score"
        ),
        pytest.param(
            lambda w: w.write_predictions([prediction(1, score=float("inf"))]), id="inf-score"
        ),
        pytest.param(
            lambda w: w.write_predictions(
                [prediction(1, features={"amount": float("nan"), "hour": 1, "country": "DE"})]
            ),
            id="nan-feature",
        ),
        pytest.param(
            lambda w: w.write_ground_truth(
                [GroundTruthRecord("r1", float("nan"), dt.datetime(2026, 6, 1, tzinfo=UTC))]
            ),
            id="nan-label",
        ),
    ],
)
def test_non_finite_numbers_are_refused_at_write(tmp_path, write):
    writer = LogWriter(tmp_path, "w")
    with pytest.raises(ValueError):
        write(writer)
    writer.close()
    assert count_records(tmp_path, PREDICTIONS, DAY) == 0
    assert count_records(tmp_path, GROUND_TRUTH, DAY) == 0


GOOD_FEATURES = {"amount": 5.0, "hour": 3, "country": "DE"}


def pred_line(**overrides) -> str:
    row = {
        "request_id": "bad",
        "entity_id": "c",
        "event_time": "2026-06-01T12:00:00+00:00",
        "features": dict(GOOD_FEATURES),
        "model_version": "v1",
        "score": 0.5,
        "decision": "approve",
        "logged_at": "2026-06-01T12:00:00+00:00",
    }
    for key, value in overrides.items():
        if value is ...:
            row.pop(key)
        else:
            row[key] = value
    return json.dumps(row)


def feats(**overrides) -> dict:
    out = dict(GOOD_FEATURES)
    for key, value in overrides.items():
        if value is ...:
            out.pop(key)
        else:
            out[key] = value
    return out


BAD_PREDICTION_LINES = [
    ("torn-line", pred_line()[:40], "corrupt_line"),
    ("not-json", "hello world", "corrupt_line"),
    ("json-list", "[1, 2, 3]", "corrupt_line"),
    ("json-string", '"request"', "corrupt_line"),
    ("json-null", "null", "corrupt_line"),
    ("missing-request-id", pred_line(request_id=...), "missing_request_id"),
    ("empty-request-id", pred_line(request_id=""), "missing_request_id"),
    ("numeric-request-id", pred_line(request_id=7), "missing_request_id"),
    ("missing-event-time", pred_line(event_time=...), "bad_event_time"),
    ("garbage-event-time", pred_line(event_time="yesterday"), "bad_event_time"),
    ("naive-event-time", pred_line(event_time="2026-06-01T12:00:00"), "bad_event_time"),
    ("numeric-event-time", pred_line(event_time=1780000000), "bad_event_time"),
    ("missing-features", pred_line(features=...), "missing_features"),
    ("features-not-object", pred_line(features=[5.0, 3, "DE"]), "missing_features"),
    ("missing-numeric", pred_line(features=feats(amount=...)), "bad_numeric_feature"),
    ("null-numeric", pred_line(features=feats(amount=None)), "bad_numeric_feature"),
    ("string-in-numeric", pred_line(features=feats(amount="5.0")), "bad_numeric_feature"),
    ("bool-in-numeric", pred_line(features=feats(hour=True)), "bad_numeric_feature"),
    (
        "nan-in-numeric",
        pred_line(features=feats()).replace('"amount": 5.0', '"amount": NaN'),
        "non_finite_numeric",
    ),
    (
        "infinity-in-numeric",
        pred_line(features=feats()).replace('"amount": 5.0', '"amount": -Infinity'),
        "non_finite_numeric",
    ),
    ("number-in-categorical", pred_line(features=feats(country=49)), "bad_categorical_feature"),
    ("null-categorical", pred_line(features=feats(country=None)), "bad_categorical_feature"),
    ("missing-categorical", pred_line(features=feats(country=...)), "bad_categorical_feature"),
    ("object-model-version", pred_line(model_version={"v": 1}), "bad_model_version"),
    ("list-decision", pred_line(decision=["approve"]), "bad_decision"),
]


def write_good_then_insert(tmp_path, stream: str, bad_line: str, day: dt.date):
    """Good records through the writer, then one bad line spliced into the middle by hand."""
    writer = LogWriter(tmp_path, "w")
    if stream == PREDICTIONS:
        writer.write_predictions([prediction(i) for i in range(4)])
    else:
        writer.write_ground_truth(
            [
                GroundTruthRecord(f"r{i}", float(i % 2), dt.datetime(2026, 6, 1, 9, i, tzinfo=UTC))
                for i in range(4)
            ]
        )
    writer.close()
    segment = day_dir(tmp_path, stream, day) / "w.jsonl"
    lines = segment.read_text().splitlines(keepends=True)
    segment.write_text("".join([*lines[:2], bad_line + "\n", *lines[2:]]))
    return segment


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [c[1:] for c in BAD_PREDICTION_LINES],
    ids=[c[0] for c in BAD_PREDICTION_LINES],
)
def test_malformed_prediction_line_is_quarantined_with_its_reason(tmp_path, bad_line, reason):
    baseline_root = tmp_path / "baseline"
    w = LogWriter(baseline_root, "w")
    w.write_predictions([prediction(i) for i in range(4)])
    w.close()
    baseline, _ = read(baseline_root)
    assert baseline.height == 4

    dirty_root = tmp_path / "dirty"
    write_good_then_insert(dirty_root, PREDICTIONS, bad_line, DAY)
    rows, quarantine = read(dirty_root)
    assert_frame_equal(rows, baseline)
    assert_frame_equal(
        quarantine,
        pl.DataFrame(
            {"source": ["w.jsonl"], "reason": [reason], "raw": [bad_line.strip()]},
            schema=QUARANTINE_SCHEMA,
        ),
    )
    assert count_records(dirty_root, PREDICTIONS, DAY) == 5


def gt_line(**overrides) -> str:
    row = {"request_id": "bad", "label": 1.0, "observed_time": "2026-06-01T12:00:00+00:00"}
    for key, value in overrides.items():
        if value is ...:
            row.pop(key)
        else:
            row[key] = value
    return json.dumps(row)


BAD_GROUND_TRUTH_LINES = [
    ("torn-line", gt_line()[:25], "corrupt_line"),
    ("json-list", "[]", "corrupt_line"),
    ("missing-request-id", gt_line(request_id=...), "missing_request_id"),
    ("missing-label", gt_line(label=...), "bad_label"),
    ("string-label", gt_line(label="1"), "bad_label"),
    ("bool-label", gt_line(label=True), "bad_label"),
    ("null-label", gt_line(label=None), "bad_label"),
    ("nan-label", gt_line().replace('"label": 1.0', '"label": NaN'), "bad_label"),
    ("missing-observed-time", gt_line(observed_time=...), "bad_observed_time"),
    ("naive-observed-time", gt_line(observed_time="2026-06-01T12:00:00"), "bad_observed_time"),
    ("garbage-observed-time", gt_line(observed_time="2026-13-01"), "bad_observed_time"),
]


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [c[1:] for c in BAD_GROUND_TRUTH_LINES],
    ids=[c[0] for c in BAD_GROUND_TRUTH_LINES],
)
def test_malformed_ground_truth_line_is_quarantined_with_its_reason(tmp_path, bad_line, reason):
    baseline_root = tmp_path / "baseline"
    w = LogWriter(baseline_root, "w")
    w.write_ground_truth(
        [
            GroundTruthRecord(f"r{i}", float(i % 2), dt.datetime(2026, 6, 1, 9, i, tzinfo=UTC))
            for i in range(4)
        ]
    )
    w.close()
    baseline, _ = read_ground_truth(baseline_root, DAY)
    assert baseline.height == 4

    dirty_root = tmp_path / "dirty"
    write_good_then_insert(dirty_root, GROUND_TRUTH, bad_line, DAY)
    rows, quarantine = read_ground_truth(dirty_root, DAY)
    assert_frame_equal(rows, baseline)
    assert_frame_equal(
        quarantine,
        pl.DataFrame(
            {"source": ["w.jsonl"], "reason": [reason], "raw": [bad_line.strip()]},
            schema=QUARANTINE_SCHEMA,
        ),
    )
    assert count_records(dirty_root, GROUND_TRUTH, DAY) == 5


def test_torn_last_line_of_a_crashed_writer_is_quarantined_not_lost(tmp_path):
    writer = LogWriter(tmp_path, "w")
    writer.write_predictions([prediction(i) for i in range(3)])
    writer.close()
    segment = day_dir(tmp_path, PREDICTIONS, DAY) / "w.jsonl"
    full = pred_line(request_id="r9")
    with open(segment, "a", encoding="utf-8") as fh:
        fh.write(full[: len(full) // 2])  # no newline: the process died mid-write
    rows, quarantine = read(tmp_path)
    assert rows["request_id"].to_list() == ["r0", "r1", "r2"]
    assert quarantine["reason"].to_list() == ["corrupt_line"]
    assert quarantine["raw"].to_list() == [full[: len(full) // 2]]


def test_blank_lines_are_neither_rows_nor_quarantined_nor_counted(tmp_path):
    writer = LogWriter(tmp_path, "w")
    writer.write_predictions([prediction(1)])
    writer.close()
    segment = day_dir(tmp_path, PREDICTIONS, DAY) / "w.jsonl"
    segment.write_text("\n   \n" + segment.read_text() + "\n\n")
    rows, quarantine = read(tmp_path)
    assert rows.height == 1
    assert quarantine.height == 0
    assert count_records(tmp_path, PREDICTIONS, DAY) == 1


def test_count_records_counts_good_and_bad_lines_across_segments(tmp_path):
    a, b = LogWriter(tmp_path, "a"), LogWriter(tmp_path, "b")
    a.write_predictions([prediction(i) for i in range(3)])
    b.write_predictions([prediction(i) for i in range(10, 12)])
    a.write_ground_truth([GroundTruthRecord("r1", 1.0, dt.datetime(2026, 6, 1, tzinfo=UTC))])
    a.close()
    b.close()
    with open(day_dir(tmp_path, PREDICTIONS, DAY) / "b.jsonl", "a", encoding="utf-8") as fh:
        fh.write("{torn\n[1]\n")
    assert count_records(tmp_path, PREDICTIONS, DAY) == 7
    assert count_records(tmp_path, GROUND_TRUTH, DAY) == 1
    assert count_records(tmp_path, PREDICTIONS, dt.date(2026, 6, 2)) == 0
    rows, quarantine = read(tmp_path)
    assert rows.height + quarantine.height == count_records(tmp_path, PREDICTIONS, DAY)


def test_missing_day_reads_as_empty_typed_frames(tmp_path):
    rows, quarantine = read(tmp_path)
    assert rows.height == 0
    assert rows.schema["event_time"] == pl.Datetime("us", "UTC")
    assert rows.schema["amount"] == pl.Float64()
    assert rows.schema["country"] == pl.String()
    assert quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    gt, gt_bad = read_ground_truth(tmp_path, DAY)
    assert (gt.height, gt_bad.height) == (0, 0)
    assert gt.schema["observed_time"] == pl.Datetime("us", "UTC")


def test_raw_text_in_quarantine_is_capped(tmp_path):
    folder = day_dir(tmp_path, PREDICTIONS, DAY)
    folder.mkdir(parents=True)
    (folder / "w.jsonl").write_text("x" * 5000 + "\n")
    _, quarantine = read(tmp_path)
    assert quarantine["raw"].str.len_chars().to_list() == [2000]
