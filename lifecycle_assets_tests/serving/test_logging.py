"""Logging off the request path (`BatchedLog`), idempotent feedback and the unknown-request-id
policy, and the JSON body checks the service applies before BentoML parses a body."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml

from bentos.service import check_json
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.records import (
    LogWriter,
    PredictionRecord,
    read_ground_truth,
    read_predictions,
)
from lifecycle_assets.serving.logbuffer import BatchedLog
from lifecycle_assets.serving.requests import FeedbackRequest, PredictRequest, RequestError
from lifecycle_assets_tests.serving.test_runtime import (  # noqa: F401 - fixtures
    DAY,
    NOON,
    PROBLEM,
    FakeStore,
    features,
    home,
    runtime,
    store,
)


def record(i: int) -> PredictionRecord:
    return PredictionRecord(f"r{i}", "c", NOON, features(i), None, None, None, NOON)


def read_ids(root: Path) -> list[str]:
    rows, bad = read_predictions(root, DAY, PROBLEM.numeric_features, PROBLEM.categorical_features)
    assert bad.is_empty()
    return rows["request_id"].to_list()


def test_batched_log_writes_off_the_request_path_and_drains_on_close(tmp_path: Path) -> None:
    log = BatchedLog(LogWriter(tmp_path, "w"), flush_interval_s=0.05, fsync_interval_s=10)
    log.predictions([record(0), record(1)])
    assert read_ids(tmp_path) == []  # handed over, not yet written: the request did not wait
    log.sync()
    assert read_ids(tmp_path) == ["r0", "r1"]
    log.predictions([record(2)])
    log.close()  # graceful shutdown: everything queued is written
    assert read_ids(tmp_path) == ["r0", "r1", "r2"]
    with pytest.raises(RuntimeError, match="closed"):
        log.predictions([record(3)])


def test_inline_mode_writes_before_returning(tmp_path: Path) -> None:
    log = BatchedLog(LogWriter(tmp_path, "w"), flush_interval_s=0)
    log.predictions([record(0)])
    assert read_ids(tmp_path) == ["r0"]
    log.close()


def test_writes_from_many_threads_are_all_logged_once(tmp_path: Path) -> None:
    log = BatchedLog(LogWriter(tmp_path, "w"), flush_interval_s=0.002, max_pending=64)

    def burst(t: int) -> None:
        for i in range(250):
            log.predictions([record(t * 1000 + i)])

    threads = [threading.Thread(target=burst, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    ids = read_ids(tmp_path)
    assert len(ids) == 1000 and len(set(ids)) == 1000


def test_a_stalled_disk_applies_backpressure(tmp_path: Path) -> None:
    """With the writer stuck, the queue stops at `max_pending`: the loss window stays bounded."""
    writer = LogWriter(tmp_path, "w")
    gate = threading.Event()
    real = writer.write_predictions

    def slow(records: list[PredictionRecord]) -> None:
        gate.wait()
        real(records)

    writer.write_predictions = slow  # type: ignore[method-assign]
    log = BatchedLog(writer, flush_interval_s=0.001, max_pending=10)
    log.predictions([record(0)])
    time.sleep(0.05)  # the writer took r0 and is stuck on it
    done = threading.Event()

    def fill() -> None:
        for i in range(1, 30):
            log.predictions([record(i)])
        done.set()

    threading.Thread(target=fill, daemon=True).start()
    time.sleep(0.2)
    assert not done.is_set(), "requests wait once max_pending records are queued"
    gate.set()
    assert done.wait(10)
    log.close()
    assert len(read_ids(tmp_path)) == 30


def _set_policy(home: LifecycleHome, **serving: str) -> None:  # noqa: F811
    data = yaml.safe_load(home.config_path.read_text())
    data["serving"].update(serving)
    home.config_path.write_text(yaml.safe_dump(data))


def test_feedback_is_idempotent_per_request_id(home: LifecycleHome, store: FakeStore) -> None:  # noqa: F811
    rt = runtime(home, store, feedback_token="t")
    one = FeedbackRequest.model_validate({"request_id": "r1", "label": 1})
    assert rt.feedback(one, "Bearer t").model_dump() == {"count": 1, "duplicates": 0}
    again = rt.feedback(one, "Bearer t")
    assert again.model_dump() == {"count": 0, "duplicates": 1}
    batch = FeedbackRequest.model_validate(
        {"labels": [{"request_id": "r2", "label": 0}, {"request_id": "r2", "label": 1}]}
    )
    assert rt.feedback(batch, "Bearer t").model_dump() == {"count": 1, "duplicates": 1}
    rt.close()
    truth, _ = read_ground_truth(home.logs, DAY)
    assert sorted(truth["request_id"].to_list()) == ["r1", "r2"]
    assert dict(truth.select("request_id", "label").rows())["r2"] == 0.0  # the first label


def test_feedback_without_a_token_policy(home: LifecycleHome, store: FakeStore) -> None:  # noqa: F811
    _set_policy(home, feedback_auth="none")
    rt = runtime(home, store)
    req = FeedbackRequest.model_validate({"request_id": "r1", "label": 1})
    assert rt.feedback(req, None).count == 1
    rt.close()


def test_feedback_required_but_no_token_configured_is_closed(
    home: LifecycleHome,  # noqa: F811
    store: FakeStore,  # noqa: F811
) -> None:
    rt = runtime(home, store)  # the service itself refuses to start like this
    with pytest.raises(RequestError) as info:
        rt.feedback(FeedbackRequest.model_validate({"request_id": "r", "label": 1}), "Bearer x")
    assert info.value.status == 503
    rt.close()


def test_unknown_request_ids_are_rejected_when_configured(
    home: LifecycleHome,  # noqa: F811
    store: FakeStore,  # noqa: F811
) -> None:
    _set_policy(home, unknown_request_id="reject")
    rt = runtime(home, store, feedback_token="t")
    rt.predict([PredictRequest(request_id="known-1", entity_id="c", features=features())])
    ok = FeedbackRequest.model_validate({"request_id": "known-1", "label": 1})
    assert rt.feedback(ok, "Bearer t").count == 1  # indexed within the same worker at once
    bad = FeedbackRequest.model_validate(
        {"labels": [{"request_id": "known-1", "label": 1}, {"request_id": "ghost", "label": 1}]}
    )
    with pytest.raises(RequestError, match="ghost") as info:
        rt.feedback(bad, "Bearer t")
    assert info.value.status == 404
    rt.close()
    # Another worker (a new runtime on the same home) knows the id from the shared index.
    rt2 = runtime(home, store, feedback_token="t")
    again = FeedbackRequest.model_validate({"request_id": "known-1", "label": 0})
    assert rt2.feedback(again, "Bearer t").count == 1  # not this worker's duplicate
    rt2.close()


GOOD = json.dumps({"entity_id": "c", "features": {"a": 1}}).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"{not json", "malformed JSON"),
        (b'{"entity_id": "a", "entity_id": "b"}', "appears twice"),
        (b'{"x": {"y": 1, "y": 2}}', "appears twice"),
        (b'{"amount": NaN}', "NaN"),
        (b'{"amount": -Infinity}', "-Infinity"),
        (b'{"entity_id": "\xff\xfe"}', "UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_json_body_checks(body: bytes, reason: str) -> None:
    refusal = check_json(body)
    assert refusal is not None and reason in refusal


def test_good_json_passes_the_body_checks() -> None:
    assert check_json(GOOD) is None
    assert check_json(b'{"amount": 1e309}') is None  # a float: refused later as not finite
