"""The request contract without a server: payload models, feature validation against the
config, request ids, log records and the feedback token."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lifecycle_assets.config import load_config
from lifecycle_assets.records import LogWriter, read_ground_truth, read_predictions
from lifecycle_assets.serving.requests import (
    MAX_BATCH,
    FeedbackRequest,
    PredictBatchRequest,
    PredictRequest,
    RequestError,
    RequestValidator,
    TimeWindow,
    check_bearer,
    ground_truth_records,
    is_valid_id,
    prediction_records,
    prepare,
    validation_error_body,
)

PROBLEM = load_config().problem
T0 = dt.datetime(2026, 6, 5, 12, tzinfo=dt.UTC)


def features(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "amount": 12.5,
        "merchant_risk": 0.2,
        "hour": 13,
        "card_age_days": 400,
        "txn_count_24h": 3,
        "merchant_category": "grocery",
        "country": "US",
        "channel": "web",
    }
    row.update(overrides)
    return {k: v for k, v in row.items() if v is not ...}


@pytest.fixture
def validator() -> RequestValidator:
    return RequestValidator(PROBLEM)


def test_the_features_schema_states_the_config_and_its_example_is_accepted(
    validator: RequestValidator,
) -> None:
    schema = validator.features_schema()
    assert schema["required"] == [*PROBLEM.numeric_features, *PROBLEM.categorical_features]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["hour"] == {"type": "number", "minimum": 0.0, "maximum": 23.0}
    assert schema["properties"]["amount"] == {"type": "number"}  # no declared domain
    assert schema["properties"]["country"]["type"] == "string"
    example = validator.features_example()
    assert validator.features(example) == example


def test_valid_features_pass_as_received(validator: RequestValidator) -> None:
    row = features(hour=7, country="never-seen-before")  # unknown category: the OOV bucket
    assert validator.features(row) == row


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"amount": ...}, "missing features 'amount'"),
        ({"colour": "red"}, "unknown features 'colour'"),
        ({"amount": ..., "colour": "red"}, "missing features 'amount'; unknown features"),
        ({"amount": float("nan")}, "'amount' must be a finite number, got nan"),
        ({"amount": float("inf")}, "'amount' must be a finite number, got inf"),
        ({"amount": -float("inf")}, "got -inf"),
        ({"amount": True}, "got a boolean"),
        ({"amount": "12.5"}, "got a string"),
        ({"amount": None}, "got null"),
        ({"amount": [1.0]}, "got an array"),
        ({"amount": 10**400}, "out of float range"),
        ({"country": 1}, "'country' must be a string, got 1$"),
        ({"country": 7.5}, "'country' must be a string, got 7.5$"),
        # finite, but far outside anything a model can take: refused by the range
        ({"merchant_risk": 1e38}, r"'merchant_risk' must be within \[0, 1\], got 1e\+38"),
        ({"hour": 25}, r"'hour' must be within \[0, 23\], got 25"),
        ({"hour": -1}, "'hour' must be within"),
        # no range configured: a float32 overflow is still refused
        ({"amount": 1e300}, r"'amount' is beyond the model's float32 range, got 1e\+300"),
        ({"txn_count_24h": 10**39}, "'txn_count_24h' is beyond the model's float32 range"),
        ({"country": None}, "'country' must be a string, got null"),
        ({"country": "x" * 1000}, "longer than"),
    ],
)
def test_bad_features_are_refused_with_a_reason(
    validator: RequestValidator, overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(RequestError, match=reason.replace("(", r"\(")) as info:
        validator.features(features(**overrides))
    assert info.value.status == 400


def test_training_ranges_flag_and_configured_domains_refuse(validator: RequestValidator) -> None:
    ranges = validator.model_ranges({"amount": [0.0, 500.0], "hour": [5.0, 6.0]})
    assert ranges == {"amount": (0.0, 500.0)}  # hour has a configured domain: that judges it
    assert validator.beyond(features(amount=499.0), ranges) == ()
    # beyond what training saw: served (no error) and flagged, never refused
    drifted = validator.features(features(amount=501.0))
    assert validator.beyond(drifted, ranges) == ("amount",)
    with pytest.raises(RequestError, match=r"'hour' must be within \[0, 23\], got 25"):
        validator.features(features(hour=25))
    request = PredictRequest(entity_id="c", features=features(amount=501.0))
    assert prepare([request], validator, T0, ranges=ranges)[0].out_of_range == ("amount",)


def test_error_messages_stay_short_for_huge_requests(validator: RequestValidator) -> None:
    row = features(**{f"f{i}": 1 for i in range(20)})
    with pytest.raises(RequestError) as info:
        validator.features(row)
    assert str(info.value) == "unknown features 'f0', 'f1', 'f2', 'f3', 'f4' and 15 more"
    # far more keys than features: refused by the count, without naming them all
    with pytest.raises(RequestError) as info:
        validator.features(features(**{f"f{i}": 1 for i in range(100_000)}))
    message = str(info.value)
    assert message.startswith("features has 100008 entries; the config has 8: ")
    assert len(message) < 300


def test_event_times_outside_the_pipelines_window_are_refused(
    validator: RequestValidator,
) -> None:
    window = TimeWindow(oldest=T0 - dt.timedelta(days=365), latest=T0 + dt.timedelta(hours=1))
    ok = PredictRequest(entity_id="c", features=features(), event_time=T0)
    assert prepare([ok], validator, T0, window=window)[0].event_time == T0
    for when, words in (
        (dt.datetime(1000, 1, 1, tzinfo=dt.UTC), "older than the oldest accepted"),
        (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), "older than the oldest accepted"),
        (dt.datetime(9999, 1, 1, tzinfo=dt.UTC), "later than the latest accepted"),
    ):
        req = PredictRequest(entity_id="c", features=features(), event_time=when)
        with pytest.raises(RequestError, match=words) as info:
            prepare([ok, req], validator, T0, window=window)
        assert info.value.status == 400
        assert str(info.value).startswith("requests[1]: event_time")


@pytest.mark.parametrize(
    ("text", "valid"),
    [("abc", True), ("a.b:c-1_2", True), ("abc\n", False), ("", False), ("-a", False),
     ("a/b", False), ("x" * 129, False)],
)  # fmt: skip
def test_ids_must_match_whole(text: str, valid: bool) -> None:
    assert is_valid_id(text) is valid
    payload = {"entity_id": "c", "features": features(), "request_id": text}
    if valid:
        PredictRequest.model_validate(payload)
    else:
        with pytest.raises(ValidationError):
            PredictRequest.model_validate(payload)


def test_schema_errors_have_one_bounded_shape() -> None:
    with pytest.raises(ValidationError) as info:
        FeedbackRequest.model_validate({"labels": [{"request_id": "r", "label": "x"}] * 50})
    body = validation_error_body(info.value)
    assert set(body) == {"error", "detail"}
    assert isinstance(body["error"], str) and body["error"].startswith("labels.0.label: ")
    assert len(body["detail"]) == 10
    assert all(set(d) == {"field", "message"} for d in body["detail"])
    assert "FeedbackRequest" not in json.dumps(body)


@pytest.mark.parametrize(
    "payload",
    [
        {"features": features()},  # no entity_id
        {"entity_id": "", "features": features()},
        {"entity_id": "c1"},  # no features
        {"entity_id": "c1", "features": features(), "extra": 1},
        {"entity_id": "c1", "features": features(), "event_time": "2026-06-05T10:00:00"},
        {"entity_id": "c1", "features": features(), "event_time": "yesterday"},
        {"entity_id": "c1", "features": features(), "request_id": "../../etc/passwd"},
        {"entity_id": "c1", "features": features(), "request_id": "x" * 200},
        {"entity_id": "c1", "features": [1, 2]},
    ],
)
def test_malformed_predict_payloads_fail_validation(payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PredictRequest.model_validate_json(json.dumps(payload))


def test_predict_payload_parses_times_with_zone() -> None:
    req = PredictRequest.model_validate_json(
        json.dumps(
            {
                "request_id": "r-1",
                "entity_id": "c1",
                "event_time": "2026-06-05T10:00:00+02:00",
                "features": features(),
            }
        )
    )
    assert req.event_time is not None
    assert req.event_time.astimezone(dt.UTC) == dt.datetime(2026, 6, 5, 8, tzinfo=dt.UTC)


def test_batch_size_is_bounded() -> None:
    one = {"entity_id": "c1", "features": features()}
    with pytest.raises(ValidationError):
        PredictBatchRequest.model_validate({"requests": []})
    with pytest.raises(ValidationError):
        PredictBatchRequest.model_validate({"requests": [one] * (MAX_BATCH + 1)})
    assert len(PredictBatchRequest.model_validate({"requests": [one] * MAX_BATCH}).requests) == (
        MAX_BATCH
    )


def test_prepare_gives_ids_and_default_times(validator: RequestValidator) -> None:
    explicit = T0 - dt.timedelta(hours=3)
    reqs = [
        PredictRequest(entity_id="c1", features=features()),
        PredictRequest(request_id="mine", entity_id="c2", event_time=explicit, features=features()),
    ]
    valid = prepare(reqs, validator, T0)
    assert len(valid[0].request_id) == 32 and int(valid[0].request_id, 16) >= 0
    assert valid[0].event_time == T0
    assert (valid[1].request_id, valid[1].event_time) == ("mine", explicit)
    assert prepare(reqs[:1], validator, T0)[0].request_id != valid[0].request_id


def test_prepare_refuses_duplicate_ids_and_names_the_item(validator: RequestValidator) -> None:
    dup = [PredictRequest(request_id="r", entity_id="c", features=features())] * 2
    with pytest.raises(RequestError, match=r"requests\[1\]: duplicate request_id 'r'"):
        prepare(dup, validator, T0)
    bad = [
        PredictRequest(entity_id="c", features=features()),
        PredictRequest(entity_id="c", features=features(hour="noon")),
    ]
    with pytest.raises(RequestError, match=r"requests\[1\]: feature 'hour'"):
        prepare(bad, validator, T0)


def test_times_without_a_utc_form_are_refused(validator: RequestValidator) -> None:
    edge = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14)))
    with pytest.raises(RequestError, match=r"event_time .* is out of range"):
        prepare(
            [PredictRequest(entity_id="c", event_time=edge, features=features())], validator, T0
        )
    labels = FeedbackRequest(request_id="r", label=1, observed_time=edge).items()
    with pytest.raises(RequestError, match=r"observed_time .* is out of range"):
        ground_truth_records(labels, validator, T0)


def test_event_times_are_stored_in_utc(validator: RequestValidator) -> None:
    local = dt.datetime(2026, 6, 5, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    (valid,) = prepare(
        [PredictRequest(entity_id="c", event_time=local, features=features())], validator, T0
    )
    assert valid.event_time == local and valid.event_time.tzinfo == dt.UTC
    assert valid.event_time.date() == dt.date(2026, 6, 4)  # the log's day is the UTC day


def test_records_round_trip_through_the_log(tmp_path: Path, validator: RequestValidator) -> None:
    reqs = [
        PredictRequest(request_id=f"r{i}", entity_id=f"c{i}", features=features(hour=i))
        for i in range(3)
    ]
    valid = prepare(reqs, validator, T0)
    writer = LogWriter(tmp_path, writer_id="unit")
    writer.write_predictions(prediction_records(valid[:1], None, None, None))  # cold start
    writer.write_predictions(
        prediction_records(valid[1:], "v1", [0.25, 0.75], ["approve", "decline"])
    )
    labels = FeedbackRequest.model_validate({"labels": [{"request_id": "r1", "label": 1}]})
    writer.write_ground_truth(ground_truth_records(labels.items(), validator, T0))
    writer.close()

    rows, quarantine = read_predictions(
        tmp_path, T0.date(), PROBLEM.numeric_features, PROBLEM.categorical_features
    )
    assert quarantine.is_empty()
    assert rows["request_id"].to_list() == ["r0", "r1", "r2"]
    assert rows["model_version"].to_list() == [None, "v1", "v1"]
    assert rows["score"].to_list() == [None, 0.25, 0.75]
    assert rows["decision"].to_list() == [None, "approve", "decline"]
    assert rows["hour"].to_list() == [0.0, 1.0, 2.0]
    truth, bad = read_ground_truth(tmp_path, T0.date())
    assert bad.is_empty()
    assert truth.rows() == [("r1", 1.0, T0, None)]


def test_feedback_forms() -> None:
    one = FeedbackRequest.model_validate({"request_id": "r1", "label": 0})
    assert [(x.request_id, x.label, x.observed_time) for x in one.items()] == [("r1", 0.0, None)]
    many = FeedbackRequest.model_validate(
        {
            "labels": [
                {"request_id": "r1", "label": 1, "observed_time": "2026-06-06T01:00:00Z"},
                {"request_id": "r2", "label": 0.0},
            ]
        }
    )
    assert [x.request_id for x in many.items()] == ["r1", "r2"]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"request_id": "r1"},
        {"label": 1},
        {"request_id": "r1", "label": True},
        {"request_id": "r1", "label": "1"},
        {"request_id": "r1", "label": None},
        {"request_id": "r1", "label": 1, "observed_time": "2026-06-06T01:00:00"},
        {"request_id": "r1", "label": 1, "labels": [{"request_id": "r2", "label": 0}]},
        {"labels": []},
        {"labels": [{"request_id": "r2"}]},
        {"request_id": "r1", "label": 1, "colour": "red"},
    ],
)
def test_malformed_feedback_fails_validation(payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FeedbackRequest.model_validate_json(json.dumps(payload))


def test_feedback_refuses_non_finite_labels() -> None:
    with pytest.raises(ValidationError):
        FeedbackRequest.model_validate_json('{"request_id": "r1", "label": NaN}')


def test_binary_labels_are_zero_or_one(validator: RequestValidator) -> None:
    items = FeedbackRequest.model_validate(
        {"labels": [{"request_id": "a", "label": 1}, {"request_id": "b", "label": 0.5}]}
    ).items()
    with pytest.raises(RequestError, match=r"labels\[1\]: label must be 0 or 1"):
        ground_truth_records(items, validator, T0)
    records = ground_truth_records(items[:1], validator, T0)
    assert (records[0].label, records[0].observed_time) == (1.0, T0)


def test_regression_labels_are_any_finite_number() -> None:
    problem = PROBLEM.model_copy(update={"task": "regression"})
    items = FeedbackRequest.model_validate({"request_id": "a", "label": 12.75}).items()
    records = ground_truth_records(items, RequestValidator(problem), T0)
    assert math.isclose(records[0].label, 12.75)


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("", 401), ("Basic abc", 401), ("Bearer", 401), ("Bearer nope", 403)],
)
def test_feedback_token_is_required_when_configured(header: str | None, status: int) -> None:
    with pytest.raises(RequestError) as info:
        check_bearer(header, "s3cret")
    assert info.value.status == status


def test_feedback_token_accepted_or_not_configured() -> None:
    check_bearer("Bearer s3cret", "s3cret")
    check_bearer("bearer s3cret", "s3cret")
    check_bearer(None, None)
    check_bearer(None, "")
