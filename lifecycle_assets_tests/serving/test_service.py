"""The prediction service as users run it: a real `bentoml serve bentos.service:Lifecycle`
subprocess on a temp lifecycle home, started once for the module.

The tests run in file order against the one server: cold start first, then a model is
registered and promoted, then batch, feedback, the logs, and a graceful shutdown last.
Registration runs in a child process with the home's environment, as the loop's own processes
do; a Bento build exports the model to the home's BentoML store in a child process too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import yaml

from lifecycle_assets.config import example_config_path, load_config
from lifecycle_assets.home import LifecycleHome, project_root, set_simulated_today
from lifecycle_assets.records import read_ground_truth, read_predictions
from lifecycle_assets_tests.loadgen import in_child as loadgen_child

pytestmark = pytest.mark.slow

PROBLEM = load_config().problem
DAY = dt.date(2026, 6, 5)
NOON = dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC)
TOKEN = "test-feedback-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START_TIMEOUT_S = 90


def features(i: int = 0) -> dict[str, Any]:
    return {
        "amount": 5.0 + 7.5 * i,
        "merchant_risk": (i % 10) / 10,
        "hour": i % 24,
        "card_age_days": 30 * i,
        "txn_count_24h": i % 5,
        "merchant_category": ["grocery", "travel", "online"][i % 3],
        "country": ["US", "GB", "DE", "ZZ-unknown"][i % 4],
        "channel": ["web", "pos"][i % 2],
    }


PROBES = [features(i) for i in range(8)]


# --- child-process helpers (`python -c` with the home's environment) -----------------------


def register_model(home_root: str, version: str) -> None:
    """Train-free model: fit preprocessing on random rows, random weights; register, promote."""
    import numpy as np
    import torch

    from lifecycle_assets.registry.registry import Registry
    from lifecycle_assets.training.artifact import ModelArtifact, build_net, save_artifact
    from lifecycle_assets.training.features import Preprocessor

    home = LifecycleHome(Path(home_root))
    problem = home.config().problem
    rng = np.random.default_rng(7)
    n = 200
    frame = pl.DataFrame(
        {
            **{c: rng.normal(10, 5, size=n) for c in problem.numeric_features},
            "merchant_category": rng.choice(["grocery", "travel", "online"], n),
            "country": rng.choice(["US", "GB", "DE"], n),
            "channel": rng.choice(["web", "pos"], n),
        }
    )
    pre = Preprocessor.fit(frame, problem.numeric_features, problem.categorical_features)
    arch = {"embedding_dim": 4, "hidden_units": 16}
    torch.manual_seed(int(version[1:]))
    artifact = ModelArtifact(
        task="binary",
        preprocessor=pre,
        net=build_net(pre, arch),
        architecture=arch,
        thresholds={"review": 0.3, "decline": 0.7},
        version=version,
    )
    directory = home.root / "staging" / version
    save_artifact(artifact, directory)
    registry = Registry(home, problem.name)
    registry.register(directory, {"source": "test_service"})
    registry.move_alias("production", version, actor="test", reason="test", when=NOON)


def score_with_registry(home_root: str, version: str) -> None:
    """Print the batch scoring function's scores for PROBES, through `load_version`."""
    from lifecycle_assets.registry.registry import load_version

    home = LifecycleHome(Path(home_root))
    artifact = load_version(home, home.config().problem.name, version)
    scores = artifact.score_rows(PROBES)
    print(json.dumps({"scores": scores.tolist(), "decisions": artifact.decide(scores)}))


def register_and_score(home_root: str, version: str) -> None:
    """`register_model`, then `score_with_registry` from the registry's store on disk, in one
    process (PyTorch and the registry imported once)."""
    register_model(home_root, version)
    score_with_registry(home_root, version)


def point_at_missing_version(home_root: str, version: str) -> None:
    """Move production to a version that is registered but missing from the model store."""
    from lifecycle_assets.registry.registry import Registry, _write_json_atomic, registry_dir

    home = LifecycleHome(Path(home_root))
    registry = Registry(home, home.config().problem.name)
    versions = registry.versions()
    versions[version] = {"weights_sha256": "0" * 64}
    _write_json_atomic(registry_dir(home) / "versions.json", versions)
    registry.move_alias("production", version, actor="test", reason="test", when=NOON)


def in_child(home: LifecycleHome, func: str, *args: str) -> str:
    code = f"from {__name__} import {func}; {func}(*{list(args)!r})"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project_root(),
        env={**os.environ, **home.tool_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`bentoml serve` of `target` (the project's service on `home`, by default) in its own
    process group; `env` replaces the home's tool environment, `cwd` the project root."""

    def __init__(
        self,
        home: LifecycleHome,
        port: int,
        log: Path,
        target: str = "bentos.service:Lifecycle",
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.home = home
        self.target = target
        self.env = env
        self.cwd = cwd
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self.sent: list[str] = []  # request ids acknowledged with a 200
        self.proc: subprocess.Popen[bytes] | None = None
        self._port = port

    def start(self) -> None:
        env = self.env or {**os.environ, **self.home.tool_env(), "LIFECYCLE_FEEDBACK_TOKEN": TOKEN}
        command = [sys.executable, "-m", "bentoml", "serve", self.target]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [*command, "--host", "127.0.0.1", "--port", str(self._port)],
                cwd=self.cwd or project_root(),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as a whole
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"bentoml serve exited early:\n{self.tail()}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"bentoml serve did not answer /healthz in {START_TIMEOUT_S}s:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        self.client.close()
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        try:
            os.killpg(self.proc.pid, sig)
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            return None
        except ProcessLookupError:
            return self.proc.wait(10)

    def tail(self, n: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        resp = self.client.post("/predict", json=payload)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        self.sent.append(body["request_id"])
        return body

    def predict_batch(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        resp = self.client.post("/predict_batch", json={"requests": payloads})
        assert resp.status_code == 200, resp.text
        predictions = resp.json()["predictions"]
        self.sent.extend(p["request_id"] for p in predictions)
        return predictions


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serving") / "home"
    home = LifecycleHome(root)
    home.repo.mkdir(parents=True)
    shutil.copyfile(example_config_path(), home.config_path)
    set_simulated_today(home, DAY)  # default event times: noon of the simulated day
    srv = Server(home, free_port(), root.parent / "serve.log")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in home.tool_env().items():
            mp.setenv(key, value)
        try:
            srv.start()
            yield srv
        finally:
            srv.stop()


@pytest.fixture(scope="module")
def expected(server: Server) -> dict[str, Any]:
    """Register v1, promote it, and score PROBES through the registry, in a fresh process."""
    return json.loads(in_child(server.home, "register_and_score", str(server.home.root), "v1"))


def logged(home: LifecycleHome, at_least: int = 0, timeout: float = 10) -> pl.DataFrame:
    """The prediction log, once it holds `at_least` rows: the service writes it off the
    request path, within one flush interval (`serving.log_flush_interval_ms`)."""
    deadline = time.monotonic() + timeout
    rows = _read_logged(home)
    while rows.height < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
        rows = _read_logged(home)
    return rows


def _read_logged(home: LifecycleHome) -> pl.DataFrame:
    days = sorted(
        dt.date.fromisoformat(p.name.removeprefix("date="))
        for p in (home.logs / "predictions").glob("date=*")
    )
    frames = []
    for day in days:
        rows, bad = read_predictions(
            home.logs, day, PROBLEM.numeric_features, PROBLEM.categorical_features
        )
        assert bad.is_empty(), bad.to_dicts()
        frames.append(rows)
    return pl.concat(frames) if frames else pl.DataFrame()


def refused_serve(target: str, env: dict[str, str], cwd: Path) -> list[str]:
    """`bentoml serve target` that must refuse to start: its output lines, after it exited
    non-zero on its own."""
    done = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", target, "--port", str(free_port())],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    return (done.stdout + done.stderr).strip().splitlines()


def test_a_service_without_its_token_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    home = LifecycleHome(tmp_path / "home")
    home.repo.mkdir(parents=True)
    shutil.copyfile(example_config_path(), home.config_path)  # feedback_auth: required
    env = {**os.environ, **home.tool_env()}
    env.pop("LIFECYCLE_FEEDBACK_TOKEN", None)
    lines = refused_serve("bentos.service:Lifecycle", env, project_root())
    assert len(lines) == 1 and "export LIFECYCLE_FEEDBACK_TOKEN" in lines[0], lines


def test_the_service_listens_on_the_loopback_interface_by_default(tmp_path: Path) -> None:
    """No --host/--port: 127.0.0.1:3100, not BentoML's 0.0.0.0:3000 (`lifecycle ui`'s port)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 3100)) == 0:
            pytest.skip("port 3100 is taken on this machine")
    home = LifecycleHome(tmp_path / "home")
    home.repo.mkdir(parents=True)
    shutil.copyfile(example_config_path(), home.config_path)
    env = {**os.environ, **home.tool_env(), "LIFECYCLE_FEEDBACK_TOKEN": TOKEN}
    for name in ("BENTOML_HOST", "BENTOML_PORT"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "bentos.service:Lifecycle"],
        cwd=project_root(),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline, status = time.monotonic() + START_TIMEOUT_S, None
        while status is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get("http://127.0.0.1:3100/healthz", timeout=5).status_code
            except httpx.TransportError:
                time.sleep(0.3)
        assert status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


# --- tests, in order -----------------------------------------------------------------------


def test_health_before_the_first_model(server: Server) -> None:
    resp = server.client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"
    assert resp.json()["model_version"] is None
    assert server.client.get("/livez").status_code == 200  # BentoML's probe is still there


def test_cold_start_predictions_are_unscored_and_logged(server: Server) -> None:
    body = server.predict({"entity_id": "card-0", "features": features(0)})
    assert body["model_version"] is None and body["score"] is None and body["decision"] is None
    assert len(body["request_id"]) == 32
    rows = logged(server.home, 1).filter(pl.col("request_id") == body["request_id"])
    assert rows.height == 1
    assert rows["event_time"][0] == NOON
    assert rows["model_version"][0] is None and rows["score"][0] is None
    assert rows["entity_id"][0] == "card-0"


BAD_FEATURES: list[tuple[str, dict[str, Any]]] = [
    ("missing feature", {k: v for k, v in features().items() if k != "amount"}),
    ("extra feature", {**features(), "colour": "red"}),
    ("string numeric", {**features(), "amount": "12"}),
    ("bool numeric", {**features(), "hour": True}),
    ("null numeric", {**features(), "hour": None}),
    ("numeric categorical", {**features(), "country": 7}),
]


def _malformed() -> list[Any]:
    good = {"entity_id": "c", "features": features()}
    nan_body = json.dumps(good).replace('"amount": 5.0', '"amount": NaN')
    inf_body = json.dumps(good).replace('"amount": 5.0', '"amount": Infinity')
    big_body = json.dumps(good).replace('"amount": 5.0', '"amount": 1' + "0" * 400)
    cases: list[Any] = [
        pytest.param("/predict", b"{not json", {}, id="bad JSON"),
        pytest.param("/predict", b"", {}, id="empty body"),
        pytest.param("/predict", b"[1, 2]", {}, id="JSON array"),
        pytest.param("/predict", nan_body.encode(), {}, id="NaN numeric"),
        pytest.param("/predict", inf_body.encode(), {}, id="Infinity numeric"),
        pytest.param("/predict", big_body.encode(), {}, id="huge numeric"),
        pytest.param("/predict", {"features": features()}, {}, id="no entity_id"),
        pytest.param(
            "/predict", {**good, "event_time": "2026-06-05T10:00:00"}, {}, id="naive time"
        ),
        pytest.param(
            "/predict", {**good, "event_time": "0001-01-01T00:00:00+14:00"}, {}, id="time range"
        ),
        pytest.param("/predict", {**good, "request_id": "a/../b"}, {}, id="bad request_id"),
        pytest.param("/predict", {**good, "colour": 1}, {}, id="extra field"),
        pytest.param(
            "/predict", b"--x\r\n", {"Content-Type": "multipart/form-data"}, id="multipart"
        ),
        pytest.param("/predict", b"a=1", {"Content-Type": "text/plain"}, id="text body"),
        pytest.param("/predict_batch", {"requests": []}, {}, id="empty batch"),
        pytest.param("/predict_batch", {"requests": [good] * 1001}, {}, id="batch of 1001"),
        pytest.param(
            "/predict_batch",
            {"requests": [{**good, "request_id": "same"}, {**good, "request_id": "same"}]},
            {},
            id="duplicate ids",
        ),
        pytest.param(
            "/predict_batch",
            {"requests": [good, {**good, "features": {**features(), "amount": "x"}}]},
            {},
            id="one bad item",
        ),
        pytest.param("/feedback", {"request_id": "r", "label": 1}, {}, id="feedback no token"),
        pytest.param(
            "/feedback",
            {"request_id": "r", "label": 1},
            {"Authorization": "Bearer wrong"},
            id="feedback wrong token",
        ),
        pytest.param("/feedback", {"request_id": "r", "label": "yes"}, AUTH, id="string label"),
        pytest.param("/feedback", {"request_id": "r", "label": 2}, AUTH, id="binary label 2"),
        pytest.param("/feedback", {"labels": []}, AUTH, id="no labels"),
        pytest.param(
            "/feedback", {"labels": [{"request_id": "r", "label": None}]}, AUTH, id="null label"
        ),
        pytest.param(
            "/predict",
            json.dumps(good)
            .replace('"entity_id": "c"', '"entity_id": "c", "entity_id": "d"')
            .encode(),
            {},
            id="duplicated field",
        ),
        pytest.param("/predict", {**good, "entity_id": None}, {}, id="null entity_id"),
        pytest.param("/predict", {**good, "features": None}, {}, id="null features"),
        pytest.param("/predict", b"null", {}, id="JSON null"),
        pytest.param("/predict", {**good, "entity_id": 7}, {}, id="numeric entity_id"),
        pytest.param("/predict", b'{"entity_id": "\xff\xfe"}', {}, id="invalid UTF-8"),
        pytest.param("/predict", b"[" * 50_000 + b"]" * 50_000, {}, id="deep nesting"),
        pytest.param(
            "/predict", {**good, "features": {"amount": {"a": [[[[1]]]]}}}, {}, id="nested value"
        ),
        pytest.param("/predict", b" " * (8 << 20) + b"{}", {}, id="body over the limit"),
        pytest.param("/predict_batch", {"requests": None}, {}, id="null batch"),
        pytest.param("/lookup", {"scheduled_payment_id": "a/../b"}, {}, id="lookup bad id"),
        pytest.param("/lookup", {"scheduled_payment_id": "nope"}, {}, id="lookup unknown id"),
    ]
    cases += [
        pytest.param("/predict", {**good, "features": feats}, {}, id=name)
        for name, feats in BAD_FEATURES
    ]
    return cases


@pytest.mark.parametrize(("route", "body", "headers"), _malformed())
def test_malformed_requests_get_a_4xx_with_a_reason(
    server: Server, route: str, body: Any, headers: dict[str, str]
) -> None:
    if isinstance(body, bytes):
        resp = server.client.post(
            route, content=body, headers={"Content-Type": "application/json", **headers}
        )
    else:
        resp = server.client.post(route, json=body, headers=headers)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert resp.text and "error" in resp.text


def test_malformed_requests_were_not_logged(server: Server) -> None:
    rows = logged(server.home, len(server.sent))
    assert sorted(rows["request_id"].to_list()) == sorted(server.sent)


def test_a_promoted_model_is_served_within_seconds(
    server: Server, expected: dict[str, Any]
) -> None:
    deadline = time.monotonic() + 15
    body = server.predict({"entity_id": "card-1", "features": PROBES[1]})
    while body["model_version"] != "v1" and time.monotonic() < deadline:
        time.sleep(0.1)
        body = server.predict({"entity_id": "card-1", "features": PROBES[1]})
    assert body["model_version"] == "v1", server.tail()
    assert server.client.get("/healthz").json()["model_version"] == "v1"
    for i, probe in enumerate(PROBES):
        body = server.predict(
            {"entity_id": f"card-{i}", "event_time": "2026-06-05T09:30:00+02:00", "features": probe}
        )
        assert body["model_version"] == "v1"
        assert 0.0 <= body["score"] <= 1.0
        # No skew: the served score is the batch scoring function's, through the registry.
        assert body["score"] == pytest.approx(expected["scores"][i], abs=1e-6)
        assert body["decision"] == expected["decisions"][i]


def test_batch_predictions(server: Server, expected: dict[str, Any]) -> None:
    payloads = [
        {"request_id": f"batch-{i}", "entity_id": f"card-{i}", "features": probe}
        for i, probe in enumerate(PROBES)
    ]
    payloads.append({"entity_id": "card-x", "features": PROBES[0]})  # id generated
    predictions = server.predict_batch(payloads)
    assert [p["request_id"] for p in predictions[:-1]] == [f"batch-{i}" for i in range(8)]
    assert len(predictions[-1]["request_id"]) == 32
    scores = [p["score"] for p in predictions]
    assert scores == pytest.approx([*expected["scores"], expected["scores"][0]], abs=1e-6)
    assert {p["model_version"] for p in predictions} == {"v1"}


def _send_at_once(url: str, bodies: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Every body on its own connection, all connected first and then written in one go,
    so the requests wait together in the server's socket buffers; (status, JSON) each."""
    host, port = url.removeprefix("http://").split(":")
    conns = [socket.create_connection((host, int(port)), timeout=30) for _ in bodies]
    for conn, body in zip(conns, bodies, strict=True):
        data = json.dumps(body).encode()
        head = f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        conn.sendall(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
    answers = []
    for conn in conns:
        with conn, conn.makefile("rb") as stream:
            status = int(stream.readline().split()[1])
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            answers.append((status, json.loads(stream.read(length))))
    return answers


def test_requests_in_flight_together_are_answered_each_on_its_own(
    server: Server, expected: dict[str, Any]
) -> None:
    """`/predict` requests in flight together, through the worker's coalescer
    (`bentos.service.Coalescer`; its grouping is tested in test_logging.py): each gets its
    own score, and a refusal stays its own — of two requests with the same id, one is
    answered and one gets 409."""
    bodies = [{"entity_id": f"card-{i}", "features": PROBES[i % 8]} for i in range(40)]
    bodies[7] = {"request_id": "together-1", "entity_id": "card-7", "features": PROBES[7]}
    bodies[8] = {"request_id": "together-1", "entity_id": "card-0", "features": PROBES[0]}
    answers = _send_at_once(server.url, bodies)
    assert sorted(status for status, _ in answers[7:9]) == [200, 409], answers[7:9]
    for i, (status, body) in enumerate(answers):
        if i in (7, 8):
            continue
        assert status == 200, body
        assert body["score"] == pytest.approx(expected["scores"][i % 8], abs=1e-6)
    served = [body["request_id"] for status, body in answers if status == 200]
    server.sent.extend(served)
    rows = logged(server.home, len(server.sent)).filter(pl.col("request_id").is_in(served))
    assert rows.height == len(served) == 39


def test_feedback_is_recorded_and_joins_to_predictions(server: Server) -> None:
    one = server.client.post("/feedback", json={"request_id": "batch-0", "label": 1}, headers=AUTH)
    assert one.status_code == 200, one.text
    assert one.json() == {"count": 1, "duplicates": 0, "conflicts": 0}
    many = server.client.post(
        "/feedback",
        json={
            "labels": [
                {"request_id": "batch-1", "label": 0, "observed_time": "2026-06-05T18:00:00Z"},
                {"request_id": "batch-2", "label": 1.0},
            ]
        },
        headers=AUTH,
    )
    assert many.status_code == 200, many.text
    assert many.json() == {"count": 2, "duplicates": 0, "conflicts": 0}
    # Idempotent: a repeated label is acknowledged as a duplicate and not written again.
    again = server.client.post(
        "/feedback", json={"request_id": "batch-0", "label": 1}, headers=AUTH
    )
    assert again.status_code == 200
    assert again.json() == {"count": 0, "duplicates": 1, "conflicts": 0}

    deadline = time.monotonic() + 10
    truth, bad = read_ground_truth(server.home.logs, DAY)
    while truth.height < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
        truth, bad = read_ground_truth(server.home.logs, DAY)
    assert bad.is_empty()
    assert sorted(truth["request_id"].to_list()) == ["batch-0", "batch-1", "batch-2"]
    joined = logged(server.home, len(server.sent)).join(truth, on="request_id", how="inner")
    assert joined.height == 3
    assert dict(zip(joined["request_id"], joined["label"], strict=True)) == {
        "batch-0": 1.0,
        "batch-1": 0.0,
        "batch-2": 1.0,
    }
    assert joined["model_version"].to_list() == ["v1"] * 3


def test_bentoml_clients_call_the_routes_with_keywords(
    server: Server, expected: dict[str, Any]
) -> None:
    """`bentoml.SyncHTTPClient`, as a BentoML user calls a service: the request's fields as
    keywords, the same JSON bodies as plain HTTP; a refusal is BentoML's error with the
    route's status, and a missing lookup is an answer, not an error in the service log."""
    import bentoml
    from bentoml.exceptions import BentoMLException

    with bentoml.SyncHTTPClient(server.url, token=TOKEN) as client:
        got = client.predict(entity_id="kw", features=PROBES[0])
        assert got["model_version"] == "v1"
        assert abs(got["score"] - expected["scores"][0]) <= 1e-6
        server.sent.append(got["request_id"])
        batch = client.predict_batch(requests=[{"entity_id": "kw", "features": PROBES[1]}])
        server.sent.extend(p["request_id"] for p in batch["predictions"])
        assert client.feedback(request_id=got["request_id"], label=1.0)["count"] == 1
        with pytest.raises(BentoMLException) as refused:
            client.lookup(scheduled_payment_id="no-such-payment")
        assert refused.value.error_code == 404
        with pytest.raises(BentoMLException) as refused:
            client.predict(entity_id="kw", features={"amount": 1.0})
        assert refused.value.error_code == 400
    assert "no-such-payment" not in server.tail(20000)


def test_the_openapi_document_describes_the_routes_that_answer(server: Server) -> None:
    """Swagger (`/`) reads `/docs.json`: the problem's name and the contract's version, the
    config's features with their types, `GET /lookup/{id}`, and a `/predict` example that
    the service answers with a 200."""
    assert server.client.get("/").status_code == 200
    doc = server.client.get("/docs.json").json()
    assert doc["info"]["title"] == f"lifecycle: {PROBLEM.name}"
    assert doc["info"]["version"] == "1.0"
    assert "BentoML" not in doc["info"]["description"]
    lookup = doc["paths"]["/lookup/{scheduled_payment_id}"]["get"]
    assert lookup["parameters"][0]["in"] == "path"
    assert set(lookup["responses"]) == {"200", "400", "404"}
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    features = body["schema"]["properties"]["features"]
    assert set(features["required"]) == set(PROBLEM.features)
    assert all(features["properties"][n]["type"] == "number" for n in PROBLEM.numeric_features)
    assert all(features["properties"][c]["type"] == "string" for c in PROBLEM.categorical_features)
    batch = doc["paths"]["/predict_batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["example"]["requests"] == [body["example"]]
    answered = server.client.post("/predict", json=body["example"])
    assert answered.status_code == 200, answered.text
    server.sent.append(answered.json()["request_id"])


def test_lookup_serves_offline_predictions(server: Server) -> None:
    rows = json.loads(
        loadgen_child(server.home, "publish_scheduled", str(server.home.root), "v1", str(DAY))
    )
    for row in rows:
        resp = server.client.get(f"/lookup/{row['item_id']}")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["source"] == "offline" and body["model_version"] == "v1"
        assert body["score"] == row["score"] and body["decision"] == row["decision"]
        assert body["computed_at"] == NOON.isoformat()
        posted = server.client.post("/lookup", json={"scheduled_payment_id": row["item_id"]})
        assert posted.status_code == 200 and posted.json() == body
    missing = server.client.get("/lookup/sched-20990101-00000")
    assert missing.status_code == 404 and "error" in missing.json()
    assert server.client.get("/lookup/a..%2F..%2Fetc").status_code == 400


def test_a_chunked_body_over_the_limit_is_refused(server: Server) -> None:
    def chunks():  # no Content-Length: the limit is enforced on the bytes received
        for _ in range(9):
            yield b" " * (1 << 20)

    resp = server.client.post(
        "/predict", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 413, resp.text


def test_a_failed_load_keeps_the_old_model(server: Server) -> None:
    in_child(server.home, "point_at_missing_version", str(server.home.root), "v9")
    deadline = time.monotonic() + 15
    health = server.client.get("/healthz").json()
    while health["status"] != "degraded" and time.monotonic() < deadline:
        time.sleep(0.2)
        health = server.client.get("/healthz").json()
    assert health["status"] == "degraded" and health["alias_version"] == "v9", health
    assert health["model_version"] == "v1"
    assert server.predict({"entity_id": "c", "features": PROBES[2]})["model_version"] == "v1"


def test_every_acknowledged_prediction_is_logged_once(server: Server) -> None:
    rows = logged(server.home, len(server.sent))
    assert rows.height == len(server.sent)
    assert sorted(rows["request_id"].to_list()) == sorted(server.sent)
    assert rows["request_id"].n_unique() == rows.height
    assert rows["logged_at"].null_count() == 0


def test_graceful_shutdown_closes_the_log(server: Server) -> None:
    before = len(server.sent)
    server.predict({"entity_id": "last", "features": PROBES[3]})
    assert server.stop(signal.SIGTERM) is not None, "the server did not stop on SIGTERM"
    assert "Completed cleanup hook: close" in server.tail(20000)
    rows = logged(server.home, len(server.sent))
    assert rows.height == before + 1
    assert sorted(rows["request_id"].to_list()) == sorted(server.sent)
    segments = list((server.home.logs / "predictions").rglob("*.jsonl"))
    assert segments and all(p.name.startswith("service-") for p in segments)


def test_a_bento_per_promotion_builds_offline_and_runs_from_its_own_files(
    server: Server, expected: dict[str, Any]
) -> None:
    """`build_bento` (what the `production_bento` asset runs) builds `lifecycle:v1` naming
    model v1; the service imports from the Bento's `src/` alone, with no Dagster."""
    from lifecycle_assets.serving.bento import bento_dir, build_bento

    home = server.home
    tag, built = build_bento(home, PROBLEM.name, "v1")
    assert (tag, built) == ("lifecycle:v1", True)
    assert build_bento(home, PROBLEM.name, "v1") == ("lifecycle:v1", False)  # carried over
    bento = bento_dir(home, "v1")
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    assert manifest["labels"]["model_version"] == "v1"
    # The service declares the model the build argument names (`bentoml.models.BentoModel`):
    # BentoML 1.4 references it from the store; `bentoml export`/`containerize` pack it.
    assert manifest["args"] == {"model": f"{PROBLEM.name}:v1"}
    # its image listens on the container's interface (the service's default is loopback)
    assert {"name": "BENTOML_HOST", "value": "0.0.0.0", "stage": "all"} in manifest["envs"]
    assert [m["tag"] for m in manifest["services"][0]["models"]] == [f"{PROBLEM.name}:v1"]
    assert (home.bentoml_home / "models" / PROBLEM.name / "v1").is_dir()
    env = {**os.environ, **home.tool_env()}
    src = bento / "src"
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "torch==2.9.0" in requirements and "dagster" not in requirements
    code = (
        "import sys, bentos.service as s, lifecycle_assets as la; "
        "import lifecycle_assets.training.trees; "  # gbdt models serve from the Bento too
        "assert la.__file__.startswith(sys.argv[1]), la.__file__; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'dvc', 'torch_xla'}); "
        "assert not bad, bad; print(s.Lifecycle.name)"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code, str(src)],
        cwd=src,  # the Bento's own files come first on sys.path
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.strip() == "lifecycle"


def test_a_built_bento_serves_its_packed_model_with_no_lifecycle_home(
    server: Server, expected: dict[str, Any], tmp_path: Path
) -> None:
    """The Bento of v1, exported and imported into an empty BentoML home, served with no
    lifecycle home: it answers with v1 — the scores of the registry's batch path — under
    the config packed with the model, and logs every prediction under its serving dir."""
    from lifecycle_assets.serving.bento import build_bento

    home = server.home
    build_bento(home, PROBLEM.name, "v1")  # built by the test above, or here
    exported = tmp_path / "lifecycle-v1.bento"
    bentoml = [sys.executable, "-m", "bentoml"]
    done = subprocess.run(
        [*bentoml, "export", "lifecycle:v1", str(exported)],
        env={**os.environ, **home.tool_env()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # A fresh machine's environment: an empty BentoML home, no lifecycle home at all.
    env = {k: v for k, v in os.environ.items() if k not in home.tool_env()}
    env.update(
        BENTOML_HOME=str(tmp_path / "bentoml"),
        BENTOML_DO_NOT_TRACK="true",
        LIFECYCLE_SERVING_DIR=str(tmp_path / "serving"),
        LIFECYCLE_FEEDBACK_TOKEN=TOKEN,
    )
    done = subprocess.run(
        [*bentoml, "import", str(exported)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Without its serving directory the Bento refuses to start, in one line.
    lines = refused_serve(
        "lifecycle:v1", {k: v for k, v in env.items() if k != "LIFECYCLE_SERVING_DIR"}, tmp_path
    )
    assert len(lines) == 1 and "LIFECYCLE_SERVING_DIR" in lines[0], lines
    server.stop()  # the home's own service (it would write its fence back into the home)
    moved = home.root.with_name("home-away")
    home.root.rename(moved)  # nothing of the lifecycle home is reachable while it serves
    bento = Server(
        LifecycleHome(tmp_path / "serving"),
        free_port(),
        tmp_path / "bento.log",
        target="lifecycle:v1",
        env=env,
        cwd=tmp_path,
    )
    try:
        bento.start()
        health = bento.client.get("/healthz").json()
        assert health["model_version"] == "v1" and health["ready"], health
        predictions = bento.predict_batch([{"entity_id": "p", "features": f} for f in PROBES])
    finally:
        bento.stop()
        moved.rename(home.root)
    assert [p["model_version"] for p in predictions] == ["v1"] * len(PROBES)
    for got, want in zip(predictions, expected["scores"], strict=True):
        assert abs(got["score"] - want) <= 1e-6
    rows = logged(bento.home, len(PROBES))
    assert sorted(rows["request_id"].to_list()) == sorted(p["request_id"] for p in predictions)
    assert set(rows["model_version"].to_list()) == {"v1"}
    assert (bento.home.config_path).read_text() == home.config_path.read_text()
