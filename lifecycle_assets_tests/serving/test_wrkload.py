"""The serving benchmark's wrk client (`lifecycle_assets_tests/wrkload.py`): its command, the
parse of the script's result line, and, where wrk is installed, one short run against a
stdlib server that answers some requests with 503 (counts only: no timing assertions)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from lifecycle_assets_tests.wrkload import LoadSummary, parse_wrk, run_wrk, wrk_command

# wrk's own report around the script's line, as wrk 4.1 prints it.
WRK_STDOUT = """Running 2s test @ http://127.0.0.1:8000
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.51ms    2.10ms  40.12ms   90.00%
    Req/Sec     3.05k   120.00     3.20k    70.00%
  6100 requests in 2.00s, 1.20MB read
  Non-2xx or 3xx responses: 4
Requests/sec:   3049.50
Transfer/sec:    614.00KB
WRK_RESULT {"requests": 6100, "duration_us": 2000400, "non_2xx": 4, "connect": 0, "read": 2, "write": 0, "timeout": 0, "p50_us": 10250.0, "p99_us": 18311.5}
"""


def test_command_pins_one_thread_and_passes_the_bodies_and_path() -> None:
    cmd = wrk_command(
        "http://127.0.0.1:9000", path="/predict", seconds=7.6, connections=32,
        script=Path("/t/post.lua"), bodies=Path("/t/bodies.jsonl"),
    )  # fmt: skip
    assert cmd[0] == "wrk"
    assert "-t1" in cmd and "-c32" in cmd and "-d8s" in cmd
    assert cmd[cmd.index("-s") + 1] == "/t/post.lua"
    assert cmd[-4:] == ["http://127.0.0.1:9000", "--", "/t/bodies.jsonl", "/predict"]
    short = wrk_command(
        "http://h:1", path="/p", seconds=0.2, connections=1, script=Path("s"), bodies=Path("b")
    )
    assert "-d1s" in short  # wrk takes whole seconds, at least one


def test_parse_reads_the_result_line_and_keeps_non_zero_errors() -> None:
    got = parse_wrk(WRK_STDOUT)
    assert got == LoadSummary(
        seconds=2.0004, ok=6096, errors={"non-2xx": 4, "read": 2}, p50_us=10250.0, p99_us=18311.5
    )
    assert got.rate == pytest.approx(6096 / 2.0004)


@pytest.mark.parametrize("stdout", ["", "unable to connect to 127.0.0.1:1 Connection refused\n"])
def test_parse_without_a_result_line_raises_with_wrk_output(stdout: str) -> None:
    with pytest.raises(RuntimeError, match="0 result lines"):
        parse_wrk(stdout)


class _Every4th503(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the benchmark's servers
    lock = threading.Lock()
    sent: ClassVar[dict[int, int]] = {}
    bodies: ClassVar[set[bytes]] = set()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            self.bodies.add(body)
            status = 503 if sum(self.sent.values()) % 4 == 3 else 200
            self.sent[status] = self.sent.get(status, 0) + 1
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Every4th503)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_a_real_run_posts_the_bodies_and_counts_non_2xx(server: str) -> None:
    bodies = [json.dumps({"i": i}).encode() for i in range(3)]
    got = run_wrk(server, path="/predict", seconds=1, connections=2, bodies=bodies)
    sent = _Every4th503.sent
    assert got.ok > 0 and got.errors["non-2xx"] > 0
    # wrk counts the answers it read; up to one a connection is in flight when it stops.
    assert sent[200] - 2 <= got.ok <= sent[200]
    assert sent[503] - 2 <= got.errors["non-2xx"] <= sent[503]
    assert _Every4th503.bodies == set(bodies)
    assert got.p50_us > 0 and got.p99_us >= got.p50_us
