"""The alert sink against real local HTTP receivers (`http.server` on 127.0.0.1): delivery,
retries with backoff, a receiver that is down, one that is too slow, one that refuses."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lifecycle_assets.config import AlertsConfig
from lifecycle_assets.defs.resources.alerts import AlertSink, AlertSinkResource, read_alerts
from lifecycle_assets.defs.resources.home import LifecycleHomeResource

NOON = dt.datetime(2026, 6, 5, 12, tzinfo=dt.UTC)


class Receiver:
    """A webhook receiver: answers `statuses` in turn (then 200), or sleeps `delay` first."""

    def __init__(self, statuses: tuple[int, ...] = (), delay: float = 0.0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self.statuses = list(statuses)
        self.delay = delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.content_types.append(self.headers.get("content-type", ""))
                if receiver.delay:
                    threading.Event().wait(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def down_url() -> str:
    """A port nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def sink(tmp_path: Path, sleeps: list[float] | None = None, **cfg: Any) -> AlertSink:
    record = sleeps if sleeps is not None else []
    return AlertSink(
        tmp_path / "alerts.jsonl",
        AlertsConfig(**{"webhook_backoff_s": 0.05, **cfg}),
        clock=lambda: NOON,
        sleep=record.append,
    )


def test_without_a_webhook_alerts_go_to_the_file_and_the_log(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="lifecycle.alerts"):
        alert = sink(tmp_path).send("gate", "challenger v3 rejected", {"day": "2026-06-05"})
    assert read_alerts(tmp_path / "alerts.jsonl") == [alert]
    assert alert == {
        "kind": "gate",
        "title": "challenger v3 rejected",
        "time": NOON.isoformat(),
        "day": "2026-06-05",
    }
    assert "ALERT [gate] challenger v3 rejected" in caplog.text


def test_the_webhook_gets_the_alert_as_json(tmp_path: Path) -> None:
    with Receiver() as rx:
        alert = sink(tmp_path, webhook_url=rx.url).send("gate", "t", {"reason": "Δ −0.03"})
    assert rx.bodies == [
        {"kind": "gate", "title": "t", "time": NOON.isoformat(), "reason": "Δ −0.03"}
    ]
    assert rx.content_types == ["application/json"]
    assert alert["webhook"] == {"delivered": True, "attempts": 1, "status": 200}
    assert [a["kind"] for a in read_alerts(tmp_path / "alerts.jsonl")] == ["gate"]


def test_failures_are_retried_with_exponential_backoff(tmp_path: Path) -> None:
    sleeps: list[float] = []
    with Receiver(statuses=(503, 502)) as rx:
        alert = sink(tmp_path, sleeps, webhook_url=rx.url, webhook_retries=3).send("gate", "t", {})
    assert len(rx.bodies) == 3 and rx.bodies[0] == rx.bodies[2]
    assert alert["webhook"] == {"delivered": True, "attempts": 3, "status": 200}
    assert sleeps == [0.05, 0.1]


def test_a_client_error_is_not_retried(tmp_path: Path) -> None:
    with Receiver(statuses=(404,)) as rx:
        alert = sink(tmp_path, webhook_url=rx.url).send("gate", "t", {})
    assert len(rx.bodies) == 1
    assert alert["webhook"] == {"delivered": False, "attempts": 1, "error": "HTTP 404"}


def test_a_receiver_that_is_down_loses_nothing_and_crashes_nothing(tmp_path: Path, caplog) -> None:
    sleeps: list[float] = []
    url = down_url()
    with caplog.at_level(logging.ERROR, logger="lifecycle.alerts"):
        alert = sink(tmp_path, sleeps, webhook_url=url, webhook_retries=2).send(
            "gate", "challenger v4 rejected", {"day": "2026-06-06"}
        )
    assert alert["webhook"]["delivered"] is False
    assert alert["webhook"]["attempts"] == 3
    assert "ConnectError" in alert["webhook"]["error"]
    assert sleeps == [0.05, 0.1]
    lines = read_alerts(tmp_path / "alerts.jsonl")
    assert lines[0]["title"] == "challenger v4 rejected"  # the alert itself landed first
    assert lines[1]["kind"] == "alert_delivery_failed"
    assert lines[1]["alert_title"] == "challenger v4 rejected"
    assert f"alert webhook {url} failed after 3 attempt(s)" in caplog.text


def test_a_slow_receiver_times_out(tmp_path: Path) -> None:
    with Receiver(delay=1.0) as rx:
        alert = sink(tmp_path, webhook_url=rx.url, webhook_timeout_s=0.2, webhook_retries=1).send(
            "gate", "t", {}
        )
    assert alert["webhook"]["delivered"] is False
    assert "Timeout" in alert["webhook"]["error"]
    assert len(rx.bodies) == 2


@pytest.fixture
def home_resource(make_home) -> Iterator[LifecycleHomeResource]:
    home = make_home()
    yield LifecycleHomeResource(workdir=str(home.root))


def test_the_resource_reads_the_config_and_can_override_the_url(
    home_resource: LifecycleHomeResource,
) -> None:
    with Receiver() as rx:
        resource = AlertSinkResource(home=home_resource, webhook_url=rx.url)
        resource.send("broken_run", "run 123 failed", {"run_id": "123"})
    assert [b["kind"] for b in rx.bodies] == ["broken_run"]
    alerts = read_alerts(home_resource.get().alerts_path)
    assert alerts[0]["title"] == "run 123 failed"
    plain = AlertSinkResource(home=home_resource).sink()
    assert plain.config.webhook_url is None
