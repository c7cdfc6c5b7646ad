"""Promotions against a real `bentoml serve` with two workers (one server for the module):

1. a swap under continuous requests: zero errors, and once a response carries the new version
   no later request gets the old one (the workers' version fence, serving/fence.py);
2. `kill -9` at the writes of a promotion (CI size): each trial kills a real promotion
   (verify → alias → served ledger → models/production → dvc commit → git commit → dvc push)
   in a child process, checks the registry and the server, then reruns the promotion. The
   full-size run (≥ 50 kills over every write) is
   `python -m lifecycle_assets_tests.promotion.kill_harness --trials 60`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from lifecycle_assets.registry.promotion import promote_or_carry_over
from lifecycle_assets.registry.registry import Registry
from lifecycle_assets.serving.process import ServiceProcess
from lifecycle_assets_tests.promotion.kill_harness import Harness, setup_home
from lifecycle_assets_tests.promotion.swap import PAYLOAD

pytestmark = pytest.mark.slow

CLIENTS = 3
NOON = dt.datetime(2026, 6, 10, 12, tzinfo=dt.UTC)
# The alias move itself: after its history line, aliases.json (open, then atomic replace).
REGISTRY_WRITES = (2, 3)


@dataclass(frozen=True)
class Answer:
    client: int
    sent: float
    received: float
    status: int | str
    version: str | None


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """v1 in production, v2 registered; a two-worker server following the home."""
    home, versions = setup_home(tmp_path_factory.mktemp("promotion") / "home")
    saved = dict(os.environ)
    os.environ.update(home.tool_env())
    service = ServiceProcess(home, workers=2, log_path=home.root.parent / "serve.log").start()
    try:
        yield Harness(home, service.url, versions)
    finally:
        service.stop()
        os.environ.clear()
        os.environ.update(saved)


def hammer(url: str, client: int, stop: threading.Event, out: list[Answer]) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                resp = http.post("/predict", json=PAYLOAD)
                status: int | str = resp.status_code
                version = resp.json().get("model_version") if resp.status_code == 200 else None
            except httpx.HTTPError as err:
                status, version = type(err).__name__, None
            out.append(Answer(client, sent, time.monotonic(), status, version))


def test_a_swap_under_load_drops_nothing_and_never_goes_back(harness: Harness) -> None:
    home, url = harness.home, str(harness.url)
    answers: list[Answer] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=hammer, args=(url, i, stop, answers)) for i in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        registry = Registry(home, home.config().problem.name)
        decision = {"decision": "FORCED", "challenger_version": "v2", "production_version": "v1"}
        promote_or_carry_over(registry, decision, NOON.date(), actor="test", when=NOON)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            recent = [a for a in list(answers)[-20:] if a.version == "v2"]
            if len(recent) == 20:
                break
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)

    errors = [a for a in answers if a.status != 200]
    assert errors == [], errors[:5]
    versions = {a.version for a in answers}
    assert versions == {"v1", "v2"}
    first_new = min(a.received for a in answers if a.version == "v2")
    late_old = [a for a in answers if a.version == "v1" and a.sent > first_new]
    assert late_old == [], f"{len(late_old)} requests sent after a v2 answer got v1"
    for client in range(CLIENTS):
        seq = [a.version for a in sorted(answers, key=lambda a: a.sent) if a.client == client]
        assert seq == sorted(seq), f"client {client} went back to v1"
    # both workers loaded v2 and said so before the fence moved
    ready = list((home.root / "serving" / "ready" / "v2").iterdir())
    assert len(ready) >= 2
    assert len(answers) > 100


def test_kill_at_every_kind_of_write_leaves_old_or_new(harness: Harness) -> None:
    writes = harness.run(kills=4, random_kills=1, seed=1, always=REGISTRY_WRITES)
    # (a temporary file is named per process and thread: .<name>.<pid>.<thread>.tmp)
    assert [re.sub(r"\.\d+\.\d+\.tmp", ".tmp", w) for w in writes[:3]] == [
        "open(repo/registry/history.jsonl, a)",
        "open(repo/registry/.aliases.json.tmp, w)",
        "os.replace(repo/registry/.aliases.json.tmp)",
    ]
    assert any(w.startswith("git commit") for w in writes)
    kills = [t.how for t in harness.trials]
    # the first and last writes, the two inside the alias move, and one random group kill
    assert [k.split(":")[0] for k in kills[:4]] == [
        f"before write {k}/{len(writes)}" for k in (1, 2, 3, len(writes))
    ]
    assert kills[4].startswith("random group kill")
    problems = {t.how: t.problems for t in harness.trials if t.problems}
    assert problems == {}
    after = {t.alias_after_kill for t in harness.trials}
    assert after <= {"v1", "v2"}
    # both outcomes happen: killed before the alias moved (old) and after (new)
    assert len(after) == 2
    assert all(t.serving_after_kill == t.alias_after_kill for t in harness.trials)
