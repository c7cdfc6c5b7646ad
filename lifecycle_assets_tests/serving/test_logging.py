"""Logging off the request path (`BatchedLog`), idempotent feedback and the unknown-request-id
policy, the JSON body checks the service applies before BentoML parses a body, and the
coalescer that scores the `/predict` requests of one event-loop turn together."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import errno
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bentos.service import Coalescer, check_json
from lifecycle_assets.data.transforms import first_arrivals
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.records import (
    LogWriter,
    PredictionRecord,
    read_ground_truth,
    read_log_quarantine,
    read_predictions,
)
from lifecycle_assets.records import writer as records_writer
from lifecycle_assets.serving.logbuffer import BatchedLog
from lifecycle_assets.serving.requests import (
    FeedbackRequest,
    Prediction,
    PredictRequest,
    RequestError,
)
from lifecycle_assets_tests.serving.helpers import (
    DAY,
    NOON,
    PROBLEM,
    FakeStore,
    features,
    runtime,
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


def test_a_record_that_cannot_be_encoded_is_quarantined_and_blocks_nothing(
    tmp_path: Path,
) -> None:
    """One NaN score used to poison the queue: requeued at its head, every later drain failed
    on it and the rows ahead of it were written again each time."""
    writer = LogWriter(tmp_path, "w")
    log = BatchedLog(writer, flush_interval_s=0)
    poison = dataclasses.replace(record(1), score=float("nan"), model_version="v1")
    log.predictions([record(0), poison, record(2)])
    for i in range(3, 50):
        log.predictions([record(i)])
    log.close()
    ids = read_ids(tmp_path)
    assert ids == [f"r{i}" for i in range(50) if i != 1]  # each exactly once, in order
    (bad,) = read_log_quarantine(tmp_path, dt.datetime.now(dt.UTC).date())
    assert bad["stream"] == "predictions" and bad["request_id"] == "r1"
    assert "score must be finite" in bad["reason"]
    assert writer.quarantined == 1


class FailingWrites:
    """`os` for the log writer, whose `write` writes part of the buffer and then fails with
    ENOSPC while `failing` is set: a disk filling up mid-write."""

    def __init__(self) -> None:
        self._failing = False
        self._torn = False

    @property
    def failing(self) -> bool:
        return self._failing

    @failing.setter
    def failing(self, value: bool) -> None:
        self._failing, self._torn = value, False

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        if self._failing:
            if not self._torn and len(data) > 7:
                self._torn = True
                return os.write(fd, bytes(data[:7]))  # a torn line, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)


def test_a_failing_disk_loses_nothing_and_writes_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FailingWrites()
    monkeypatch.setattr(records_writer, "os", fake)
    writer = LogWriter(tmp_path, "w")
    log = BatchedLog(writer, flush_interval_s=0, fsync_interval_s=0)
    log.predictions([record(0)])
    fake.failing = True
    for i in range(1, 20):
        log.predictions([record(i)])
    assert log.error is not None and "No space left" in log.error
    assert log.backlog() == 19
    fake.failing = False
    assert log.drain()  # the retry writes the pending bytes, from where the write stopped
    assert log.error is None and log.backlog() == 0
    log.close()
    assert read_ids(tmp_path) == [f"r{i}" for i in range(20)]


def test_open_segment_files_are_bounded(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, "w", max_open=4)
    for day in range(60):
        when = NOON - dt.timedelta(days=day)
        writer.write_predictions([dataclasses.replace(record(day), event_time=when)])
        assert writer.open_files <= 4
    writer.close()
    assert writer.open_files == 0
    for day in range(60):
        rows, bad = read_predictions(
            tmp_path,
            DAY - dt.timedelta(days=day),
            PROBLEM.numeric_features,
            PROBLEM.categorical_features,
        )
        assert rows["request_id"].to_list() == [f"r{day}"] and bad.is_empty()


def test_a_stalled_disk_applies_backpressure(tmp_path: Path) -> None:
    """With the writer stuck, the queue stops at `max_pending`: the loss window stays bounded."""
    writer = LogWriter(tmp_path, "w")
    gate = threading.Event()
    real = writer.append

    def slow(records: list[PredictionRecord], labels: Any = ()) -> int:
        gate.wait()
        return real(records, labels)

    writer.append = slow  # type: ignore[method-assign]
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


def _set_policy(home: LifecycleHome, **serving: str) -> None:
    data = yaml.safe_load(home.config_path.read_text())
    data["serving"].update(serving)
    home.config_path.write_text(yaml.safe_dump(data))


def test_feedback_is_idempotent_per_request_id(home: LifecycleHome, store: FakeStore) -> None:
    rt = runtime(home, store, feedback_token="t")
    one = FeedbackRequest.model_validate({"request_id": "r1", "label": 1})
    assert rt.feedback(one, "Bearer t").model_dump() == {
        "count": 1,
        "duplicates": 0,
        "conflicts": 0,
    }
    again = rt.feedback(one, "Bearer t")
    assert again.model_dump() == {"count": 0, "duplicates": 1, "conflicts": 0}
    batch = FeedbackRequest.model_validate(
        {
            "labels": [
                {"request_id": "r2", "label": 0},
                {"request_id": "r2", "label": 0},
                {"request_id": "r2", "label": 1},
            ]
        }
    )
    # a repeat is a duplicate; a different label for the same request is a conflict
    assert rt.feedback(batch, "Bearer t").model_dump() == {
        "count": 1,
        "duplicates": 1,
        "conflicts": 1,
    }
    conflicting = FeedbackRequest.model_validate({"request_id": "r1", "label": 0})
    assert rt.feedback(conflicting, "Bearer t").conflicts == 1
    assert rt.health().label_conflicts == 2
    rt.close()
    truth, _ = read_ground_truth(home.logs, DAY)
    # both conflicting labels are written, stamped in arrival order; the first one wins
    assert truth["request_id"].to_list() == ["r1", "r2", "r2", "r1"]
    assert truth["received_at"].is_sorted()
    first, conflicts = first_arrivals(truth)
    assert dict(first.select("request_id", "label").rows()) == {"r1": 1.0, "r2": 0.0}
    assert conflicts.height == 2


def test_feedback_without_a_token_policy(home: LifecycleHome, store: FakeStore) -> None:
    _set_policy(home, feedback_auth="none")
    rt = runtime(home, store)
    req = FeedbackRequest.model_validate({"request_id": "r1", "label": 1})
    assert rt.feedback(req, None).count == 1
    rt.close()


def test_feedback_required_but_no_token_configured_is_closed(
    home: LifecycleHome,
    store: FakeStore,
) -> None:
    rt = runtime(home, store)  # the service itself refuses to start like this
    with pytest.raises(RequestError) as info:
        rt.feedback(FeedbackRequest.model_validate({"request_id": "r", "label": 1}), "Bearer x")
    assert info.value.status == 503
    rt.close()


def test_unknown_request_ids_are_rejected_when_configured(
    home: LifecycleHome,
    store: FakeStore,
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


def test_the_coalescer_scores_the_requests_of_one_loop_turn_together() -> None:
    """Requests that reach `Coalescer.predict` in one event-loop turn are scored in one
    `predict_each` call, in arrival order, each answered with its own result (a refusal
    raised for its own request alone); a request of a later turn is a group of its own,
    and a group that reaches `limit` is scored at once."""
    calls: list[list[str]] = []

    class Runtime:
        def predict_each(self, requests: list[PredictRequest]) -> list[Any]:
            calls.append([r.entity_id for r in requests])
            return [
                RequestError("refused", 409)
                if r.entity_id == "bad"
                else Prediction(
                    request_id=r.entity_id, model_version="v1", score=0.5, decision="approve"
                )
                for r in requests
            ]

    def request(entity: str) -> PredictRequest:
        return PredictRequest.model_construct(entity_id=entity, features={})

    async def main() -> tuple[Coalescer, list[Any], Prediction, list[Prediction]]:
        coalescer, rt = Coalescer(limit=4), Runtime()
        together = await asyncio.gather(
            *(coalescer.predict(rt, request(e)) for e in ("a", "bad", "c")),  # type: ignore[arg-type]
            return_exceptions=True,
        )
        later = await coalescer.predict(rt, request("d"))  # type: ignore[arg-type]
        many = await asyncio.gather(
            *(coalescer.predict(rt, request(f"m{i}")) for i in range(6))  # type: ignore[arg-type]
        )
        return coalescer, together, later, many

    coalescer, together, later, many = asyncio.run(main())
    assert calls == [["a", "bad", "c"], ["d"], ["m0", "m1", "m2", "m3"], ["m4", "m5"]]
    assert [p.request_id for p in (together[0], together[2])] == ["a", "c"]
    assert isinstance(together[1], RequestError) and together[1].status == 409
    assert later.request_id == "d" and [p.request_id for p in many] == [f"m{i}" for i in range(6)]
    assert coalescer.groups == 4
