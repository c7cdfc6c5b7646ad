"""`lifecycle demo` end to end: real `bentoml serve`, real Dagster runs, real DVC and git."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from lifecycle_assets.config import example_config_path
from lifecycle_assets.defs.resources.alerts import read_alerts
from lifecycle_assets.home import LifecycleHome, project_root
from lifecycle_assets.registry.registry import Registry
from lifecycle_assets.serving.process import free_port
from lifecycle_assets.storage import AssetStore
from lifecycle_assets.versioning.repo import VersionedRepo
from lifecycle_assets.worktime import KINDS as WORK_KINDS
from lifecycle_assets_tests.conftest import bentoml_json

pytestmark = pytest.mark.slow


def small_config(tmp_path: Path) -> Path:
    """Small traffic so a week of simulated days runs in about a minute."""
    config = yaml.safe_load(example_config_path().read_text())
    config["simulation"].update({"payments_per_day": 800, "fraud_rate": 0.05})
    config["windows"].update({"min_train_rows": 600, "min_test_rows": 300})
    config["training"].update({"epochs": 4})
    config["validation"].update({"bootstrap_samples": 300, "margin": 0.02})
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def demo_cmd(home: Path, config: Path, days: int, port: int) -> list[str]:
    return [
        sys.executable, "-m", "lifecycle_assets.cli", "demo", "--workdir", str(home),
        "--config", str(config), "--days", str(days), "--port", str(port),
    ]  # fmt: skip


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "LIFECYCLE_HOME"}


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short demo's home, at `<project>/.lifecycle` of a stand-in project directory."""
    project = tmp_path_factory.mktemp("project")
    home = project / ".lifecycle"
    out = subprocess.run(
        demo_cmd(home, small_config(project), 8, free_port()),
        capture_output=True, text=True, env=clean_env(), timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return home


def test_short_demo_closes_the_loop(demo_home: Path) -> None:
    home = demo_home
    summary = json.loads((home / "summary.json").read_text())
    for key in (
        "start_date", "end_date", "days", "run_ids", "predictions_served",
        "predictions_logged", "labels_recorded", "models_trained", "models_promoted",
        "promotions_over_existing", "models_rejected", "production_model_version",
        "daily", "dagster_share",
    ):  # fmt: skip
        assert key in summary, key
    assert summary["days"] == 8 and len(summary["daily"]) == 8
    # The config leaves simulation.start_date unset: the simulated days end yesterday (UTC;
    # the day before if midnight passed during the run), the Dagster UI's latest partitions.
    today = dt.datetime.now(dt.UTC).date()
    ends = {(today - dt.timedelta(days=n)).isoformat() for n in (1, 2)}
    assert summary["end_date"] in ends
    assert summary["predictions_served"] == summary["predictions_logged"] == 8 * 800
    assert summary["labels_recorded"] > 0
    assert summary["promotions_over_existing"] >= 1
    assert summary["models_promoted"] == summary["promotions_over_existing"] + 1  # + FIRST_MODEL
    assert summary["production_model_version"] is not None
    # A Bento per promoted version, in the home's BentoML store.
    promoted = sorted(
        {d["production_after"] for d in summary["daily"] if d["production_after"]},
        key=lambda v: int(v[1:]),
    )
    assert summary["bento_per_promotion"] is True
    assert summary["bentos"] == [f"lifecycle:{v}" for v in promoted]
    listed = bentoml_json(LifecycleHome(home), "list")
    assert sorted(b["tag"] for b in listed) == sorted(summary["bentos"])
    assert 0 < summary["dagster_share"] < 1
    day = summary["daily"][-1]
    assert set(day["seconds"]) >= {"serve", "feedback", "ingest", "late_labels", "training"}
    # The loop's stages against the real work timed inside them (worktime): work is part of
    # the stages, every kind of it ran, and the totals add up over the days.
    assert set(day["work_seconds"]) == set(WORK_KINDS)
    assert 0 < sum(day["work_seconds"].values()) < day["loop_seconds"]
    assert summary["loop_seconds"] == pytest.approx(
        sum(d["loop_seconds"] for d in summary["daily"]), abs=0.05
    )
    assert all(summary["work_seconds"][k] > 0 for k in WORK_KINDS)
    assert summary["loop_over_work"] == pytest.approx(
        summary["loop_seconds"] / summary["work_seconds"]["total"], abs=0.01
    )
    assert day["production_quality_roc_auc"] is not None
    # never-vs-periodic on the same traffic: the day after FIRST_MODEL both serve the first
    # model, so the two qualities agree; later days compare daily retraining with never.
    cmp = summary["never_vs_periodic"]
    assert cmp["all_days"]["days"] >= 1 and cmp["all_days"]["never"] is not None
    first = next(d for d in summary["daily"] if d["never_quality_roc_auc"] is not None)
    assert first["served_by"] == ["v1"]
    assert first["never_quality_roc_auc"] == pytest.approx(
        first["production_quality_roc_auc"], abs=1e-3
    )
    # The home's audit trail and DVC state after the demo.
    lc = LifecycleHome(home)
    repo = VersionedRepo(lc.repo, env=lc.tool_env())
    assert repo.status() == {}
    assert "model/v1" in repo.tags()
    # The registry's stages name the production version.
    registry = Registry(lc, lc.config().problem.name)
    stages = {v: registry.stage(v) for v in registry.versions()}
    assert [v for v, s in stages.items() if s == "production"] == [
        summary["production_model_version"]
    ]
    # Every run is in the home's Dagster instance.
    assert len(summary["run_ids"]) == len(set(summary["run_ids"])) > 8


def first_hour_block() -> list[str]:
    """The README's `# first-hour` command block, one command per line, comments dropped."""
    text = (project_root() / "README.md").read_text()
    block = text.split("# first-hour\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_first_hour_commands(demo_home: Path) -> None:
    """The README's first-hour commands, run as written from a project root whose
    `.lifecycle` is the demo's home and `.venv` this environment: each exits 0, and the
    registry and DVC show what the demo did."""
    project = demo_home.parent
    venv = project / ".venv"
    if not venv.exists():
        venv.symlink_to(Path(sys.executable).parent.parent)
    commands = first_hour_block()
    assert commands[0].startswith(".venv/bin/lifecycle models list")
    outputs = {}
    cwd = project
    env = {**clean_env(), "LIFECYCLE_HOME": str(demo_home), "PATH": "/usr/bin:/bin"}
    for command in commands:
        if command.startswith("cd "):
            cwd = cwd / command.removeprefix("cd ")
            continue
        done = subprocess.run(
            ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        outputs[command] = done.stdout
    shown = next(v for k, v in outputs.items() if "models show v1" in k)
    assert "Alias history:" in shown and "# Model card" in shown
    metrics = next(v for k, v in outputs.items() if k.endswith("dvc metrics show"))
    assert "reports/metrics.json" in metrics and "promoted" in metrics
    assert (demo_home / "dvc_plots" / "index.html").is_file()  # `dvc plots show -o ../dvc_plots`
    assert "up to date" in next(v for k, v in outputs.items() if k.endswith("dvc status"))


def test_ctrl_c_stops_the_server_and_leaves_the_home_consistent(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    proc = subprocess.Popen(
        demo_cmd(home, small_config(tmp_path), 8, port),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env(),
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        seen.append(line)
        if "day 2/8" in line or time.monotonic() > deadline:
            break
    assert any("day 2/8" in line for line in seen), "".join(seen)[-3000:]
    os.kill(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, "".join(seen) + rest
    assert "service stopped" in rest
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    summary = json.loads((home / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["completed"] is False
    assert summary["predictions_served"] == summary["predictions_logged"]
    lc = LifecycleHome(home)
    git = subprocess.run(
        ["git", "-C", str(lc.repo), "status", "--porcelain"], capture_output=True, text=True
    )
    assert git.stdout == ""
    repo = VersionedRepo(lc.repo, env=lc.tool_env())
    assert repo.status(["train_split", "test_split"]) == {}


def test_demo_refuses_a_home_that_is_not_a_demo(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init = subprocess.run(
        [sys.executable, "-m", "lifecycle_assets.cli", "init", "--workdir", str(home)],
        capture_output=True, text=True, env=clean_env(),
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    out = subprocess.run(
        demo_cmd(home, small_config(tmp_path), 2, free_port()),
        capture_output=True, text=True, env=clean_env(), timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert "not a demo's" in out.stderr and "Traceback" not in out.stderr


def shadow_demo_config(tmp_path: Path) -> Path:
    """The small config on a faster clock (chargebacks within a day, labels mature after
    one, three-day train windows), so a shadow cycle — offline PASS, a day in shadow, the
    shadow gate on that day's matured labels — takes three simulated days; the concept drift
    starts on day 4 (counted from 0)."""
    config = yaml.safe_load(small_config(tmp_path).read_text())
    config["simulation"].update({"chargeback_delay_days": [0, 1], "drift_day": 4})
    config["labels"].update({"maturity_days": 1})
    config["windows"].update({"train_days": 3, "test_days": 1})
    path = tmp_path / "shadow.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_shadow_demo_promotes_one_challenger_from_shadow_and_rejects_another(
    tmp_path: Path,
) -> None:
    """`--shadow-days 1`: challengers that pass offline serve a day in shadow first. The drift
    ends on day 10, so the challenger sent to shadow on day 9, trained and tested on drifted
    days only, is judged on live traffic of the old pattern, where production (trained partly
    before the drift) is better: the shadow gate rejects it on the logged rows, while earlier
    challengers were promoted from shadow."""
    home = tmp_path / "home"
    cmd = [
        *demo_cmd(home, shadow_demo_config(tmp_path), 12, free_port()),
        "--no-bentos", "--shadow-days", "1", "--drift-end-day", "10",
        "--start-date", "2026-09-01",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lc = LifecycleHome(home)
    assert lc.config().release.shadow_days == 1
    summary = json.loads((home / "summary.json").read_text())
    assert summary["shadow_days"] == 1 and summary["drift_end_day"] == 10
    # The registry's alias history: each shadow move, then the shadow gate's moves.
    moves = [
        (e["alias"], e["from"], e["to"], e["reason"])
        for e in Registry(lc, lc.config().problem.name).history()
        if e["alias"] in ("production", "shadow")
    ]
    promoted = [m for m in moves if m[0] == "production" and "shadow gate" in m[3]]
    rejected = [m for m in moves if m[0] == "shadow" and m[2] is None and "FAIL" in m[3]]
    assert promoted and rejected
    store = AssetStore.of(lc)
    for _, _, version, reason in promoted:
        sent = next(m for m in moves if m[0] == "shadow" and m[2] == version)
        assert "PASS on" in sent[3] and "shadow for 1 day(s)" in sent[3]
        assert reason.endswith(": PASS")
        record = store.read_record("shadow_report", reason.split(" on ")[1].split(":")[0])
        assert record["decision"] == "PASS" and record["action"] == "promote"
        assert record["challenger_version"] == version and record["offline"]["decision"] == "PASS"
    (_, version, _, reason) = rejected[-1]
    day = reason.split(" on ")[1].split(":")[0]
    record = store.read_record("shadow_report", day)
    # Decided on the logged live rows of its window (the day the drift ended), confidently
    # worse by more than the margin: not an inconclusive FAIL, and not abandoned.
    assert record["challenger_version"] == version and record["offline"]["decision"] == "PASS"
    assert record["decision"] == "FAIL" and record["action"] == "clear"
    assert not record["abandoned"] and record["n_rows"] == 800
    assert record["window"] == [summary["daily"][10]["date"]] * 2
    assert record["delta_lower_bound"] < record["delta"] < -record["margin"]
    assert version not in {m[2] for m in moves if m[0] == "production"}
    assert any(
        a.get("stage") == "shadow" and a["challenger_version"] == version
        for a in read_alerts(lc.alerts_path)
    )
    # The summary shows each day's stage.
    assert summary["rejected_in_shadow"] == [version]
    assert summary["promoted_from_shadow"] == [m[2] for m in promoted]
    by_date = {d["date"]: d for d in summary["daily"]}
    assert by_date[day]["shadow"]["action"] == "clear"
    assert f"{version} rejected in shadow" in out.stdout
    assert f"{promoted[0][2]} promoted from shadow" in out.stdout
