"""Open a page in headless Chromium through Playwright: what it rendered, what it logged to
the console, and every network request it made. Playwright drives the system's Chromium
(Debian's package, `make browser`) by its path; it never downloads a browser."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import ConsoleMessage, Error, Request, sync_playwright


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
    """Load `url`, wait for its load event, evaluate the JavaScript `expression` (returned
    by value); console errors and uncaught exceptions, then every request, are recorded."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("no chromium on PATH (apt-get install -y chromium)")
    page_visit = PageVisit(result=None)

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            page_visit.console_errors.append(message.text[:500])

    def on_error(error: Error) -> None:
        page_visit.console_errors.append(str(error)[:500])

    def on_request(request: Request) -> None:
        page_visit.requests.append(request.url)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=binary, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.on("console", on_console)
            page.on("pageerror", on_error)
            page.on("request", on_request)
            page.goto(url, wait_until="load", timeout=timeout * 1000)
            page_visit.result = page.evaluate(expression)
            page_visit.screenshot = page.screenshot(full_page=True)
        finally:
            browser.close()
    return page_visit
