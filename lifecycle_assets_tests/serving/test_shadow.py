"""The challenger in shadow (`serving/shadow.py`): scored on every logged request beside
production, never in the answer; dropped, with production answering on, when it fails to
load, raises or gives a non-finite score; picked up again from the registry after a restart.
The runtime tests use an in-memory loader; the last test serves through a real `bentoml
serve` and SIGKILLs it."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest

from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.records import read_predictions
from lifecycle_assets.registry.registry import Registry, model_path
from lifecycle_assets.serving.process import ServiceProcess, kill_tree
from lifecycle_assets.serving.requests import PredictRequest
from lifecycle_assets.serving.runtime import ServingRuntime
from lifecycle_assets.training.artifact import WEIGHTS
from lifecycle_assets_tests.loadgen import in_child, register_untrained_model, soak_features
from lifecycle_assets_tests.serving.helpers import (
    DAY,
    PROBLEM,
    FakeStore,
    features,
    make_artifact,
    point,
    runtime,
)
from lifecycle_assets_tests.serving.test_reliability import make_home


def predict(rt: ServingRuntime, n: int, start: int = 0) -> list[Any]:
    reqs = [
        PredictRequest(entity_id=f"c{i}", features=features(i)) for i in range(start, start + n)
    ]
    return rt.predict(reqs)


def logged(home: LifecycleHome, day: dt.date = DAY) -> pl.DataFrame:
    rows, bad = read_predictions(
        home.logs, day, PROBLEM.numeric_features, PROBLEM.categorical_features
    )
    assert bad.is_empty(), bad.to_dicts()
    return rows


def with_shadow(home: LifecycleHome, store: FakeStore) -> ServingRuntime:
    store.models["v1"] = make_artifact("v1", seed=1)
    store.models["v2"] = make_artifact("v2", seed=2)
    point(home, "v1")
    point(home, "v2", alias="shadow")
    return runtime(home, store, background_loads=False)


def test_the_shadow_scores_every_logged_request_and_never_the_answer(
    home: LifecycleHome, store: FakeStore
) -> None:
    rt = with_shadow(home, store)
    answers = [*predict(rt, 5), *predict(rt, 1, start=5)]
    production = store.models["v1"].score_rows([features(i) for i in range(6)])
    shadow = store.models["v2"].score_rows([features(i) for i in range(6)])
    assert not np.allclose(production, shadow)  # two different models
    assert [a.model_version for a in answers] == ["v1"] * 6
    assert [a.score for a in answers] == pytest.approx(production.tolist(), abs=1e-6)
    health = rt.health()
    assert (health.status, health.shadow_version, health.shadow_error) == ("ok", "v2", None)
    rt.log.sync()
    rows = logged(home)
    assert rows["request_id"].to_list() == [a.request_id for a in answers]
    assert rows["score"].to_list() == pytest.approx(production.tolist(), abs=1e-6)
    assert rows["shadow_version"].to_list() == ["v2"] * 6
    assert rows["shadow_score"].to_list() == pytest.approx(shadow.tolist(), abs=1e-6)

    point(home, None, alias="shadow")  # the shadow ends: records carry no shadow score
    rt.tick()
    predict(rt, 1, start=6)
    rt.close()
    assert logged(home)["shadow_version"].to_list()[-1] is None
    assert rt.health().shadow_version is None


def test_a_shadow_that_fails_to_load_is_dropped_and_production_answers(
    home: LifecycleHome, store: FakeStore
) -> None:
    store.models["v1"] = make_artifact("v1", seed=1)
    point(home, "v1")
    point(home, "v9", alias="shadow")  # registered, not in the store: the load fails
    rt = runtime(home, store, background_loads=False)
    assert [a.model_version for a in predict(rt, 3)] == ["v1"] * 3
    health = rt.health()
    assert health.status == "ok" and health.ready and health.error is None
    assert health.shadow_version is None and "v9" in (health.shadow_error or "")
    loads = len(store.loads)
    for _ in range(3):
        rt.tick()
    assert len(store.loads) == loads, "a dropped shadow is not loaded again"
    # drained now: a record is scored by the shadow loaded when its batch is drained
    rt.log.sync()

    store.models["v2"] = make_artifact("v2", seed=2)
    point(home, "v2", alias="shadow")  # another version: followed again
    rt.tick()
    predict(rt, 1, start=3)
    assert rt.health().shadow_error is None
    rt.close()
    assert logged(home)["shadow_version"].to_list() == [None, None, None, "v2"]


def _raises(rows: list[dict[str, Any]]) -> np.ndarray:
    raise RuntimeError("the shadow model broke")


def _non_finite(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.full(len(rows), np.nan)


@pytest.mark.parametrize("failure", [_raises, _non_finite], ids=["raises", "non-finite"])
def test_a_shadow_that_fails_while_scoring_is_dropped_and_every_record_is_logged(
    home: LifecycleHome, store: FakeStore, failure: Any
) -> None:
    rt = with_shadow(home, store)
    predict(rt, 2)
    rt.log.sync()
    store.models["v2"].score_rows = failure  # type: ignore[method-assign]
    answers = [*predict(rt, 3, start=2), *predict(rt, 1, start=5)]
    assert [a.model_version for a in answers] == ["v1"] * 4
    rt.log.sync()  # the drain scores the shadow: it fails and is dropped
    health = rt.health()
    assert health.status == "ok" and health.shadow_version is None
    assert "v2 failed while scoring" in (health.shadow_error or "")
    loads = len(store.loads)
    predict(rt, 1, start=6)
    rt.close()
    assert len(store.loads) == loads, "a dropped shadow is not loaded again"
    rows = logged(home)
    assert rows.height == 7  # production's records, all of them
    assert rows["shadow_version"].to_list() == ["v2", "v2", *[None] * 5]

    # Shadow state is the registry's alias: a restarted worker picks the shadow up again.
    store.models["v2"] = make_artifact("v2", seed=2)
    again = runtime(home, store, background_loads=False)
    assert again.health().shadow_version == "v2"
    again.close()


def test_a_built_bento_has_no_shadow(home: LifecycleHome, store: FakeStore) -> None:
    """The shadow follows a home's alias; a runtime given its model (a packed one) has none."""
    rt = with_shadow(home, store)
    assert rt.shadow is not None
    given = ServingRuntime(home, writer_id="given", model=rt.model, check_interval_s=0.0)
    assert given.shadow is None and given.health().shadow_version is None
    given.close()
    rt.close()


# --- through a real `bentoml serve` ---------------------------------------------------------


def _shadow_rows(home: LifecycleHome, ids: list[str], timeout: float = 10) -> pl.DataFrame:
    deadline = time.monotonic() + timeout
    while True:
        rows = logged(home).filter(pl.col("request_id").is_in(ids))
        if rows.height == len(ids) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def _send(url: str, n: int, prefix: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=30) as client:
        out = []
        for i in range(n):
            body = {"request_id": f"{prefix}-{i}", "entity_id": "c", "features": soak_features(i)}
            response = client.post("/predict", json=body)
            assert response.status_code == 200, response.text
            out.append(response.json())
        return out


def register_shadows_and_score(home_root: str, n: str) -> None:
    """Register v2 and v3 (not promoted), then print the registry's batch scores of v1 and v2
    for the first `n` soak features, as {version: scores}: one child process (PyTorch and the
    registry imported once) for all the set-up the test needs."""
    from lifecycle_assets.registry.registry import load_version

    for version in ("v2", "v3"):
        register_untrained_model(home_root, version, "no")
    home = LifecycleHome(Path(home_root))
    rows = [soak_features(i) for i in range(int(n))]
    scores = {
        v: load_version(home, home.config().problem.name, v).score_rows(rows).tolist()
        for v in ("v1", "v2")
    }
    print(json.dumps(scores))


@pytest.mark.slow
def test_a_served_shadow_survives_a_kill_and_a_broken_one_is_dropped(
    template: LifecycleHome, tmp_path: Path
) -> None:
    home = make_home(template, tmp_path / "home")
    expected = json.loads(
        in_child(home, "register_shadows_and_score", str(home.root), "4", module=__name__)
    )
    registry = Registry(home, PROBLEM.name)
    now = dt.datetime.now(dt.UTC)
    registry.move_alias("shadow", "v2", actor="test", reason="shadow", when=now)
    service = ServiceProcess(home).start()
    try:
        answers = _send(service.url, 4, "before")
        assert [a["model_version"] for a in answers] == ["v1"] * 4
        assert [a["score"] for a in answers] == pytest.approx(expected["v1"], abs=1e-6)
        health = httpx.get(f"{service.url}/healthz").json()
        assert (health["model_version"], health["shadow_version"]) == ("v1", "v2")
        rows = _shadow_rows(home, [a["request_id"] for a in answers])
        assert rows["shadow_version"].to_list() == ["v2"] * 4
        assert rows["shadow_score"].to_list() == pytest.approx(expected["v2"], abs=1e-6)

        # kill -9 mid-shadow: the restarted service scores the shadow again (registry state)
        assert service.proc is not None
        kill_tree(service.proc.pid)
        service.proc.wait(10)
        service = ServiceProcess(home).start()
        answers = _send(service.url, 4, "after")
        assert [a["model_version"] for a in answers] == ["v1"] * 4
        rows = _shadow_rows(home, [a["request_id"] for a in answers])
        assert rows["shadow_score"].to_list() == pytest.approx(expected["v2"], abs=1e-6)

        # a shadow version whose weights were changed after registration fails to load
        weights = model_path(home, PROBLEM.name, "v3") / WEIGHTS
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
        registry.move_alias("shadow", "v3", actor="test", reason="shadow", when=now)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            health = httpx.get(f"{service.url}/healthz").json()
            if health["shadow_error"]:
                break
            _send(service.url, 1, f"tick-{time.monotonic_ns()}")
            time.sleep(0.2)
        assert "v3" in health["shadow_error"] and "integrity" in health["shadow_error"]
        assert health["status"] == "ok" and health["shadow_version"] is None
        answers = _send(service.url, 3, "dropped")
        assert [a["model_version"] for a in answers] == ["v1"] * 3
        rows = _shadow_rows(home, [a["request_id"] for a in answers])
        assert rows["shadow_version"].to_list() == [None] * 3
    finally:
        service.stop()
