"""No request may silently stop the logging, approve by accident or exhaust the service, and a
tampered model never serves — through a real `bentoml serve`.

The property-based test generates requests over the schema's numeric extremes, event times
and strings, and asserts for every one: 2xx or 4xx, never 5xx; every 200 is in the log after
SIGTERM, exactly once; the service stays ready. The mixed soak sends poison (huge numbers,
implausible dates, 1,000 distinct event days) inside valid traffic and reconciles the log.
`benchmarks/soak.py --poison` is the full-size run."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.records import read_ground_truth, read_log_quarantine
from lifecycle_assets.registry.registry import Registry
from lifecycle_assets.serving.loadgen import in_child, logged_ids, poison_soak
from lifecycle_assets.serving.process import ServiceProcess
from lifecycle_assets.training.artifact import MANIFEST, WEIGHTS, sha256_file
from lifecycle_assets_tests.serving.test_reliability import make_home

pytestmark = pytest.mark.slow

NAME = "card-fraud"
NUMERIC = ("amount", "merchant_risk", "hour", "card_age_days", "txn_count_24h")
CATEGORICAL = ("merchant_category", "country", "channel")
EXAMPLES = 250


# --- generated requests ----------------------------------------------------------------------

EXTREMES = st.sampled_from(
    [0, -0.0, 5e-324, 1e-300, 0.5, 1, 23, 24, 25, -1, 1e15, 1e38, 3.4e38, 3.5e38, 1e39, 1e300,
     -1e300, 1.7976931348623157e308, 2**53 + 1, 10**30, -(10**30), 10**400]
)  # fmt: skip
NUMBER = st.one_of(
    EXTREMES, st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**20), 10**20)
)
ODD = st.one_of(st.none(), st.booleans(), st.text(max_size=20), st.lists(st.integers(), max_size=2))
STRING = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["grocery", "US", "pos", "", "abc\n", "../../etc/passwd", "x" * 300, "\x00"]),
)
TIME = st.one_of(
    st.none(),
    st.datetimes(
        min_value=dt.datetime(1, 1, 2),
        max_value=dt.datetime(9999, 12, 30),
        timezones=st.just(dt.UTC),
    ).map(lambda t: t.isoformat()),
    st.datetimes(min_value=dt.datetime(2025, 7, 1), max_value=dt.datetime(2026, 6, 6)).map(
        lambda t: t.isoformat()  # naive: refused
    ),
    st.sampled_from(["2026-06-05T10:00:00Z", "2026-06-05T10:00:00+14:00", "yesterday", ""]),
)
REQUEST_ID = st.one_of(
    st.none(), st.from_regex(r"\Ahyp-[a-z0-9]{1,12}\Z"), st.sampled_from(["abc\n", "-x", "a b"])
)


@st.composite
def predict_requests(draw: Any) -> dict[str, Any]:
    features: dict[str, Any] = {
        n: draw(st.one_of(NUMBER, NUMBER, NUMBER, ODD)) for n in NUMERIC
    }  # mostly numbers
    features |= {c: draw(st.one_of(STRING, STRING, NUMBER, ODD)) for c in CATEGORICAL}
    if draw(st.integers(0, 9)) == 0:
        features.pop(draw(st.sampled_from(NUMERIC + CATEGORICAL)))
    if draw(st.integers(0, 9)) == 0:
        features[draw(st.text(max_size=10))] = 1
    body: dict[str, Any] = {"entity_id": draw(STRING), "features": features}
    for key, strategy in (("request_id", REQUEST_ID), ("event_time", TIME)):
        value = draw(strategy)
        if value is not None:
            body[key] = value
    return body


@st.composite
def labels(draw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": draw(st.one_of(st.from_regex(r"\Alab-[a-z0-9]{1,8}\Z"), REQUEST_ID)),
        "label": draw(st.one_of(st.sampled_from([0, 1, 1.0, 0.5]), NUMBER, ODD)),
    }
    when = draw(TIME)
    if when is not None:
        body["observed_time"] = when
    return body


def test_generated_requests_never_5xx_and_every_200_is_logged_once(
    template: LifecycleHome, tmp_path: Path
) -> None:
    home = make_home(template, tmp_path / "home")
    service = ServiceProcess(home).start()
    acked: list[str] = []
    labelled: list[str] = []
    failures: list[str] = []
    statuses: dict[int, int] = {}
    try:
        client = httpx.Client(base_url=service.url, timeout=30)

        def post(path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
            # strict JSON: integers beyond float range stay integers in the text
            raw = json.dumps(body, allow_nan=False)
            response = client.post(
                path, content=raw, headers={"content-type": "application/json", **headers}
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500 or not response.text.startswith("{"):
                failures.append(
                    f"{path} {raw[:300]} → {response.status_code} {response.text[:300]}"
                )
            return response

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(request=predict_requests(), label=labels())
        def call(request: dict[str, Any], label: dict[str, Any]) -> None:
            response = post("/predict", request)
            if response.status_code == 200:
                body = response.json()
                acked.append(body["request_id"])
                # a 200 is a finite score and a decision, never an approval by fall-through
                assert body["score"] is not None and 0.0 <= body["score"] <= 1.0, body
                assert body["decision"] in ("approve", "review", "decline"), body
            answer = post("/feedback", label, **service.auth_headers)
            if answer.status_code == 200:
                labelled.append(label["request_id"])

        call()
        assert not failures, "\n".join(failures[:10])
        print(statuses)
        assert statuses.get(200, 0) > 20 and sum(v for k, v in statuses.items() if k >= 400) > 20
        assert client.get("/readyz").status_code == 200
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["log_backlog"] == 0, health
    finally:
        service.stop()
    logged = logged_ids(home)  # raises if the pipeline's reader would quarantine a line
    assert sorted(logged) == sorted(acked)  # every 200 logged, nothing twice, nothing else
    written = []
    for folder in (home.logs / "ground_truth").glob("date=*"):
        day = dt.date.fromisoformat(folder.name.removeprefix("date="))
        truth, bad = read_ground_truth(home.logs, day)
        assert bad.is_empty(), bad
        written += truth["request_id"].to_list()
    assert sorted(set(written)) == sorted(set(labelled))


# --- mixed soak ------------------------------------------------------------------------------


def worker_fds(service: ServiceProcess) -> int:
    assert service.proc is not None
    procs = psutil.Process(service.proc.pid).children(recursive=True)
    return max(p.num_fds() for p in procs)


def test_poison_mixed_into_valid_traffic_is_refused_and_nothing_valid_is_lost(
    template: LifecycleHome, tmp_path: Path
) -> None:
    home = make_home(template, tmp_path / "home")
    service = ServiceProcess(home).start()
    try:
        before = worker_fds(service)
        report = poison_soak(service, seconds=6, connections=4, distinct_days=1000)
        after = worker_fds(service)
        ready = httpx.get(f"{service.url}/readyz", timeout=10).status_code
    finally:
        service.stop()
    ids = report.pop("acknowledged_ids")
    print(report, {"fds_before": before, "fds_after": after})
    assert ready == 200
    assert report["valid_errors"] == {}  # every valid request answered 200
    assert report["poison_sent"] > 100
    assert report["poison_answers"] == {"400": report["poison_sent"]}  # each refused, 4xx
    assert report["days_accepted"] > 300  # the plausible ones of the 1,000 days were logged
    # one open segment per (stream, day) at most `serving.max_open_segments` (16) at a time
    assert after - before <= 20
    logged = logged_ids(home, ("soak-", "day-"))
    assert len(logged) == len(set(logged)), "nothing logged twice"
    assert set(logged) == set(ids)
    assert read_log_quarantine(home.logs, dt.datetime.now(dt.UTC).date()) == []


# --- integrity -------------------------------------------------------------------------------


def tamper(home: LifecycleHome, version: str) -> None:
    """Flip the weights, recompute the manifest's weights hash and set thresholds that would
    approve everything: self-consistent, but not what the registry recorded."""
    folder = home.bentoml_home / "models" / NAME / version
    weights = folder / WEIGHTS
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["weights_sha256"] = sha256_file(weights)
    manifest["thresholds"] = {"review": 0.999, "decline": 1.0}
    (folder / MANIFEST).write_text(json.dumps(manifest))


FEATURES = {
    "amount": 40.0,
    "merchant_risk": 0.2,
    "hour": 10,
    "card_age_days": 300,
    "txn_count_24h": 2,
    "merchant_category": "grocery",
    "country": "US",
    "channel": "pos",
}


def test_a_tampered_model_never_serves_and_the_service_is_not_ready(
    template: LifecycleHome, tmp_path: Path
) -> None:
    home = make_home(template, tmp_path / "home")
    tamper(home, "v1")
    with ServiceProcess(home) as service:
        client = httpx.Client(base_url=service.url, timeout=30)
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert "v1" in ready.json()["reason"] and "digest" in ready.json()["reason"]
        answer = client.post("/predict", json={"entity_id": "c", "features": FEATURES})
        assert answer.status_code == 503, answer.text
        assert "no verified model" in answer.json()["error"]
        assert client.get("/healthz").json()["status"] == "degraded"
    assert logged_ids(home) == []  # nothing acknowledged, nothing logged unscored


def test_a_tampered_new_version_is_refused_and_the_old_one_keeps_serving(
    template: LifecycleHome, tmp_path: Path
) -> None:
    home = make_home(template, tmp_path / "home")
    in_child(home, "register_untrained_model", str(home.root), "v2", "no")
    tamper(home, "v2")
    with ServiceProcess(home) as service:
        client = httpx.Client(base_url=service.url, timeout=30)
        Registry(home, NAME).move_alias(
            "production", "v2", actor="test", reason="tampered", when=dt.datetime.now(dt.UTC)
        )
        health: dict[str, Any] = {}
        deadline = time.monotonic() + 30  # the follower notices within its check interval
        while time.monotonic() < deadline:
            client.post("/predict", json={"entity_id": "c", "features": FEATURES})
            health = client.get("/healthz").json()
            if health["alias_version"] == "v2" and health["error"]:
                break
            time.sleep(0.1)
        assert health["model_version"] == "v1" and "digest" in health["error"], health
        answer = client.post("/predict", json={"entity_id": "c", "features": FEATURES})
        assert answer.status_code == 200 and answer.json()["model_version"] == "v1"
        assert client.get("/readyz").status_code == 200  # a verified model still serves


def test_one_error_shape_on_every_route(template: LifecycleHome, tmp_path: Path) -> None:
    home = make_home(template, tmp_path / "home")
    with ServiceProcess(home) as service:
        client = httpx.Client(base_url=service.url, timeout=30)
        cases = [
            client.post("/feedback", json={"labels": [{"request_id": "r", "label": "x"}]},
                        headers=service.auth_headers),
            client.post("/feedback", json={"request_id": "r"}, headers=service.auth_headers),
            client.post("/lookup", json={"scheduled_payment_id": "abc\n"}),
            client.post("/lookup", json={"scheduled_payment_id": "missing-1"}),
            client.get("/lookup/abc%0A"),
            client.post("/predict", json={"entity_id": "c", "features": {**FEATURES, "country": 7}}),
            client.post("/predict", json={"entity_id": "c",
                                          "features": {f"f{i}": 1 for i in range(200_000)}}),
        ]  # fmt: skip
        for response in cases:
            assert 400 <= response.status_code < 500, response.text[:300]
            body = response.json()
            assert isinstance(body, dict) and isinstance(body["error"], str), body
            assert len(response.content) < 4096, len(response.content)
            assert "Request" not in response.text  # no pydantic class names
        assert cases[4].status_code == 400  # the trailing newline is not part of an id
        assert cases[3].status_code == 404
        assert cases[6].status_code == 413  # one request's body is capped at 64 KiB
        assert cases[5].json()["error"] == "feature 'country' must be a string, got 7"


def test_predict_token_when_required(template: LifecycleHome, tmp_path: Path) -> None:
    home = make_home(template, tmp_path / "home")
    config = home.config_path.read_text().replace("predict_auth: none", "predict_auth: required")
    home.config_path.write_text(config)
    token = {"LIFECYCLE_PREDICT_TOKEN": "predict-secret"}
    with ServiceProcess(home, extra_env=token) as service:
        client = httpx.Client(base_url=service.url, timeout=30)
        body = {"entity_id": "c", "features": FEATURES}
        assert client.post("/predict", json=body).status_code == 401
        wrong = client.post("/predict", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        ok = client.post("/predict", json=body, headers={"Authorization": "Bearer predict-secret"})
        assert ok.status_code == 200, ok.text
