"""One worker's serving runtime without a server: cold start, following the production alias
(verify → load → warm up → swap), keeping the old model when a load fails, the loop's clock,
feedback and logging. Models come from an in-memory loader instead of the BentoML store."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from lifecycle_assets.config import example_config_path
from lifecycle_assets.home import LifecycleHome, set_simulated_today
from lifecycle_assets.records import read_ground_truth, read_predictions
from lifecycle_assets.serving.requests import FeedbackRequest, PredictRequest, RequestError
from lifecycle_assets.serving.runtime import ServingRuntime
from lifecycle_assets_tests.serving.helpers import (
    DAY,
    NOON,
    PROBLEM,
    FakeStore,
    features,
    make_artifact,
    point,
    runtime,
)


def predict_one(rt: ServingRuntime, i: int = 0, **kwargs: Any) -> Any:
    return rt.predict([PredictRequest(entity_id=f"c{i}", features=features(i), **kwargs)])[0]


def logged(home: LifecycleHome) -> pl.DataFrame:
    rows, bad = read_predictions(
        home.logs, DAY, PROBLEM.numeric_features, PROBLEM.categorical_features
    )
    assert bad.is_empty()
    return rows


def test_cold_start_logs_unscored_predictions(home: LifecycleHome, store: FakeStore) -> None:
    rt = runtime(home, store)
    out = predict_one(rt)
    assert (out.model_version, out.score, out.decision) == (None, None, None)
    health = rt.health()
    assert (health.status, health.model_version, health.alias_version) == ("ok", None, None)
    rt.log.sync()  # written by the log thread within one flush interval
    rows = logged(home)
    assert rows["request_id"].to_list() == [out.request_id]
    assert rows["event_time"].to_list() == [NOON]  # the simulated clock's "now"
    assert rows["model_version"].to_list() == [None]
    rt.close()


def test_starts_with_the_production_model(home: LifecycleHome, store: FakeStore) -> None:
    store.models["v1"] = make_artifact("v1")
    point(home, "v1")
    rt = runtime(home, store, background_loads=False)
    assert rt.model.served.version == "v1"
    out = predict_one(rt, 3)
    expected = store.models["v1"].score_rows([features(3)])
    assert out.model_version == "v1"
    assert out.score == pytest.approx(float(expected[0]), abs=1e-6)
    assert out.decision == store.models["v1"].decide(expected)[0]
    rt.log.sync()
    assert logged(home)["score"].to_list() == [out.score]


def test_follows_alias_moves_and_keeps_the_old_model_when_a_load_fails(
    home: LifecycleHome, store: FakeStore
) -> None:
    rt = runtime(home, store)
    store.models["v1"] = make_artifact("v1", seed=1)
    point(home, "v1")
    predict_one(rt)  # notices the move; the load runs in the background
    rt.model.wait(10)
    assert predict_one(rt).model_version == "v1"

    point(home, "v2")  # not in the store: the load fails
    rt.tick()
    rt.model.wait(10)
    assert predict_one(rt).model_version == "v1"
    health = rt.health()
    assert health.status == "degraded" and health.alias_version == "v2"
    assert health.error is not None and "v2" in health.error
    loads = len(store.loads)
    rt.tick()
    rt.model.wait(10)
    assert len(store.loads) == loads, "a failed version is not retried on every check"

    point(home, "v1")  # rolled back: healthy again without a load
    rt.tick()
    assert rt.health().status == "ok" and rt.health().model_version == "v1"

    store.models["v3"] = make_artifact("v3", seed=3)
    point(home, "v3")
    rt.tick()
    rt.model.wait(10)
    out = predict_one(rt, 5)
    assert out.model_version == "v3"
    expected = store.models["v3"].score_rows([features(5)])[0]
    assert out.score == pytest.approx(float(expected), abs=1e-6)

    point(home, None)  # alias cleared: back to unscored
    rt.tick()
    assert predict_one(rt).model_version is None
    rt.close()
    versions = logged(home)["model_version"].to_list()
    # The first request only triggers the background load; it is served by whichever model
    # is in place when it is scored, so either answer is right.
    assert versions[0] in (None, "v1")
    assert versions[1:] == ["v1", "v1", "v3", None]


def test_refuses_a_model_trained_on_other_features(home: LifecycleHome, store: FakeStore) -> None:
    other = PROBLEM.model_copy(update={"numeric_features": ("amount", "hour")})
    store.models["v1"] = make_artifact("v1", problem=other)
    point(home, "v1")
    rt = runtime(home, store, background_loads=False)
    assert rt.model.served.version is None
    assert "features" in (rt.health().error or "")


def test_batch_scores_match_single_scores(home: LifecycleHome, store: FakeStore) -> None:
    store.models["v1"] = make_artifact("v1")
    point(home, "v1")
    rt = runtime(home, store, background_loads=False)
    reqs = [PredictRequest(entity_id=f"c{i}", features=features(i)) for i in range(20)]
    batch = rt.predict(reqs)
    singles = [predict_one(rt, i) for i in range(20)]
    assert len({p.request_id for p in batch + singles}) == 40
    for b, s in zip(batch, singles, strict=True):
        assert b.score == pytest.approx(s.score, abs=1e-6)


def test_requests_scored_together_are_answered_each_on_its_own(
    home: LifecycleHome, store: FakeStore
) -> None:
    """`predict_each` (the requests of one event-loop turn, from different clients): the
    same scores as one at a time; a bad request, an id answered before and an id repeated
    within the group are refused alone, and only the answered requests are logged."""
    store.models["v1"] = make_artifact("v1")
    point(home, "v1")
    rt = runtime(home, store, background_loads=False)
    earlier = predict_one(rt, 9)
    group = [PredictRequest(entity_id=f"c{i}", features=features(i)) for i in range(4)]
    group.insert(1, PredictRequest(entity_id="c", features={**features(), "amount": float("nan")}))
    group.append(PredictRequest(entity_id="c", features=features(5), request_id=earlier.request_id))
    group.append(PredictRequest(entity_id="d", features=features(6), request_id="twice"))
    group.append(PredictRequest(entity_id="d", features=features(7), request_id="twice"))
    answers = rt.predict_each(group)
    assert len(answers) == len(group)
    bad, answered_before, second_twice = answers[1], answers[5], answers[7]
    assert isinstance(bad, RequestError) and bad.status == 400 and "requests[" not in str(bad)
    assert isinstance(answered_before, RequestError) and answered_before.status == 409
    assert isinstance(second_twice, RequestError) and second_twice.status == 409
    served = [a for a in answers if not isinstance(a, RequestError)]
    assert len(served) == 5 and served[-1].request_id == "twice"
    for i, answer in zip(range(4), served[:4], strict=True):
        alone = store.models["v1"].score_rows([features(i)])[0]
        assert answer.score == pytest.approx(float(alone), abs=1e-6)
    rt.log.sync()
    assert logged(home)["request_id"].to_list() == [
        earlier.request_id,
        *(a.request_id for a in served),
    ]
    _serve_nan_scores(rt)
    (refused,) = rt.predict_each([group[0]])
    assert isinstance(refused, RequestError) and refused.status == 422
    rt.close()


def test_bad_request_logs_nothing(home: LifecycleHome, store: FakeStore) -> None:
    rt = runtime(home, store)
    good = PredictRequest(entity_id="c", features=features())
    bad = PredictRequest(entity_id="c", features={**features(), "amount": float("nan")})
    with pytest.raises(RequestError):
        rt.predict([good, bad])
    rt.log.sync()
    assert logged(home).is_empty()


def test_the_clock_follows_the_home(home: LifecycleHome, store: FakeStore) -> None:
    rt = runtime(home, store)
    assert predict_one(rt).request_id
    set_simulated_today(home, DAY + dt.timedelta(days=1))
    rt.tick()
    assert rt.now() == NOON + dt.timedelta(days=1)
    home.clock_path.unlink()
    rt.tick()
    assert abs(rt.now() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


def test_feedback_is_logged_and_needs_the_token(home: LifecycleHome, store: FakeStore) -> None:
    rt = runtime(home, store, feedback_token="s3cret")
    req = FeedbackRequest.model_validate({"request_id": "r1", "label": 1})
    with pytest.raises(RequestError) as info:
        rt.feedback(req, None)
    assert info.value.status == 401
    with pytest.raises(RequestError) as info:
        rt.feedback(req, "Bearer wrong")
    assert info.value.status == 403
    assert rt.feedback(req, "Bearer s3cret").count == 1
    rt.close()
    truth, _ = read_ground_truth(home.logs, DAY)
    assert truth.select("request_id", "label", "observed_time").rows() == [("r1", 1.0, NOON)]
    # stamped with the service's arrival time by the loop's clock (here the simulated day)
    assert truth["received_at"].to_list() == [NOON]


def test_labels_are_filed_by_arrival_and_a_client_time_cannot_displace_the_first(
    home: LifecycleHome, store: FakeStore
) -> None:
    """A client-chosen `observed_time` outside the plausible window is refused (4xx); a
    plausible backdated one is kept as information only: the label is filed under the day
    it arrived, and a later, different label is a conflict that never wins the join."""
    from lifecycle_assets.data.transforms import CONFLICTING_LABEL, build_labeled_examples

    rt = runtime(home, store, feedback_token="t")
    auth = "Bearer t"
    request_id = predict_one(rt, event_time=NOON - dt.timedelta(hours=3)).request_id
    for when in ("1900-01-01T00:00:00Z", "2099-01-01T00:00:00Z"):
        body = {"request_id": request_id, "label": 1, "observed_time": when}
        with pytest.raises(RequestError) as info:
            rt.feedback(FeedbackRequest.model_validate(body), auth)
        assert info.value.status == 400 and "observed_time" in str(info.value)
    first = {"request_id": request_id, "label": 1, "observed_time": NOON.isoformat()}
    assert rt.feedback(FeedbackRequest.model_validate(first), auth).count == 1
    # later, claiming an earlier observation: information only, it cannot go first
    earlier = (NOON - dt.timedelta(hours=2)).isoformat()
    second = {"request_id": request_id, "label": 0, "observed_time": earlier}
    answer = rt.feedback(FeedbackRequest.model_validate(second), auth)
    assert (answer.count, answer.conflicts) == (0, 1)
    rt.close()
    # both filed under the arrival day, none under the client's day
    assert sorted(p.name for p in (home.logs / "ground_truth").iterdir()) == [f"date={DAY}"]
    truth, bad = read_ground_truth(home.logs, DAY)
    assert bad.is_empty() and truth["label"].to_list() == [1.0, 0.0]
    config = home.config()
    matured = DAY + dt.timedelta(days=config.labels.maturity_days)
    examples, quarantine = build_labeled_examples(logged(home), truth, DAY, matured, config)
    assert examples[config.problem.label].to_list() == [1.0]  # the first label is kept
    assert quarantine["reason"].to_list() == [CONFLICTING_LABEL]  # the conflict is counted


# --- no silent loss, no approval by accident --------------------------------------------------


def test_ready_in_cold_start_and_with_a_verified_model_only(
    home: LifecycleHome, store: FakeStore
) -> None:
    rt = runtime(home, store, background_loads=False)
    assert rt.readiness()[0] is True  # no model exists yet: cold start is a ready state
    point(home, "v9")  # registered, but its files do not load
    rt.tick()
    ready, why = rt.readiness()
    assert ready is False and "v9" in why
    assert rt.health().status == "degraded" and rt.health().ready is False
    with pytest.raises(RequestError, match="no verified model is serving") as info:
        predict_one(rt)
    assert info.value.status == 503  # never an unscored 200 while a model should serve
    rt.log.sync()
    assert logged(home).is_empty()
    store.models["v9"] = make_artifact("v9")
    rt.model._retry_at.clear()  # the retry delay is not what this test waits for
    rt.tick()
    assert rt.readiness() == (True, "serving v9")
    assert predict_one(rt).model_version == "v9"
    rt.close()


def _serve_nan_scores(rt: ServingRuntime) -> None:
    artifact = rt.model.served.artifact
    assert artifact is not None
    artifact.score_rows = lambda rows: np.full(len(rows), np.nan)  # type: ignore[method-assign]


def test_a_non_finite_score_is_refused_never_approved(
    home: LifecycleHome, store: FakeStore
) -> None:
    store.models["v1"] = make_artifact("v1")
    point(home, "v1")
    rt = runtime(home, store, background_loads=False)
    _serve_nan_scores(rt)
    with pytest.raises(RequestError, match="non-finite score") as info:
        predict_one(rt)
    assert info.value.status == 422
    rt.log.sync()
    assert logged(home).is_empty()  # nothing was acknowledged
    rt.close()


def test_a_non_finite_score_can_be_sent_to_review(home: LifecycleHome, store: FakeStore) -> None:
    config = json.loads(json.dumps(load_yaml(home)))
    config["serving"]["on_invalid_score"] = "review"
    write_yaml(home, config)
    store.models["v1"] = make_artifact("v1")
    point(home, "v1")
    rt = runtime(home, store, background_loads=False)
    _serve_nan_scores(rt)
    out = predict_one(rt)
    assert (out.score, out.probability, out.decision, out.rule) == (
        None,
        None,
        "review",
        "invalid_score",
    )
    rt.log.sync()
    row = logged(home).row(0, named=True)
    assert (row["score"], row["decision"]) == (None, "review")
    rt.close()


def test_drift_beyond_the_training_range_is_served_and_flagged(
    home: LifecycleHome, store: FakeStore
) -> None:
    artifact = make_artifact("v1")
    artifact.metadata["feature_ranges"] = {"amount": [0.0, 100.0], "hour": [3.0, 4.0]}
    store.models["v1"] = artifact
    point(home, "v1")
    rt = runtime(home, store, background_loads=False)
    assert predict_one(rt, 7).model_version == "v1"  # hour 7: within the config's [0, 23]
    big = PredictRequest(entity_id="c", features={**features(), "amount": 1e38})
    (answer,) = rt.predict([big])
    assert answer.model_version == "v1" and answer.score is not None
    beyond_float32 = PredictRequest(entity_id="c", features={**features(), "amount": 1e39})
    with pytest.raises(RequestError, match="float32") as info:
        rt.predict([beyond_float32])  # an absurd magnitude is still refused
    assert info.value.status == 400
    rt.close()
    rows = logged(home)
    flags = dict(zip(rows["request_id"], rows["out_of_range"].to_list(), strict=True))
    assert flags[answer.request_id] == ["amount"]
    assert sum(1 for f in flags.values() if f) == 1  # hour 7 is not flagged


def test_event_times_the_pipeline_would_quarantine_are_refused(
    home: LifecycleHome, store: FakeStore
) -> None:
    rt = runtime(home, store)
    for when in ("1000-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "9999-12-31T00:00:00Z"):
        with pytest.raises(RequestError, match="event_time") as info:
            predict_one(rt, event_time=when)
        assert info.value.status == 400
    assert predict_one(rt, event_time=NOON - dt.timedelta(days=30)).request_id
    rt.close()


def test_predictions_are_refused_while_the_log_cannot_be_written(
    home: LifecycleHome, store: FakeStore
) -> None:
    config = load_yaml(home)
    config["serving"].update(max_unlogged_records=3, log_flush_interval_ms=0)
    write_yaml(home, config)
    rt = runtime(home, store)
    broken = {"on": True}
    real = rt.writer._write_pending

    def write_pending() -> None:
        if broken["on"]:
            rt.writer.error = "OSError: [Errno 28] No space left on device"
            raise OSError(28, "No space left on device")
        real()

    rt.writer._write_pending = write_pending  # type: ignore[method-assign]
    acknowledged = [predict_one(rt, i).request_id for i in range(3)]
    assert rt.readiness()[0] is False and rt.health().status == "degraded"
    with pytest.raises(RequestError, match="cannot be written") as info:
        predict_one(rt, 9)
    assert info.value.status == 503
    broken["on"] = False
    assert rt.log.drain()
    assert rt.readiness()[0] is True
    acknowledged.append(predict_one(rt, 10).request_id)
    rt.close()
    assert logged(home)["request_id"].to_list() == acknowledged


def test_predict_token_when_required(home: LifecycleHome, store: FakeStore) -> None:
    config = load_yaml(home)
    config["serving"]["predict_auth"] = "required"
    write_yaml(home, config)
    rt = runtime(home, store, predict_token="p")
    rt.check_predict_auth("Bearer p")
    for header, status in ((None, 401), ("Bearer nope", 403)):
        with pytest.raises(RequestError) as info:
            rt.check_predict_auth(header)
        assert info.value.status == status
    rt.close()


def load_yaml(home: LifecycleHome) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(home.config_path.read_text())


def write_yaml(home: LifecycleHome, config: dict[str, Any]) -> None:
    import yaml

    home.config_path.write_text(yaml.safe_dump(config))


def test_an_event_after_a_clock_move_is_accepted_before_the_next_tick(
    home: LifecycleHome, store: FakeStore
) -> None:
    """The demo sets the next simulated day and sends that day's traffic at once."""
    rt = ServingRuntime(home, writer_id="unit", loader=store, check_interval_s=3600)
    tomorrow = NOON + dt.timedelta(days=1)
    with pytest.raises(RequestError, match="later than the latest accepted"):
        predict_one(rt, event_time=tomorrow + dt.timedelta(days=1))
    set_simulated_today(home, DAY + dt.timedelta(days=1))
    assert predict_one(rt, event_time=tomorrow).request_id  # no tick in between
    rt.close()


def packed_model(tmp_path: Path, version: str = "v4") -> tuple[Path, str]:
    """A model directory as the registry exports it: the artifact plus the config it was
    registered under; and the digest recorded at registration."""
    from lifecycle_assets.config import PACKED_CONFIG
    from lifecycle_assets.training.artifact import artifact_digest, save_artifact

    directory = tmp_path / "packed"
    save_artifact(make_artifact(version, seed=4), directory)
    shutil.copyfile(example_config_path(), directory / PACKED_CONFIG)
    return directory, artifact_digest(directory)


def test_a_packed_model_serves_with_no_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFECYCLE_FEEDBACK_TOKEN", "t")
    directory, digest = packed_model(tmp_path)
    serving = tmp_path / "serving"
    rt = ServingRuntime.from_packed(directory, digest, serving)
    try:
        got = predict_one(rt, 1, event_time=dt.datetime.now(dt.UTC))
        assert got.model_version == "v4" and got.score is not None
        health = rt.health()
        assert (health.model_version, health.alias_version, health.ready) == ("v4", "v4", True)
        # nothing of a lifecycle home: no registry, no repo; the packed config is in force
        assert not (serving / "repo").exists()
        assert (serving / "lifecycle.yaml").read_text() == example_config_path().read_text()
    finally:
        rt.close()
    assert len(list((serving / "logs" / "predictions").rglob("*.jsonl"))) == 1


def test_a_packed_model_that_fails_its_checks_stops_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lifecycle_assets.config import PACKED_CONFIG
    from lifecycle_assets.serving.setup import ServingSetupError
    from lifecycle_assets.training.artifact import IntegrityError

    monkeypatch.setenv("LIFECYCLE_FEEDBACK_TOKEN", "t")
    directory, digest = packed_model(tmp_path)
    with pytest.raises(IntegrityError, match="does not match the registry's"):
        ServingRuntime.from_packed(directory, "0" * 64, tmp_path / "a")
    (directory / PACKED_CONFIG).unlink()
    with pytest.raises(ServingSetupError, match=r"has no lifecycle\.yaml"):
        ServingRuntime.from_packed(directory, digest, tmp_path / "b")


def test_bentomls_serving_process_imports_no_pytorch() -> None:
    """`bentoml serve` imports the service module in its serving process to run the start-up
    checks; only the workers import the runtime (PyTorch, the registry): seconds off every
    start, and the checks answer before any model code loads."""
    import subprocess
    import sys

    code = "import sys, bentos.service; print(sorted({'torch', 'lightgbm'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
