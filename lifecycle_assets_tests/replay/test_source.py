"""Reading a replay file and mapping its periods onto loop days (no Dagster, no models)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml

from lifecycle_assets.automation.loop import instance_for
from lifecycle_assets.config import ConfigError, parse_config
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.replay.runner import (
    PolicyState,
    ReplayError,
    decide_training,
    prepare_replay_dir,
    served_quality,
)
from lifecycle_assets.replay.source import ReplayDataError, load_table, prepare_traffic
from lifecycle_assets.serving.postprocess import PostProcessor
from lifecycle_assets_tests.replay.deliveries import CONFIG, deliveries

LAST = dt.date(2026, 11, 1)
UTC = dt.UTC


def delivery_config(**replay):
    data = yaml.safe_load(CONFIG)
    data["replay"].update(replay)
    return parse_config(data)


def test_weeks_become_consecutive_loop_days_in_order():
    raw = deliveries(weeks=3, per_week=60)
    traffic = prepare_traffic(raw, delivery_config(), "week", LAST)
    frame = traffic.frame
    assert traffic.loop_start == dt.date(2026, 1, 1)
    assert [p.loop_day for p in traffic.periods] == [dt.date(2026, 1, d) for d in (1, 2, 3)]
    assert [p.data_start.date() for p in traffic.periods] == [
        dt.date(2024, 3, 4),
        dt.date(2024, 3, 11),
        dt.date(2024, 3, 18),
    ]
    # Each row lands on its period's loop day, and the map keeps the order of time.
    days = frame.select(pl.col("event_time").dt.date() - pl.date(2026, 1, 1)).to_series()
    assert (days.dt.total_days() == frame["period"]).all()
    assert frame.sort("data_time")["request_id"].to_list() == (
        frame.sort("event_time")["request_id"].to_list()
    )
    assert (frame["label_time"] >= frame["event_time"]).all()
    # No request id column in the file: ids are generated, unique and valid.
    assert frame["request_id"].n_unique() == frame.height == 180
    assert frame["request_id"][0] == "r000000000"
    assert traffic.requests(1).height == 60


def test_months_of_different_lengths_compress_by_their_fraction():
    raw = pl.DataFrame(
        {
            "courier": ["a", "b", "c"],
            "placed_at": [
                dt.datetime(2019, 1, 31, 12),
                dt.datetime(2019, 2, 1),
                dt.datetime(2019, 3, 15, 12),
            ],
            "distance_km": [1.0, 2.0, 3.0],
            "items": [1.0, 1.0, 1.0],
            "prep_minutes": [5.0, 5.0, 5.0],
            "rain_mm": [0.0, 0.0, 0.0],
            "zone": ["centre"] * 3,
            "vehicle": ["bike"] * 3,
            "delivery_minutes": [10.0, 11.0, 12.0],
        }
    )
    traffic = prepare_traffic(raw, delivery_config(), "month", LAST)
    times = traffic.frame.sort("data_time")["event_time"].to_list()
    day = dt.timedelta(days=1)
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    us = dt.timedelta(microseconds=1)
    assert abs(times[0] - (start + day * (30.5 / 31))) <= us
    assert times[1] == start + day
    assert abs(times[2] - (start + 2 * day + day * (14.5 / 31))) <= us


def test_days_on_or_after_the_partitions_start_keep_their_dates():
    raw = deliveries(weeks=1, per_week=30, start=dt.date(2026, 6, 1))
    traffic = prepare_traffic(raw, delivery_config(), "day", LAST)
    frame = traffic.frame
    assert traffic.loop_start == dt.date(2026, 6, 1)
    assert (frame["event_time"] == frame["data_time"]).all()


def test_a_label_time_column_is_the_delay_model_and_null_means_never():
    raw = deliveries(weeks=1, per_week=20).with_columns(
        pl.when(pl.int_range(pl.len()) % 2 == 0)
        .then(pl.col("placed_at").str.to_datetime(time_zone="UTC") + pl.duration(hours=5))
        .alias("label_seen_at")
    )
    traffic = prepare_traffic(raw, delivery_config(label_time_column="label_seen_at"), "day", LAST)
    frame = traffic.frame
    assert frame["label_time"].null_count() == 10
    arrived = frame.filter(pl.col("label_time").is_not_null())
    assert (arrived["data_label_time"] - arrived["data_time"] == dt.timedelta(hours=5)).all()


def test_uniform_label_delays_stay_inside_the_configured_range():
    raw = deliveries(weeks=1, per_week=200)
    frame = prepare_traffic(raw, delivery_config(label_delay_days=[1, 2]), "week", LAST).frame
    delay = (frame["data_label_time"] - frame["data_time"]).dt.total_seconds() / 86_400
    assert delay.min() >= 1 and delay.max() <= 2


def test_missing_columns_are_named_with_the_fix():
    raw = deliveries(weeks=1, per_week=10).drop("vehicle", "placed_at")
    with pytest.raises(ReplayDataError) as info:
        prepare_traffic(raw, delivery_config(), "week", LAST)
    message = str(info.value)
    assert "'vehicle'" in message and "'placed_at'" in message and "problem" in message


def test_a_file_longer_than_the_partitions_asks_for_a_longer_period():
    raw = deliveries(weeks=60, per_week=2)
    with pytest.raises(ReplayDataError, match="longer --period"):
        prepare_traffic(raw, delivery_config(), "day", dt.date(2026, 3, 1))
    assert len(prepare_traffic(raw, delivery_config(), "month", LAST).periods) == 14


def test_rows_the_service_would_refuse_are_counted_not_served():
    raw = deliveries(weeks=1, per_week=20).with_columns(
        pl.when(pl.int_range(pl.len()) < 3).then(None).otherwise(pl.col("zone")).alias("zone")
    )
    traffic = prepare_traffic(raw, delivery_config(), "week", LAST)
    assert traffic.rejected == {"unservable_rows": 3}
    assert traffic.frame.height == 17


def test_bad_request_ids_are_refused():
    raw = deliveries(weeks=1, per_week=4).with_columns(
        pl.Series("order_ref", ["ok-1", "ok-2", "ok-2", "ok-4"])
    )
    with pytest.raises(ReplayDataError, match="repeats"):
        prepare_traffic(raw, delivery_config(), "week", LAST)
    raw = raw.with_columns(pl.Series("order_ref", ["ok-1", "ok 2", "ok-3", "ok-4"]))
    with pytest.raises(ReplayDataError, match="not a valid id"):
        prepare_traffic(raw, delivery_config(), "week", LAST)


def test_csv_and_parquet_read_alike(tmp_path: Path):
    raw = deliveries(weeks=1, per_week=30)
    raw.write_csv(tmp_path / "d.csv")
    raw.write_parquet(tmp_path / "d.parquet")
    a = prepare_traffic(load_table(tmp_path / "d.csv"), delivery_config(), "week", LAST).frame
    b = prepare_traffic(load_table(tmp_path / "d.parquet"), delivery_config(), "week", LAST).frame
    assert a["event_time"].to_list() == b["event_time"].to_list()
    with pytest.raises(ReplayDataError, match="unknown file type"):
        (tmp_path / "d.json").write_text("{}")
        load_table(tmp_path / "d.json")


def test_regression_needs_drop_for_unlabelled_rows():
    data = yaml.safe_load(CONFIG)
    data["labels"]["unlabeled_after_maturity"] = "negative"
    with pytest.raises(ConfigError, match="unlabeled_after_maturity must be `drop`"):
        parse_config(data)


def test_regression_predictions_skip_thresholds_and_rules():
    cfg = delivery_config().postprocessing
    artifact = SimpleNamespace(task="regression", metadata={}, thresholds={})
    out = PostProcessor(cfg).run(artifact, np.array([12.5, 80.0]), ["a", "b"], [{}, {}])  # type: ignore[arg-type]
    assert [(o.probability, o.decision, o.rule) for o in out] == [(None, None, None)] * 2


def test_served_quality_needs_every_row_scored():
    labels = pl.Series([1.0, 0.0, 1.0, 0.0])
    assert served_quality([None] * 4, labels, "roc_auc")["quality"] is None
    assert served_quality([0.9, 0.1, None, 0.2], labels, "roc_auc")["quality"] is None
    q = served_quality([0.9, 0.1, 0.8, 0.2], labels, "roc_auc")
    assert q["quality"] == 1.0 and q["bias"] == pytest.approx(0.0)
    assert served_quality([3.0, 1.0], pl.Series([2.0, 2.0]), "rmse")["quality"] == 1.0


def _monitoring(home: LifecycleHome, day: dt.date, psi: float, served_by: str | None) -> None:
    """The day's `prediction_drift` as the loop records it in the home's instance."""
    meta = {"max_psi": psi} | ({"model_version": served_by} if served_by else {})
    instance_for(home).report_runless_asset_event(
        dg.AssetMaterialization("prediction_drift", partition=day.isoformat(), metadata=meta)
    )


def test_policies_decide_training(make_home):
    home = make_home(CONFIG)
    config = delivery_config()  # psi_threshold 0.25, cooldown 2 days
    days = [dt.date(2026, 1, d) for d in range(1, 9)]
    serving = [None, "v1", "v1", "v1", "v1", "v1", "v2", "v2"]
    psis = [0.1, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9]

    def run(policy: str, production: list[str | None]) -> list[bool]:
        """Each day: its monitoring is recorded, then the policy decides (as in the loop)."""
        state, decided = PolicyState(policy), []
        for day, psi, version in zip(days, psis, production, strict=True):
            _monitoring(home, day, psi, version)
            decided.append(decide_training(state, home, config, day, version))
        return decided

    assert run("periodic", serving) == [True] * 8
    assert run("never", serving) == [True] + [False] * 7
    # No registry here, so nothing shows a serving model learned from after an onset: fires
    # when an episode starts (day 2), not within the cooldown (day 3); a new episode after a
    # quiet day fires once the cooldown has passed (day 5), and again while it persists once
    # the cooldown allows (day 7, two days after day 5).
    assert run("triggered", serving) == [True, True, False, False, True, False, True, False]


def test_triggered_retrains_a_persistent_drift_until_a_post_onset_model_serves(make_home):
    """The replay's finding: PSI ≈ 1.8 from period 3 on, and the retrain of period 3 learned
    from a window before the drift (maturity 1 + test window 1: data through period 1). It
    used to fire once and never again; now it fires again after the cooldown (period 5),
    whose model (data through period 3: half its two-day window after the onset) serves from
    period 6 and closes the episode at `episode_close_share` 0.5. At the default, 1.0, half
    a window does not close it: the trigger keeps asking after each cooldown."""
    default = delivery_config()  # psi_threshold 0.25, cooldown 2 days
    assert default.monitoring.episode_close_share == 1.0
    half = default.monitoring.model_copy(update={"episode_close_share": 0.5})
    config = default.model_copy(update={"monitoring": half})
    days = [dt.date(2026, 1, d) for d in range(1, 11)]
    psi = [0.1, 0.1, 1.85, 1.8, 1.8, 1.8, 1.8, 1.8, 1.8, 1.8]
    trained = {"v1": days[0], "v2": days[2], "v3": days[4]}

    def decide(name: str, serving: list[str | None]) -> tuple[list[bool], PolicyState]:
        home = make_home(CONFIG, name=name)
        registry = home.repo / "registry"
        registry.mkdir(parents=True, exist_ok=True)
        (registry / "versions.json").write_text(
            json.dumps({v: {"day": d.isoformat()} for v, d in trained.items()})
        )
        state, decided = PolicyState("triggered"), []
        for day, value, version in zip(days, psi, serving, strict=True):
            _monitoring(home, day, value, version)
            decided.append(decide_training(state, home, config, day, version))
        return decided, state

    serving = [None, "v1", "v1", "v2", "v2", "v3", "v3", "v3", "v3", "v3"]
    decided, state = decide("promoted", serving)
    assert decided == [True, False, True, False, True, False, False, False, False, False]
    assert state.episode.onset == days[2].isoformat() and state.episode.closed
    # Had v3 been rejected (v2 serving on), the trigger would have fired again on period 7.
    kept = [*serving[:5], "v2", "v2", "v2", "v2", "v2"]
    decided, _ = decide("rejected", kept)
    assert decided == [True, False, True, False, True, False, True, False, True, False]
    config = default
    decided, state = decide("default", serving)
    assert decided == [True, False, True, False, True, False, True, False, True, False]
    assert not state.episode.closed


def test_a_replay_dir_that_is_not_a_replays_is_refused(tmp_path: Path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ReplayError, match="not empty"):
        prepare_replay_dir(tmp_path / "other")
    root = prepare_replay_dir(tmp_path / "fresh")
    (root / "never").mkdir()
    assert prepare_replay_dir(root) == root and not (root / "never").exists()


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from lifecycle_assets.cli import main

    config = tmp_path / "eta.yaml"
    config.write_text(CONFIG)
    data = tmp_path / "d.csv"
    deliveries(weeks=1, per_week=5).drop("zone").write_csv(data)
    for path in (tmp_path / "missing.csv", data):
        args = ["replay", str(path), "--config", str(config), "--workdir", str(tmp_path / "r")]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("lifecycle replay: error:") and "\n" not in err, err
    assert "'zone'" in err
