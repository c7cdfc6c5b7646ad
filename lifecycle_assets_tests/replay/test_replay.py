"""`lifecycle replay` end to end: real serving code path, Dagster runs, DVC and the registry.

Two replays, each small: the fraud simulator with its drift (never vs daily retraining), and
an independently generated regression dataset with another schema, through the CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lifecycle_assets.config import example_config_path
from lifecycle_assets.records import read_predictions
from lifecycle_assets.replay.runner import ReplayError, run_replay
from lifecycle_assets.replay.simulated import LABEL_TIME_COLUMN, simulated_frame
from lifecycle_assets_tests.conftest import benchmark_module
from lifecycle_assets_tests.replay.browser import chromium, visit
from lifecycle_assets_tests.replay.deliveries import CONFIG, deliveries

pytestmark = pytest.mark.slow

SIM_DAYS, DRIFT_DAY = 8, 2


@pytest.fixture(scope="module")
def simulator_replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Eight simulated days, drift on day 2; the loop's windows shrunk to match (maturity 1,
    train 3, test 1), so a model trained wholly after the drift serves by day 7."""
    tmp = tmp_path_factory.mktemp("sim")
    config = yaml.safe_load(example_config_path().read_text())
    config["simulation"].update(
        {
            "payments_per_day": 800,
            "fraud_rate": 0.05,
            "chargeback_delay_days": [0, 1],
            "drift_day": DRIFT_DAY,
        }
    )
    config["labels"]["maturity_days"] = 1
    config["windows"].update(
        {"train_days": 3, "test_days": 1, "min_train_rows": 600, "min_test_rows": 300}
    )
    config["training"]["epochs"] = 4
    config["validation"].update({"bootstrap_samples": 300, "margin": 0.02})
    config["replay"].update(
        {"policies": ["never", "periodic", "shadow"], "label_time_column": LABEL_TIME_COLUMN}
    )
    config_path = tmp / "sim.yaml"
    config_path.write_text(yaml.safe_dump(config))
    data = tmp / "traffic.parquet"
    simulated_frame(config_path, SIM_DAYS).write_parquet(data)
    saved = dict(os.environ)  # the replay points this process's tools at each home in turn
    try:
        summary = run_replay(data, config_path, tmp / "replay")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    yield {"summary": summary, "root": tmp / "replay"}


def test_daily_retraining_beats_never_after_the_drift(simulator_replay):
    root = simulator_replay["root"]
    result = json.loads((root / "replay.json").read_text())
    never, periodic = result["policies"]["never"], result["policies"]["periodic"]
    assert len(never["periods"]) == len(periodic["periods"]) == SIM_DAYS
    # `never` trains only its first model; daily retraining decides every day after that.
    assert never["decisions"] == {"FIRST_MODEL": 1}
    assert periodic["retrains"] >= SIM_DAYS - 3 and periodic["promotions"] >= 3
    # The first model is decided by the drift day, so it was trained on data from before it.
    first = next(i for i, p in enumerate(never["periods"]) if p["decision"] == "FIRST_MODEL")
    assert first <= DRIFT_DAY
    assert next(i for i, p in enumerate(never["periods"]) if p["quality"] is not None) == first + 1
    # Same traffic, same first model the next day (periodic's next promotion comes after it).
    assert never["periods"][first + 1]["served_by"] == periodic["periods"][first + 1]["served_by"]
    assert never["periods"][first + 1]["quality"] == periodic["periods"][first + 1]["quality"]
    # Once models trained on drifted data serve, daily retraining is better.
    late = range(DRIFT_DAY + 3, SIM_DAYS)
    mean = {
        name: sum(res["periods"][i]["quality"] for i in late) / len(late)
        for name, res in (("never", never), ("periodic", periodic))
    }
    assert mean["periodic"] > mean["never"] + 0.05, mean
    assert result["comparison"]["best"] == "periodic"
    # Each policy ran in its own home; the served traffic is in its logs.
    for name in ("never", "periodic"):
        assert (root / name / "lifecycle.yaml").is_file()
        seconds = [p["seconds"]["period"] for p in result["policies"][name]["periods"]]
        assert all(s > 0 for s in seconds)


def test_the_shadow_policy_retrains_as_periodic_and_promotes_through_the_shadow_gate(
    simulator_replay,
):
    """`shadow` trains every period as `periodic` does, but a challenger that passes the
    offline gate first serves in shadow (1 day: the config leaves the stage off); the shadow
    gate on its logged live rows decides, and only then does production move."""
    policies = simulator_replay["summary"]["policies"]
    shadow, periodic = policies["shadow"], policies["periodic"]
    assert shadow["retrains"] == periodic["retrains"]
    periods = shadow["periods"]
    sent = [p for p in periods if p["stage"] == "shadow"]
    assert sent, [(p["decision"], p["stage"]) for p in periods]
    for p in sent:  # sent to shadow: production does not move that day
        assert p["production_after"] == p["production_before"]
    gates = [p for p in periods if p["shadow_gate"]]
    assert gates and gates[0]["shadow_gate"]["challenger_version"] == sent[0]["challenger"]
    assert gates[0]["index"] > sent[0]["index"]
    assert sum(shadow["shadow_gates"].values()) == len(gates)
    for p in gates:  # production moves only by a shadow PASS, to the version in shadow
        gate = p["shadow_gate"]
        promoted = gate["action"] == "promote"
        assert promoted == (gate["decision"] == "PASS")
        if promoted:
            assert p["production_after"] == gate["challenger_version"]
    moved = [p for p in periods[1:] if p["promoted"] and p["decision"] != "FIRST_MODEL"]
    assert all((p["shadow_gate"] or {}).get("action") == "promote" for p in moved), moved
    assert periodic["shadow_gates"] == {}
    # a shadow rejection's alert is told apart from the day's challenger's
    for p in periods:
        assert p["shadow_alerts"] <= p["alerts"].count("gate"), p
        if p["shadow_alerts"]:
            assert (p["shadow_gate"] or {}).get("action") == "clear", p
    assert all(p["shadow_alerts"] == 0 for p in periodic["periods"])


def test_the_replay_report_renders_in_chromium(simulator_replay):
    if chromium() is None:
        pytest.fail("headless Chromium is needed for this test: apt-get install -y chromium")
    report = simulator_replay["root"] / "report.html"
    page = visit(
        report.as_uri(),
        "JSON.stringify([...document.querySelectorAll('svg[data-plot]')].map(s => "
        "[s.dataset.plot, s.querySelectorAll('polyline,circle').length]))",
    )
    assert page.console_errors == [] and page.requests == [report.as_uri()]
    plots = dict(json.loads(page.result))
    assert list(plots) == ["quality", "bias", "drift", "estimate_error", "timeline"]
    assert all(n > 0 for n in plots.values()), plots


@pytest.fixture(scope="module")
def deliveries_replay(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Food-delivery times (regression, weekly periods, no request id column, CSV with ISO
    text timestamps), generated with numpy alone; drift from week 3. Replayed through the
    CLI (policies one after the other) and in this process with both policies at once."""
    tmp = tmp_path_factory.mktemp("deliveries")
    data = tmp / "deliveries.csv"
    deliveries(weeks=5, per_week=600, drift_week=3).write_csv(data)
    config = yaml.safe_load(CONFIG)
    config["monitoring"]["cooldown_days"] = 1
    (tmp / "eta.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "LIFECYCLE_HOME"}
    out = subprocess.run(
        [
            sys.executable, "-m", "lifecycle_assets.cli", "replay", str(data),
            "--config", str(tmp / "eta.yaml"), "--workdir", str(tmp / "replay"),
            "--policy", "periodic", "--policy", "triggered", "--jobs", "1", "--json",
        ],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    lines: list[str] = []
    environ = dict(os.environ)
    at_once = run_replay(
        data,
        tmp / "eta.yaml",
        tmp / "at-once",
        policies=["periodic", "triggered"],
        echo=lines.append,
        jobs=2,
    )
    return {
        "cli": out,
        "root": tmp / "replay",
        "at_once": at_once,
        "lines": lines,
        "environ_after": dict(os.environ) == environ,
    }


def test_replay_runs_unchanged_on_another_schema_and_task(deliveries_replay: dict[str, Any]):
    out, root = deliveries_replay["cli"], deliveries_replay["root"]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    printed = json.loads(out.stdout)
    assert printed["task"] == "regression" and printed["period"] == "week"
    result = json.loads((root / "replay.json").read_text())
    assert result["metric"] == "rmse" and result["higher_is_better"] is False
    assert list(result["policies"]) == ["periodic", "triggered"]
    periodic, triggered = result["policies"]["periodic"], result["policies"]["triggered"]
    assert len(periodic["periods"]) == 5 and result["requests"] == 3000
    # The first model learned delivery minutes in their own units (label std ≈ 10).
    first = next(p for p in periodic["periods"] if p["decision"] == "FIRST_MODEL")
    assert first["challenger_metric"] < 5.0
    assert sum(1 for p in periodic["periods"] if p["decision"]) >= 3
    # The drift fires the staleness trigger, which retrains; no trigger before the drift.
    fired = [p["index"] for p in triggered["periods"] if p["trigger_fired"]]
    assert fired and min(fired) >= 3, fired
    assert any("feature drift" in r for p in triggered["periods"] for r in p["staleness_reasons"])
    assert triggered["retrains"] > 1
    # Served through the service's code path: logged with scores and no fraud decisions.
    day = periodic["periods"][-1]["loop_day"]
    cfg = yaml.safe_load(CONFIG)["problem"]
    logged, quarantined = read_predictions(
        root / "periodic" / "logs",
        dt.date.fromisoformat(day),
        tuple(cfg["numeric_features"]),
        tuple(cfg["categorical_features"]),
    )
    assert logged.height == 600 and quarantined.height == 0
    assert logged["score"].null_count() == 0 and logged["decision"].null_count() == 600
    assert (root / "report.html").is_file()


def test_policies_replayed_at_once_give_the_results_of_one_after_the_other(
    deliveries_replay: dict[str, Any],
) -> None:
    """`jobs=2`: each policy in a process of its own, the same per-period results as the
    CLI's replay one after the other; every period's progress line reaches this process's
    echo; this process's environment is not pointed at any home."""
    one_by_one = json.loads((deliveries_replay["root"] / "replay.json").read_text())
    at_once = deliveries_replay["at_once"]
    assert list(at_once["policies"]) == ["periodic", "triggered"]
    kept = ("quality", "decision", "trained", "trigger_fired", "production_after", "alerts")
    for policy, res in one_by_one["policies"].items():
        mine = at_once["policies"][policy]
        assert [{k: p[k] for k in kept} for p in mine["periods"]] == [
            {k: p[k] for k in kept} for p in res["periods"]
        ]
        assert (mine["retrains"], mine["rejections"]) == (res["retrains"], res["rejections"])
    assert at_once["comparison"]["mean_quality"] == one_by_one["comparison"]["mean_quality"]
    for policy in ("periodic", "triggered"):
        assert sum(line.startswith(policy) for line in deliveries_replay["lines"]) == 5
    assert deliveries_replay["environ_after"]
    with pytest.raises(ReplayError, match="jobs must be at least 1"):
        run_replay(
            deliveries_replay["root"].parent / "deliveries.csv",
            deliveries_replay["root"].parent / "eta.yaml",
            deliveries_replay["root"].parent / "refused",
            jobs=0,
        )


def test_the_replay_speed_benchmark_reports_each_stage_and_the_never_bar(tmp_path: Path) -> None:
    """`benchmarks/replay_speed.py` on seven simulated days, `never` only (the first model
    comes on the sixth): the figures' structure and the bar's verdict on the period after it
    (no timing is asserted)."""
    speed = benchmark_module("replay_speed")
    out = tmp_path / "speed.json"
    assert speed.main(["--days", "7", "--policy", "never", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    never = result["policies"]["never"]
    assert result["days"] == 7 and result["requests"] > 0
    assert never["first_model_period"] == 5 and never["served_periods"] == 1
    assert {"serve", "ingest", "late_labels", "dagster_overhead"} == set(never["served_stages"])
    assert never["mean_served_period"] > 0
    assert result["bar"] == {
        "never_period_seconds": never["mean_served_period"],
        "bar": speed.BAR_NEVER_SECONDS,
    }
