"""The replay report: self-contained HTML whose plots render in headless Chromium."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from lifecycle_assets.config import load_config
from lifecycle_assets.replay.report import render, write_report
from lifecycle_assets.replay.runner import compare, summarise_policy
from lifecycle_assets_tests.replay.browser import chromium, visit

PLOTS = ["quality", "bias", "drift", "timeline"]
# What the page rendered, per plot: its size and how many marks (lines, dots, symbols).
INSPECT = """JSON.stringify([...document.querySelectorAll('svg[data-plot]')].map(s => {
  const box = s.getBoundingClientRect();
  return {plot: s.dataset.plot, width: box.width, height: box.height,
          lines: s.querySelectorAll('polyline').length,
          dots: s.querySelectorAll('circle').length,
          decisions: [...s.querySelectorAll('[data-decision]')].map(d => d.dataset.decision)};
}))"""


def period(i: int, policy: str) -> dict[str, Any]:
    trained = policy == "periodic" or i == 2
    decision = None if not trained or i < 2 else ("FIRST_MODEL" if i == 2 else "PASS")
    if policy == "periodic" and i == 4:
        decision = "FAIL"
    return {
        "index": i,
        "loop_day": f"2026-01-0{i + 1}",
        "data_start": f"2024-03-{4 + 7 * i:02d}T00:00:00+00:00",
        "quality": None if i < 3 else 0.8 - 0.02 * i * (policy == "never"),
        "bias": None if i < 3 else 0.01 * i,
        "max_psi": None if i < 3 else 0.1 * i,
        "trained": trained,
        "decision": decision,
        "reason": "Δ = +0.01 <test>",
        "challenger": f"v{i}" if decision else None,
        "incumbent": None,
        "promoted": decision in ("FIRST_MODEL", "PASS"),
        "production_after": f"v{i}",
        "alerts": ["gate"] if decision == "FAIL" else [],
        "trigger_fired": False,
        "staleness_reasons": [],
    }


def summary() -> dict[str, Any]:
    config = load_config()
    policies = {
        name: summarise_policy(name, [period(i, name) for i in range(6)], 12.0, config)
        for name in ("never", "periodic")
    }
    return {
        "problem": "card-fraud <&>",
        "task": "binary",
        "metric": "roc_auc",
        "higher_is_better": True,
        "period": "week",
        "periods": 6,
        "requests": 600,
        "data": "/tmp/x.parquet",
        "mapping": {"loop_start": "2026-01-01"},
        "serving": "inprocess",
        "wall_seconds": 24.0,
        "psi_threshold": 0.25,
        "comparison": compare(policies, True),
        "policies": policies,
    }


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_the_page_is_self_contained_and_holds_every_plot():
    page = render(summary())
    parser = _Tags()
    parser.feed(page)
    plots = [a.get("data-plot") for t, a in parser.tags if t == "svg"]
    assert plots == PLOTS
    assert not [t for t, _ in parser.tags if t in ("script", "link", "img", "iframe")]
    # Nothing fetched: the only URL is the SVG namespace.
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "card-fraud &lt;&amp;&gt;" in page and "<test>" not in page


def test_the_report_renders_in_chromium(tmp_path: Path):
    if chromium() is None:
        pytest.fail("headless Chromium is needed for this test: apt-get install -y chromium")
    path = write_report(summary(), tmp_path / "report.html")
    page = visit(path.as_uri(), INSPECT)
    assert page.console_errors == []
    assert page.requests == [path.as_uri()]
    plots = json.loads(page.result)
    assert [p["plot"] for p in plots] == PLOTS
    for p in plots:
        assert p["width"] > 300 and p["height"] > 100, p
    by_name = {p["plot"]: p for p in plots}
    assert by_name["quality"]["lines"] == 2 and by_name["quality"]["dots"] >= 6
    assert by_name["timeline"]["decisions"].count("FAIL") == 1
    assert page.screenshot.startswith(b"\x89PNG")


def test_the_browser_check_sees_errors_and_fetches(tmp_path: Path):
    """What the report check relies on: a page's console errors, uncaught exceptions and
    requests are all seen (a clean report is clean because it is, not because none are)."""
    if chromium() is None:
        pytest.fail("headless Chromium is needed for this test: apt-get install -y chromium")
    (tmp_path / "style.css").write_text("body {}")
    page_file = tmp_path / "broken.html"
    page_file.write_text(
        '<html><head><link rel="stylesheet" href="style.css"></head><body>'
        "<script>console.error('logged'); throw new Error('thrown');</script></body></html>"
    )
    page = visit(page_file.as_uri(), "document.title.length + 1")
    assert page.result == 1
    assert any("logged" in e for e in page.console_errors)
    assert any("thrown" in e for e in page.console_errors)
    assert page.requests == [page_file.as_uri(), (tmp_path / "style.css").as_uri()]
