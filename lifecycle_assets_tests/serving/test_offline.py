"""Offline predictions: the scheduled-items log, batch scoring through the same chain as
serving, the SQLite lookup store's atomic swap, and `ServingRuntime.lookup` with rescoring."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

import pytest
import yaml

from lifecycle_assets.config import load_config
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.records import LogWriter, ScheduledRecord
from lifecycle_assets.serving.lookup import LookupEntry, SqliteLookupStore
from lifecycle_assets.serving.offline import (
    log_scheduled_payments,
    publish_offline_predictions,
    read_scheduled,
)
from lifecycle_assets.serving.requests import PredictRequest
from lifecycle_assets.simulator.fraud import FraudSimulator
from lifecycle_assets_tests.serving.helpers import (
    DAY,
    NOON,
    FakeStore,
    features,
    make_artifact,
    point,
    runtime,
)

CONFIG = load_config()
PROBLEM = CONFIG.problem
TOMORROW = DAY + dt.timedelta(days=1)


def entry(item_id: str, score: float | None = 0.5, version: str | None = "v1") -> LookupEntry:
    return LookupEntry(
        item_id, "card-1", "2026-06-06T10:00:00+00:00", None, score, score, "review", None,
        version, "2026-06-05T12:00:00+00:00",
    )  # fmt: skip


def test_store_round_trip_and_missing_keys(tmp_path: Path) -> None:
    lookup = SqliteLookupStore(tmp_path, check_interval_s=0)
    assert lookup.get("a") is None and lookup.info() is None  # before the first publish
    generation = lookup.publish([entry("a"), entry("b", None, None)], {"scheduled_date": "x"})
    assert generation["entries"] == 2 and generation["scheduled_date"] == "x"
    assert lookup.get("a") == entry("a")
    assert lookup.get("b") == entry("b", None, None)
    assert lookup.get("zzz") is None
    assert lookup.info() == generation


def test_publish_swaps_atomically_under_concurrent_readers(tmp_path: Path) -> None:
    """Every read sees a whole entry of generation 1 or 2, never an error or a missing key,
    while generations are swapped under it."""
    writer = SqliteLookupStore(tmp_path)
    writer.publish([entry(f"k{i}", 0.1) for i in range(2000)], {"g": 1})
    errors: list[BaseException] = []
    seen: set[float | None] = set()
    stop = threading.Event()

    def read() -> None:
        reader = SqliteLookupStore(tmp_path, check_interval_s=0)
        try:
            while not stop.is_set():
                for key in ("k0", "k1999"):
                    got = reader.get(key)
                    assert got is not None and got.item_id == key
                    seen.add(got.score)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(3):
        writer.publish([entry(f"k{i}", 0.9) for i in range(2000)], {"g": 2})
        writer.publish([entry(f"k{i}", 0.1) for i in range(2000)], {"g": 1})
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert seen <= {0.1, 0.9}
    assert not list(tmp_path.glob("*.tmp")), "temporary generations are cleaned up"


def test_scheduled_log_round_trip_and_quarantine(tmp_path: Path) -> None:
    sim = FraudSimulator(CONFIG)
    index = sim.day_index(DAY)
    writer = LogWriter(tmp_path, writer_id="billing")
    assert (
        log_scheduled_payments(writer, sim, index) == CONFIG.simulation.scheduled_payments_per_day
    )
    folder = tmp_path / "scheduled" / f"date={TOMORROW.isoformat()}"
    with open(folder / "billing.jsonl", "a") as fh:
        fh.write('{"item_id": "x", "scheduled_time": "2026-06-06T01:00:00+00:00"}\n')
        fh.write("{torn\n")
    items, bad = read_scheduled(
        tmp_path, TOMORROW, PROBLEM.numeric_features, PROBLEM.categorical_features
    )
    expected = sim.scheduled_payments(index)
    assert [i.item_id for i in items] == [p.scheduled_payment_id for p in expected]
    assert items[0].features == expected[0].features
    assert items[0].scheduled_time == expected[0].scheduled_time
    assert sorted(bad["reason"].to_list()) == ["corrupt_line", "missing_features"]


def test_offline_scores_equal_online_scores(home: LifecycleHome, store: FakeStore) -> None:
    """No skew: the lookup store holds what the service answers for the same features."""
    sim = FraudSimulator(CONFIG)
    log_scheduled_payments(LogWriter(home.logs, "billing"), sim, sim.day_index(DAY))
    artifact = make_artifact("v1")
    lookup = SqliteLookupStore(home.lookup)
    frame, generation = publish_offline_predictions(
        home.logs, CONFIG, TOMORROW, artifact, lookup, NOON
    )
    assert frame.height == generation["entries"] == CONFIG.simulation.scheduled_payments_per_day
    assert frame["model_version"].unique().to_list() == ["v1"]

    store.models["v1"] = artifact
    point(home, "v1")
    rt = runtime(home, store, background_loads=False, feedback_token="t")
    first = sim.scheduled_payments(sim.day_index(DAY))[0]
    got = rt.lookup(first.scheduled_payment_id)
    assert got is not None and got.source == "offline"
    assert got.model_version == "v1" and got.computed_at == NOON.isoformat()
    online = rt.predict([PredictRequest(entity_id=first.card_id, features=first.features)])[0]
    assert got.score == pytest.approx(online.score, abs=1e-6)
    assert got.decision == online.decision
    assert rt.lookup("sched-nope") is None
    rt.close()


def _home_with_policy(home: LifecycleHome, policy: str) -> None:
    data = yaml.safe_load(home.config_path.read_text())
    data["serving"]["lookup_rescore"] = policy
    home.config_path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("policy", "stale_source", "missing_source"),
    [
        ("stale_or_missing", "rescored", "rescored"),
        ("missing", "offline", "rescored"),
        ("never", "offline", "offline"),
    ],
)
def test_lookup_rescores_stale_or_missing_entries_as_configured(
    home: LifecycleHome,
    store: FakeStore,
    policy: str,
    stale_source: str,
    missing_source: str,
) -> None:
    _home_with_policy(home, policy)
    items = [
        ScheduledRecord("s-1", "card-1", NOON, {**_feats(), "amount": 12.0}),
        ScheduledRecord("s-2", "card-2", NOON, _feats()),
    ]
    writer = LogWriter(home.logs, "billing")
    writer.write_scheduled(items)
    writer.close()
    lookup = SqliteLookupStore(home.lookup)
    old = make_artifact("v1", seed=1)
    publish_offline_predictions(home.logs, CONFIG, DAY, old, lookup, NOON)  # scored by v1
    # ... then a promotion: v2 serves, and s-2 lost its score (e.g. scored at cold start).
    lookup.publish([_entry_from(lookup, "s-1"), _unscored(lookup, "s-2")], {"g": 2})
    store.models["v2"] = make_artifact("v2", seed=2)
    point(home, "v2")
    rt = runtime(home, store, background_loads=False, feedback_token="t")
    stale, missing = rt.lookup("s-1"), rt.lookup("s-2")
    assert stale is not None and missing is not None
    assert (stale.source, missing.source) == (stale_source, missing_source)
    v2 = store.models["v2"].score_rows([items[0].features, items[1].features])
    if stale_source == "rescored":
        assert stale.model_version == "v2"
        assert stale.score == pytest.approx(float(v2[0]), abs=1e-6)
    else:
        assert stale.model_version == "v1"
    if missing_source == "rescored":
        assert missing.score == pytest.approx(float(v2[1]), abs=1e-6)
    else:
        assert missing.score is None and missing.decision is None
    rt.close()


def _feats() -> dict[str, float | int | str | None]:
    return features(0)


def _entry_from(lookup: SqliteLookupStore, key: str) -> LookupEntry:
    got = lookup.get(key)
    assert got is not None
    return got


def _unscored(lookup: SqliteLookupStore, key: str) -> LookupEntry:
    import dataclasses

    return dataclasses.replace(
        _entry_from(lookup, key), score=None, probability=None, decision=None, model_version=None
    )


def test_raw_sqlite_file_is_what_the_docs_say(tmp_path: Path) -> None:
    SqliteLookupStore(tmp_path).publish([entry("a")], {})
    with sqlite3.connect(tmp_path / "lookup.sqlite") as conn:
        assert conn.execute("SELECT score FROM entries WHERE item_id='a'").fetchone() == (0.5,)
