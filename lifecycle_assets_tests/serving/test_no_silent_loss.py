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
import socket
import time
from collections.abc import Iterator
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
from lifecycle_assets.serving.process import ServiceProcess
from lifecycle_assets.training.artifact import MANIFEST, WEIGHTS, sha256_file
from lifecycle_assets_tests.loadgen import in_child, logged_ids, poison_soak
from lifecycle_assets_tests.serving.conftest import DAY
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
    folder = home.models / NAME / version
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
        assert "v1" in ready.json()["reason"] and "integrity" in ready.json()["reason"]
        answer = client.post("/predict", json={"entity_id": "c", "features": FEATURES})
        assert answer.status_code == 503, answer.text
        assert "no verified model" in answer.json()["error"]
        health = client.get("/healthz").json()
        assert health["status"] == "degraded"
        # public answers name the version and the kind of failure, never a path of the machine
        for text in (ready.text, answer.text, json.dumps(health)):
            assert str(home.root) not in text and "/" + "bentoml" not in text, text
        # the cause, with its paths, only for a caller holding the feedback token
        detailed = client.get("/healthz", headers=service.auth_headers).json()
        assert "digest" in detailed["error"] and str(home.root) in detailed["error"]
    assert logged_ids(home) == []  # nothing acknowledged, nothing logged unscored


def promote_and_expect_refusal(home: LifecycleHome, client: httpx.Client, version: str) -> None:
    """Point production at `version`; the service must refuse it and keep v1 serving."""
    Registry(home, NAME).move_alias(
        "production", version, actor="test", reason="tampered", when=dt.datetime.now(dt.UTC)
    )
    health: dict[str, Any] = {}
    deadline = time.monotonic() + 30  # the follower notices within its check interval
    while time.monotonic() < deadline:
        client.post("/predict", json={"entity_id": "c", "features": FEATURES})
        health = client.get("/healthz").json()
        if health["alias_version"] == version and health["error"]:
            break
        time.sleep(0.1)
    assert health["model_version"] == "v1" and "integrity" in health["error"], health
    answer = client.post("/predict", json={"entity_id": "c", "features": FEATURES})
    assert answer.status_code == 200 and answer.json()["model_version"] == "v1"


def test_a_tampered_new_version_is_refused_and_the_old_one_keeps_serving(
    template: LifecycleHome, tmp_path: Path
) -> None:
    home = make_home(template, tmp_path / "home")
    in_child(home, "register_untrained_model", str(home.root), "v2", "no")
    tamper(home, "v2")
    with ServiceProcess(home) as service:
        client = httpx.Client(base_url=service.url, timeout=30)
        promote_and_expect_refusal(home, client, "v2")
        assert client.get("/readyz").status_code == 200  # a verified model still serves


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
        # reading scores is under the same token as making them
        assert client.get("/lookup/item-1").status_code == 401
        lookup = client.post("/lookup", json={"scheduled_payment_id": "item-1"})
        assert lookup.status_code == 401
        authorised = client.get(
            "/lookup/item-1", headers={"Authorization": "Bearer predict-secret"}
        )
        assert authorised.status_code == 404  # past the token: no such item


def test_a_consistent_tamper_of_every_file_never_serves(
    template: LifecycleHome, tmp_path: Path
) -> None:
    """Weights, manifest and the registry's `versions.json` digest rewritten to agree with
    each other: the registration commit in git does not, so the version is refused and the
    previous one keeps serving."""
    home = make_home(template, tmp_path / "home")
    in_child(home, "register_untrained_model", str(home.root), "v2", "no")
    tamper(home, "v2")
    folder = home.models / NAME / "v2"
    from lifecycle_assets.training.artifact import artifact_digest

    new_digest = artifact_digest(folder)
    registry = Registry(home, NAME)
    versions = registry.versions()
    manifest = json.loads((folder / MANIFEST).read_text())
    versions["v2"].update(artifact_sha256=new_digest, weights_sha256=manifest["weights_sha256"])
    (registry.dir / "versions.json").write_text(json.dumps(versions))
    with ServiceProcess(home) as service:
        client = httpx.Client(base_url=service.url, timeout=30)
        promote_and_expect_refusal(home, client, "v2")
        detailed = client.get("/healthz", headers=service.auth_headers).json()
        assert "history" in detailed["error"], detailed


def test_labels_are_filed_by_arrival_and_implausible_client_times_refused(
    template: LifecycleHome, tmp_path: Path
) -> None:
    home = make_home(template, tmp_path / "home")
    with ServiceProcess(home) as service:
        client = httpx.Client(base_url=service.url, timeout=30)
        rid = client.post("/predict", json={"entity_id": "c", "features": FEATURES}).json()[
            "request_id"
        ]
        for when in ("1900-01-01T00:00:00Z", "2099-01-01T00:00:00Z", 1_780_000_000):
            body = {"request_id": rid, "label": 1, "observed_time": when}
            answer = client.post("/feedback", json=body, headers=service.auth_headers)
            assert answer.status_code == 400 and "observed_time" in answer.text, answer.text
        first = client.post(
            "/feedback", json={"request_id": rid, "label": 1}, headers=service.auth_headers
        )
        second = client.post(
            "/feedback", json={"request_id": rid, "label": 0}, headers=service.auth_headers
        )
        assert first.json()["count"] == 1 and second.json()["conflicts"] == 1
    days = sorted(p.name for p in (home.logs / "ground_truth").iterdir())
    assert days == [f"date={DAY}"]  # the loop's (simulated) day of arrival


def _half_sent(port: int, declared: int, sent: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode()
        + sent
    )
    return sock


def test_half_sent_bodies_are_answered_408_and_closed(
    template: LifecycleHome, tmp_path: Path
) -> None:
    home = make_home(template, tmp_path / "home", body_timeout_s=1.0)
    with ServiceProcess(home) as service:
        port = int(service.url.rsplit(":", 1)[1])
        before = worker_fds(service)
        socks = [_half_sent(port, 200, b'{"entity_id": "c", ') for _ in range(100)]
        started = time.monotonic()
        answers = []
        for sock in socks:
            data = b""
            while chunk := sock.recv(4096):  # until the server closes the connection
                data += chunk
            answers.append(data)
            sock.close()
        waited = time.monotonic() - started
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[0][:200]
        assert b'"error"' in answers[0]
        assert waited < 20, waited  # bounded by the timeout, not held open
        time.sleep(0.5)
        assert worker_fds(service) - before < 20
        ok = httpx.post(f"{service.url}/predict", json={"entity_id": "c", "features": FEATURES})
        assert ok.status_code == 200


def test_smaller_edges(template: LifecycleHome, tmp_path: Path) -> None:
    home = make_home(template, tmp_path / "home")
    with ServiceProcess(home) as service:
        client = httpx.Client(base_url=service.url, timeout=30)
        body = {"request_id": "edge-1", "entity_id": "c", "features": FEATURES}
        assert client.post("/predict", json=body).status_code == 200
        again = client.post("/predict", json=body)
        assert again.status_code == 409 and "already answered" in again.json()["error"]
        as_number = {"entity_id": "c", "event_time": 1_780_000_000, "features": FEATURES}
        assert client.post("/predict", json=as_number).status_code == 400
        features = json.dumps({**FEATURES, "country": "PLACEHOLDER"})
        surrogate = '{"entity_id": "c", "features": ' + features + "}"
        surrogate = surrogate.replace("PLACEHOLDER", "\\ud800")
        answer = client.post(
            "/predict", content=surrogate, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 400 and "surrogate" in answer.json()["error"], answer.text
        two = [
            ("authorization", "Bearer a"),
            ("authorization", service.auth_headers["Authorization"]),
        ]
        answer = client.post(
            "/feedback", json={"request_id": "edge-1", "label": 1}, headers=httpx.Headers(two)
        )
        assert answer.status_code == 400 and "Authorization" in answer.json()["error"]
    assert sorted(logged_ids(home)) == ["edge-1"]  # the repeat was not logged twice


# --- refusals, on one shared service ---------------------------------------------------------


@pytest.fixture(scope="module")
def refusing(
    template: LifecycleHome, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One service for the tests that send it only requests it refuses (4xx): they change
    nothing that it serves, logs or files, so they share it (checked once it has stopped)."""
    home = make_home(template, tmp_path_factory.mktemp("refusing") / "home")
    with ServiceProcess(home) as service:
        yield service
    assert logged_ids(home) == []
    assert not (home.logs / "ground_truth").exists() or not any(
        (home.logs / "ground_truth").iterdir()
    )


def test_one_error_shape_on_every_route(refusing: ServiceProcess) -> None:
    service = refusing
    with httpx.Client(base_url=service.url, timeout=30) as client:
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


def test_no_redirects_and_one_error_shape_for_other_methods_and_paths(
    refusing: ServiceProcess,
) -> None:
    with httpx.Client(base_url=refusing.url, timeout=30, follow_redirects=False) as client:
        body = {"entity_id": "c", "features": FEATURES}
        for response in (
            client.post("/predict/", json=body, headers={"host": "evil.example"}),
            client.post("/feedback/", json={"request_id": "r", "label": 1}),
            client.get("/predict"),
            client.put("/feedback", json={}),
        ):
            assert response.status_code in (404, 405), (response.status_code, response.text)
            assert "location" not in response.headers
            assert isinstance(response.json()["error"], str), response.text
        assert client.get("/predict").headers.get("allow")
