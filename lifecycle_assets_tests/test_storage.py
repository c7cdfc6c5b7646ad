"""The asset store: one layout for every stored value, read back as it was written."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from lifecycle_assets.storage import AssetStore, ModelReference, StoredValueError
from lifecycle_assets.training.train import train_model
from lifecycle_assets_tests.training.helpers import small_config, synthetic


def test_frames_and_records_round_trip_under_one_layout(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    store.write("feature_table", "2026-06-01", frame)
    store.write("validation_report", "2026-06-02", {"decision": "PASS", "delta": 0.01})
    store.write("validation_report", "2026-06-01", {"decision": "FAIL"})
    store.write("summary", None, {"n": 1})
    assert store.frame_path("feature_table", "2026-06-01") == (
        tmp_path / "assets" / "feature_table" / "2026-06-01.parquet"
    )
    assert store.has_frame("feature_table", "2026-06-01")
    assert not store.has_frame("feature_table", "2026-06-02")
    assert store.read("feature_table", "2026-06-01").equals(frame)
    assert store.read("validation_report", "2026-06-02") == {"decision": "PASS", "delta": 0.01}
    assert store.read("summary", None) == {"n": 1}
    assert store.read("validation_report", "2026-06-03") is None
    assert store.record_partitions("validation_report") == ["2026-06-01", "2026-06-02"]
    assert store.record_partitions("never_stored") == []
    # no rows, the stored columns; nothing stored: no columns
    assert store.empty_frame("feature_table").schema == frame.schema
    assert store.empty_frame("never_stored").width == 0
    # a multi-part asset key is a folder path; quarantine lives beside the values
    store.write("group/asset", "2026-06-01", frame)
    assert (tmp_path / "assets" / "group" / "asset" / "2026-06-01.parquet").is_file()
    assert store.quarantine_path("raw_prediction_logs", "2026-06-01") == (
        tmp_path / "assets" / "quarantine" / "raw_prediction_logs" / "2026-06-01.parquet"
    )
    with pytest.raises(TypeError, match="cannot store list for feature_table"):
        store.write("feature_table", "2026-06-03", [1, 2])
    assert sorted(p.name for p in store.folder("validation_report").iterdir()) == [
        "2026-06-01.json",
        "2026-06-02.json",
    ]


def test_a_model_is_stored_as_its_artifact_and_replaced_whole(tmp_path: Path) -> None:
    store = AssetStore(tmp_path)
    rows = synthetic(400, seed=1)
    config = small_config({"family": "gbdt", "num_trees": 5}, epochs=1)
    first = train_model(rows, config, "v1").artifact
    second = train_model(rows, config, "v2").artifact
    store.write("candidate_model", "2026-06-01", first)
    store.write("candidate_model", "2026-06-01", second)
    loaded = store.read("candidate_model", "2026-06-01")
    assert loaded.version == "v2"
    assert (loaded.score(rows) == second.score(rows)).all()
    assert [p.name for p in store.folder("candidate_model").iterdir()] == ["2026-06-01"]


def test_a_model_reference_replaces_a_stored_artifact_and_is_read_back_as_it_is(
    tmp_path: Path,
) -> None:
    store = AssetStore(tmp_path)
    rows = synthetic(400, seed=1)
    config = small_config({"family": "gbdt", "num_trees": 5}, epochs=1)
    artifact = train_model(rows, config, "v1").artifact
    day = "2026-06-01"
    # a home from before references holds the artifact whole: still read as the artifact
    store.write("production_model", day, artifact)
    assert store.read("production_model", day).version == "v1"
    reference = ModelReference("card-fraud", "v2", "ab" * 32)
    store.write("production_model", day, reference)
    assert store.read("production_model", day) == reference
    assert [p.name for p in store.folder("production_model").iterdir()] == [f"{day}.json"]
    assert store.record_partitions("production_model") == [day]
    assert store.first_day() == day
    # and the other way: an artifact stored whole replaces the reference
    store.write("production_model", day, artifact)
    assert store.read("production_model", day).version == "v1"
    assert [p.name for p in store.folder("production_model").iterdir()] == [day]
    # a record that says it is a reference but lacks a field is refused, not returned
    store.write("candidate_model", day, {"kind": "model_reference", "model": "card-fraud"})
    with pytest.raises(StoredValueError, match=f"^candidate_model {day}: a model reference"):
        store.read("candidate_model", day)
    # any other record is a record
    store.write("validation_report", day, {"kind": "gate", "version": "v1"})
    assert store.read("validation_report", day) == {"kind": "gate", "version": "v1"}


def test_the_first_day_is_the_earliest_value_of_any_asset(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    assert store.first_day() is None
    store.write("validation_report", "2026-06-03", {"decision": "PASS"})
    store.write("raw_prediction_logs", "2026-06-05", pl.DataFrame({"x": [1]}))
    store.write("candidate_model_meta", None, {"unpartitioned": True})
    (store.folder("raw_prediction_logs") / ".2026-06-01.parquet.1.2.tmp").touch()
    assert store.first_day() == "2026-06-03"  # not an unpartitioned value, not a temp file
