"""Under a running `dagster dev` (webserver + daemon), the staleness sensor really fires and
the run it launches succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest

from lifecycle_assets.automation.loop import instance_for, materialize
from lifecycle_assets.definitions import INGEST
from lifecycle_assets.home import project_root, set_simulated_today
from lifecycle_assets.records import LogWriter
from lifecycle_assets.serving.process import free_port
from lifecycle_assets.simulator.fraud import FraudSimulator
from lifecycle_assets_tests.conftest import subprocess_env

pytestmark = pytest.mark.slow


def test_daemon_fires_the_staleness_sensor_and_the_run_succeeds(make_home) -> None:
    # The drop is reported on the day itself: without catch-up it fires at once (with it,
    # the sensor would wait for a train window holding the drop; test_sensors covers that).
    home = make_home("monitoring:\n  catch_up: false\n")
    sim = FraudSimulator(home.config())
    day = sim.date(0)
    set_simulated_today(home, day)
    writer = LogWriter(home.logs, "simulator")
    sim.write_day(writer, 0, None)
    writer.close()
    materialize(home, INGEST, day.isoformat())
    instance = instance_for(home)
    # A served model whose matured live quality fell well below what it was validated with.
    for key, meta in (
        ("validation_report", {"challenger_version": "v1", "challenger_metric": 0.92}),
        ("live_quality", {"matured": True, "quality": 0.61, "model_version": "v1"}),
    ):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=key, partition=day.isoformat(), metadata=meta)
        )
    env = subprocess_env(home)
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "lifecycle_assets.cli", "ui", "--workdir", str(home.root),
         "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        workspace = str(project_root() / "workspace.yaml")
        deadline = time.monotonic() + 120
        started = None
        while time.monotonic() < deadline:
            started = subprocess.run(
                [sys.executable, "-m", "dagster", "sensor", "start", "staleness_retrain",
                 "-w", workspace],
                env=env, cwd=project_root(), capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            if started.returncode == 0:
                break
            time.sleep(2)
        assert started is not None and started.returncode == 0, started.stderr if started else ""
        run = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"lifecycle/trigger": "staleness"}))
            if runs and runs[0].is_finished:
                run = runs[0]
                break
            time.sleep(2)
        assert run is not None, "the daemon did not launch a staleness run in time"
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == day.isoformat()
        assert "live quality" in run.tags["lifecycle/reasons"]
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
