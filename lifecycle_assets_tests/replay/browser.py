"""Open a page in headless Chromium over the DevTools protocol: what it rendered, what it
logged to the console, and every network request it made."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",
]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageVisit:
    result: Any
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    screenshot: bytes = b""


def visit(url: str, expression: str, timeout: float = 60.0) -> PageVisit:
    """Load `url`, wait for its load event, evaluate `expression` (returned by value)."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("no chromium on PATH (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return _visit(Path(profile), url, expression, timeout)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _visit(profile: Path, url: str, expression: str, timeout: float) -> PageVisit:
    deadline = time.monotonic() + timeout
    port_file = profile / "DevToolsActivePort"
    while not port_file.is_file() or not port_file.read_text().strip():
        if time.monotonic() > deadline:
            raise TimeoutError("chromium did not open its DevTools port")
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    pages = []
    while not pages:
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
        pages = [t for t in targets if t.get("type") == "page"]
        if time.monotonic() > deadline:
            raise TimeoutError("chromium opened no page")
    visit = PageVisit(result=None)
    ids = itertools.count(1)
    with connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024) as ws:

        def call(method: str, **params: Any) -> dict[str, Any]:
            msg_id = next(ids)
            ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
            while True:
                message = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 1)))
                if message.get("id") == msg_id:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return message.get("result", {})
                _event(visit, message)
                if message.get("method") == "Page.loadEventFired":
                    visit.result = visit.result or "loaded"

        for domain in ("Runtime", "Log", "Page", "Network"):
            call(f"{domain}.enable")
        call("Page.navigate", url=url)
        while visit.result != "loaded":
            message = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 1)))
            _event(visit, message)
            if message.get("method") == "Page.loadEventFired":
                visit.result = "loaded"
        evaluated = call("Runtime.evaluate", expression=expression, returnByValue=True)
        visit.result = evaluated.get("result", {}).get("value")
        shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        visit.screenshot = base64.b64decode(shot.get("data", ""))
        # Late console output (after load) is collected too.
        call("Runtime.evaluate", expression="0")
    return visit


def _event(visit: PageVisit, message: dict[str, Any]) -> None:
    method, params = message.get("method"), message.get("params", {})
    if method == "Runtime.exceptionThrown":
        visit.console_errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        visit.console_errors.append(json.dumps(params.get("args", []))[:500])
    elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        visit.console_errors.append(params["entry"].get("text", "")[:500])
    elif method == "Network.requestWillBeSent":
        visit.requests.append(params.get("request", {}).get("url", ""))
