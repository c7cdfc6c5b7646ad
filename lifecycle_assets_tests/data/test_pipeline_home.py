"""The data pipeline in a real home over a few simulated days: real Dagster runs, DVC repo
and remote. PII never reaches the versioned repository, files are owner-only, versions
restore from the remote alone, retention keeps what models depend on, the late-label sensor
requests exactly the changed day, and the served score equals the batch score."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from lifecycle_assets.automation.loop import instance_for, materialize, run_day
from lifecycle_assets.definitions import defs
from lifecycle_assets.defs.automation.daily import (
    INGEST,
    LABELS,
    SERVING,
    TRAINING,
    daily_retraining,
    day_wait,
)
from lifecycle_assets.defs.automation.sensors import late_label_requests, late_labels
from lifecycle_assets.home import LifecycleHome, set_simulated_today
from lifecycle_assets.records import GroundTruthRecord, LogWriter, PredictionRecord
from lifecycle_assets.simulator.fraud import FraudSimulator
from lifecycle_assets_tests.conftest import _isolate, subprocess_env

DAYS = 5
CONFIG = """\
labels:
  maturity_days: 1
windows:
  train_days: 2
  test_days: 1
  min_train_rows: 50
  min_test_rows: 20
training:
  epochs: 1
validation:
  bootstrap_samples: 100
versioning:
  keep_versions: 1
data:
  pii_mode: hash
simulation:
  payments_per_day: 300
  scheduled_payments_per_day: 10
"""


def cli(home: LifecycleHome, *args: str) -> subprocess.CompletedProcess[str]:
    """`lifecycle ARGS --workdir HOME` in this process (a subprocess would add seconds of
    start-up per call; `test_cli` covers the entry point itself)."""
    from lifecycle_assets.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--workdir", str(home.root)])
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def loop_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LifecycleHome, list]]:
    """A home after DAYS simulated days of the loop; the service role is played by a writer
    that logs each payment's card number (identifying) alongside its features."""
    from lifecycle_assets.home_setup import init_home

    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("data-loop")
    root = base / "home"
    _isolate(root, mp)
    (base / "lifecycle.yaml").write_text(CONFIG)
    try:
        home = init_home(root, base / "lifecycle.yaml")
        sim = FraudSimulator(home.config())
        writer = LogWriter(home.logs, "sim")
        card_numbers: list[str] = []
        for i in range(DAYS):
            day = sim.date(i)
            set_simulated_today(home, day)
            payments = sim.payments(i)
            card_numbers += [p.card_number for p in payments[:20]]
            writer.write_predictions(
                [
                    PredictionRecord(
                        request_id=p.request_id,
                        entity_id=p.card_id,
                        event_time=p.event_time,
                        features={**p.features, "card_number": p.card_number},
                        model_version=None,
                        score=None,
                        decision=None,
                        logged_at=p.event_time,
                    )
                    for p in payments
                ]
            )
            writer.write_ground_truth(sim.chargebacks_arriving(i))
            writer.flush()
            run_day(home, day)
        writer.close()
        yield home, card_numbers
    finally:
        mp.undo()


def _files(*roots: Path) -> list[Path]:
    return [p for r in roots if r.exists() for p in r.rglob("*") if p.is_file()]


def test_raw_pii_never_reaches_the_repo_or_the_remote(loop_home) -> None:
    home, card_numbers = loop_home
    needles = [c.encode() for c in card_numbers]
    # the raw numbers are in the log store (that is where the service writes them) ...
    logged = b"".join(p.read_bytes() for p in _files(home.logs))
    assert all(n in logged for n in needles)
    # ... and nowhere in the versioned repository (workspace, git objects, DVC cache) or
    # the DVC remote, nor in the stored Dagster outputs.
    leaks = [
        p
        for p in _files(home.repo, home.default_remote, home.assets / "train_split")
        if any(n in p.read_bytes() for n in needles)
    ]
    for asset in ("raw_prediction_logs", "labeled_examples", "feature_table", "test_split"):
        leaks += [
            p for p in _files(home.assets / asset) if any(n in p.read_bytes() for n in needles)
        ]
    assert leaks == []
    # git objects are compressed: check the history's content too
    history = subprocess.run(
        ["git", "-C", str(home.repo), "log", "-p", "--all"],
        capture_output=True,
        env=subprocess_env(home),
    ).stdout
    assert not any(n in history for n in needles)
    # hash mode keeps a keyed hash (stable per card, not the number itself)
    split = pl.read_parquet(home.repo / "datasets" / "train_split" / "data.parquet")
    hashed = split["card_number"]
    assert hashed.str.len_chars().unique().to_list() == [64]
    assert (
        split.group_by("entity_id").agg(pl.col("card_number").n_unique())["card_number"].max() == 1
    )
    card = json.loads((home.repo / "datasets" / "train_split" / "data_card.json").read_text())
    assert "HMAC" in card["pii_handling"]
    assert (
        card["sha256"]
        == hashlib.sha256(
            (home.repo / "datasets" / "train_split" / "data.parquet").read_bytes()
        ).hexdigest()
    )
    assert card["source_partitions"] and card["rows"] == split.height


def test_data_and_remote_are_owner_only(loop_home) -> None:
    home, _ = loop_home
    roots = [home.repo / "datasets", home.repo / ".dvc" / "cache", home.default_remote]
    checked = 0
    for root in roots:
        for p in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(p.lstat().st_mode)
            assert mode & 0o077 == 0, f"{p} is {oct(mode)}"
            checked += 1
    assert checked > 10
    assert stat.S_IMODE((home.root / "secrets" / "pii_hmac.key").stat().st_mode) == 0o600


def test_versions_lists_every_dataset_version(loop_home) -> None:
    home, _ = loop_home
    result = cli(home, "data", "versions", "--json")
    assert result.returncode == 0, result.stderr
    versions = json.loads(result.stdout)["versions"]
    tags = {v["tag"] for v in versions}
    sim = FraudSimulator(home.config())
    assert tags == {
        f"{s}/{sim.date(i)}" for s in ("train_split", "test_split") for i in range(DAYS)
    }
    pinned = {v["tag"] for v in versions if v["pinned_by"]}
    assert f"train_split/{sim.date(3)}" in pinned  # the first model was trained on it


def test_restore_from_the_remote_alone_is_byte_identical(loop_home, tmp_path: Path) -> None:
    home, _ = loop_home
    sim = FraudSimulator(home.config())
    tag = f"train_split/{sim.date(DAYS - 1)}"
    workspace = home.repo / "datasets" / "train_split"
    expected = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in workspace.iterdir()}
    # nothing local left: the DVC cache and the home's copy are gone
    shutil.rmtree(home.repo / ".dvc" / "cache")
    shutil.rmtree(workspace)
    out = tmp_path / "restored"
    result = cli(home, "data", "restore", tag, "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    restored = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    assert restored == expected
    assert json.loads(result.stdout)["files"] == sorted(expected)
    # put the workspace back for the tests after this one
    shutil.copytree(out, workspace)


def test_gc_applies_retention_but_keeps_what_models_and_decisions_used(loop_home, tmp_path) -> None:
    home, _ = loop_home
    sim = FraudSimulator(home.config())
    before = len(_files(home.default_remote))
    result = cli(home, "data", "gc", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    newest = sim.date(DAYS - 1)
    first_model_day = sim.date(3)
    assert set(plan["keep"]) == {
        f"train_split/{newest}",
        f"test_split/{newest}",
        f"train_split/{first_model_day}",  # pinned by the first registered model
        f"test_split/{first_model_day}",  # pinned by its decision record
    }
    assert set(plan["delete"]) == {
        f"{s}/{sim.date(i)}" for s in ("train_split", "test_split") for i in range(3)
    }
    listed = json.loads(cli(home, "data", "versions", "--json").stdout)["versions"]
    assert {v["tag"] for v in listed} == set(plan["keep"])
    assert len(_files(home.default_remote)) <= before
    # a pinned version still restores from the remote alone
    shutil.rmtree(home.repo / ".dvc" / "cache", ignore_errors=True)
    result = cli(
        home, "data", "restore", f"train_split/{first_model_day}", "--out", str(tmp_path / "r")
    )
    assert result.returncode == 0, result.stderr
    restored = pl.read_parquet(tmp_path / "r" / "data.parquet")
    assert restored.height > 0
    # a deleted one is gone, with a one-line error
    gone = cli(home, "data", "restore", f"train_split/{sim.date(0)}", "--out", str(tmp_path / "x"))
    assert gone.returncode == 2
    assert "no dataset version" in gone.stderr and len(gone.stderr.strip().splitlines()) == 1


def test_dvc_repro_rebuilds_a_dataset_from_pinned_inputs_and_metrics_show(loop_home) -> None:
    """For DVC users: `dvc repro` re-runs the stage's Dagster materialisation for the day
    pinned in params.yaml and gets the same bytes — with no virtual environment on PATH (the
    stages run the home's `bin/lifecycle` launcher); a stage that fails leaves its output as
    it was; `dvc metrics show` has the gate's metrics."""
    home, _ = loop_home
    env = {**subprocess_env(home), "PATH": "/usr/bin:/bin"}

    def dvc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "dvc"), *args],
            cwd=home.repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    lock = (home.repo / "dvc.lock").read_text()
    workspace = home.repo / "datasets" / "train_split"
    before = {p.name: p.read_bytes() for p in workspace.iterdir()}
    shutil.rmtree(workspace)
    assert "train_split" in dvc("status", "train_split").stdout  # the output is missing
    result = dvc("repro", "train_split")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p.name: p.read_bytes() for p in workspace.iterdir()} == before
    assert (home.repo / "dvc.lock").read_text() == lock
    assert dvc("status", "train_split").stdout.strip().endswith("up to date.")
    # A stage whose command fails (here: its launcher) loses nothing of its output.
    launcher = home.repo / "bin" / "lifecycle"
    good = launcher.read_text()
    try:
        launcher.write_text("#!/bin/sh\nexit 3\n")
        failed = dvc("repro", "--force", "train_split")
        assert failed.returncode != 0
        assert {p.name: p.read_bytes() for p in workspace.iterdir()} == before
    finally:
        launcher.write_text(good)
    metrics = dvc("metrics", "show", "--json")
    assert metrics.returncode == 0, metrics.stderr
    # one concise row per decision: the gate's figures under the metric's name
    shown = json.loads(metrics.stdout)[""]["data"]
    assert list(shown) == ["reports/metrics.json"]
    figures = shown["reports/metrics.json"]["data"]
    (name,) = figures
    assert {"challenger", "promoted", "test_rows"} <= set(figures[name])
    assert all(isinstance(v, int | float) for v in figures[name].values())
    # the candidate's loss per epoch is a DVC plot
    plots = dvc("plots", "show", "--json")
    assert plots.returncode == 0, plots.stderr
    assert "models/candidate/losses.csv" in plots.stdout


def _stored(home: LifecycleHome, asset: str, day: dt.date) -> Path:
    return home.assets / asset / f"{day.isoformat()}.parquet"


def test_late_labels_recompute_that_day_and_nothing_else(loop_home) -> None:
    home, _ = loop_home
    sim = FraudSimulator(home.config())
    instance = instance_for(home)
    today = sim.date(DAYS - 1)
    assert late_label_requests(instance, home, today) == []

    past = sim.date(1)
    before = {
        (asset, d): _stored(home, asset, d).read_bytes()
        for asset in ("labeled_examples", "feature_table")
        for d in (sim.date(i) for i in range(DAYS))
    }
    examples = pl.read_parquet(_stored(home, "labeled_examples", past))
    unlabeled = examples.filter(pl.col("label_status") != "labeled")["request_id"].head(5)
    # a label backfill for day 1 lands in the feed of day 2 (inside the maturity window)
    arrival = past + dt.timedelta(days=1)
    writer = LogWriter(home.logs, "backfill")
    writer.write_ground_truth(
        [
            GroundTruthRecord(rid, 1.0, dt.datetime.combine(arrival, dt.time(0, 30), dt.UTC))
            for rid in unlabeled.to_list()
        ]
    )
    writer.close()
    materialize(home, ["ground_truth"], arrival.isoformat())

    context = dg.build_sensor_context(instance=instance, resources={"home": defs.resources["home"]})
    result = late_labels(context)
    assert isinstance(result, dg.SensorResult)
    assert [r.partition_key for r in result.run_requests or []] == [past.isoformat()]
    request = (result.run_requests or [])[0]
    assert set(request.asset_selection or []) == {
        dg.AssetKey("labeled_examples"),
        dg.AssetKey("feature_table"),
        dg.AssetKey("live_quality"),
    }
    assert request.tags["lifecycle/trigger"] == "late_labels"

    materialize(home, LABELS, past.isoformat())
    after = pl.read_parquet(_stored(home, "labeled_examples", past))
    relabeled = after.filter(pl.col("request_id").is_in(unlabeled.implode()))
    assert relabeled["label_status"].unique().to_list() == ["labeled"]
    assert relabeled["is_fraud"].to_list() == [1.0] * 5
    # the other rows of that day are as before; every other day is byte-identical
    rest = after.filter(~pl.col("request_id").is_in(unlabeled.implode()))
    assert rest.equals(examples.filter(~pl.col("request_id").is_in(unlabeled.implode())))
    for (asset, d), data in before.items():
        if d != past:
            assert _stored(home, asset, d).read_bytes() == data, (asset, d)
    assert late_label_requests(instance, home, today) == []
    # idempotent: recomputing again changes nothing
    snapshot = _stored(home, "labeled_examples", past).read_bytes()
    materialize(home, LABELS, past.isoformat())
    assert pl.read_parquet(_stored(home, "labeled_examples", past)).equals(
        pl.read_parquet(snapshot)
    )


def _daemon_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[LifecycleHome, FraudSimulator, dg.DagsterInstance, LogWriter]:
    """A fresh home (maturity 1 day), its simulator, instance and a log writer."""
    from lifecycle_assets.home_setup import init_home

    _isolate(tmp_path / "home", monkeypatch)
    (tmp_path / "lifecycle.yaml").write_text(CONFIG)
    home = init_home(tmp_path / "home", tmp_path / "lifecycle.yaml")
    return home, FraudSimulator(home.config()), instance_for(home), LogWriter(home.logs, "sim")


def _log_unscored_day(writer: LogWriter, sim: FraudSimulator, index: int) -> None:
    """Day `index`'s payments logged unscored (no model yet) and the labels arriving that day."""
    writer.write_predictions(
        [
            PredictionRecord(
                request_id=p.request_id, entity_id=p.card_id, event_time=p.event_time,
                features=dict(p.features), model_version=None, score=None, decision=None,
                logged_at=p.event_time,
            )
            for p in sim.payments(index)
        ]
    )  # fmt: skip
    writer.write_ground_truth(sim.chargebacks_arriving(index))


def test_the_daemon_recomputes_a_day_once_it_matures(tmp_path, monkeypatch) -> None:
    """The daemon ingests each day in its own run (the schedule, or `new_log_partitions`):
    a day's examples are computed before its labels are final. Once the labels of the day
    it matures on are in, the late-label sensor asks for that day — its examples, features
    and live quality — whatever the count of labels, so its live quality counts as matured
    for the staleness trigger and its rows for training; a younger day waits. The daily
    runner takes the same rule (`label_refresh_days`)."""
    home, sim, instance, writer = _daemon_home(tmp_path, monkeypatch)
    for i in range(2):
        day = sim.date(i)
        set_simulated_today(home, day)
        _log_unscored_day(writer, sim, i)
        writer.flush()
        materialize(home, INGEST + LABELS, day.isoformat())
    writer.close()
    first, second = sim.date(0), sim.date(1)
    # Day 0 was computed before it matured; day 1 is young (its labels arrive until day 2).
    requests = late_label_requests(instance, home, second)
    assert [(r.partition_key, r.tags["lifecycle/trigger"]) for r in requests] == [
        (first.isoformat(), "matured")
    ]
    assert requests[0].run_key == f"matured:{first.isoformat()}"
    assert {k.to_user_string() for k in requests[0].asset_selection or []} == set(LABELS)
    quality = instance.fetch_materializations(dg.AssetKey("live_quality"), limit=1).records
    assert quality[0].asset_materialization.metadata["matured"].value is False

    materialize(home, LABELS, first.isoformat())
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("live_quality"), asset_partitions=[first.isoformat()]
        ),
        limit=1,
    ).records[0]
    assert latest.asset_materialization.metadata["matured"].value is True
    examples = pl.read_parquet(_stored(home, "labeled_examples", first))
    assert examples["label_matured"].all()
    assert late_label_requests(instance, home, second) == []


def _sensor_context(instance: dg.DagsterInstance) -> dg.SensorEvaluationContext:
    return dg.build_sensor_context(instance=instance, resources={"home": defs.resources["home"]})


def test_the_daemon_trains_a_day_after_its_ingest_and_the_refresh_it_brings(
    tmp_path, monkeypatch
) -> None:
    """The daemon's training sensors keep the daily runner's order: day D trains only once
    its logs are ingested and the day that matured with them is refreshed (`day_wait`), once
    per day, and never while a run of D is in flight."""
    home, sim, instance, writer = _daemon_home(tmp_path, monkeypatch)
    for i in range(3):
        _log_unscored_day(writer, sim, i)
    writer.close()
    first, second, third = (sim.date(i) for i in range(3))
    set_simulated_today(home, third)  # yesterday: the second day
    staleness = defs.resolve_sensor_def("staleness_retrain")

    # Nothing ingested: the day waits for its ingest.
    skipped = daily_retraining(_sensor_context(instance))
    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message == (
        f"{second.isoformat()}: waiting for its ingest ({', '.join(INGEST + LABELS)} not "
        "materialised)"
    )
    for day in (first, second):  # each ingested on its own day, as the daemon does
        set_simulated_today(home, day)
        materialize(home, INGEST + LABELS, day.isoformat())
    set_simulated_today(home, third)
    # The first day matured with the second day's labels: both sensors wait for its refresh.
    waiting = (
        f"{second.isoformat()}: waiting for the label refresh of {first.isoformat()} (matured)"
    )
    for sensor in (daily_retraining, staleness):
        skipped = sensor(_sensor_context(instance))
        assert isinstance(skipped, dg.SkipReason) and skipped.skip_message == waiting
    # A day whose logs are in the store but not ingested waits for them.
    assert day_wait(instance, home, third) is not None
    assert "waiting for its ingest" in (day_wait(instance, home, third) or "")

    materialize(home, LABELS, first.isoformat())
    assert day_wait(instance, home, second) is None
    result = daily_retraining(_sensor_context(instance))
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests or []
    assert request.run_key == f"train-{second.isoformat()}"
    assert request.partition_key == second.isoformat()
    assert [k.to_user_string() for k in request.asset_selection or []] == TRAINING + SERVING
    assert request.tags["lifecycle/trigger"] == "daily"

    # A run of that day in flight: nothing more is requested for it until it ends.
    running = instance.add_run(
        dg.DagsterRun(
            job_name="lifecycle_loop",
            run_id="in-flight",
            tags={"dagster/partition": second.isoformat()},
            status=dg.DagsterRunStatus.STARTED,
        )
    )
    skipped = daily_retraining(_sensor_context(instance))
    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message == f"{second.isoformat()}: a run of this day is in flight"
    instance.delete_run(running.run_id)

    # Trained by the training stage alone (as a staleness retrain runs it): what the day still
    # lacks, its serving outputs, is asked for in one run after it.
    materialize(home, TRAINING, second.isoformat())
    result = daily_retraining(_sensor_context(instance))
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests or []
    assert request.run_key == f"finish-{second.isoformat()}"
    assert [k.to_user_string() for k in request.asset_selection or []] == SERVING
    # Once they are stored (reported here; building a Bento is tested elsewhere), the day is
    # done: nothing more is asked for it.
    for asset in SERVING:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=asset, partition=second.isoformat())
        )
    skipped = daily_retraining(_sensor_context(instance))
    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message == f"{second.isoformat()}: trained"


def test_served_score_equals_the_batch_score_on_the_feature_table(loop_home) -> None:
    """One feature code path: the artifact's batch transform (training, validation, batch
    scoring) and the serving runtime's per-request path give the same score."""
    from lifecycle_assets.registry.registry import alias_version, load_version
    from lifecycle_assets.serving.requests import PredictRequest
    from lifecycle_assets.serving.runtime import ServingRuntime

    home, _ = loop_home
    cfg = home.config()
    version = alias_version(home, "production")
    assert version is not None
    artifact = load_version(home, cfg.problem.name, version)
    sim = FraudSimulator(cfg)
    table = pl.read_parquet(_stored(home, "feature_table", sim.date(DAYS - 1))).head(64)
    batch = artifact.score(table)
    runtime = ServingRuntime(home, background_loads=False, writer_id="skew-test")
    try:
        served = runtime.predict(
            [
                PredictRequest(
                    request_id=f"skew-{i}",
                    entity_id=row["entity_id"],
                    event_time=row["event_time"],
                    features={c: row[c] for c in cfg.problem.features},
                )
                for i, row in enumerate(table.iter_rows(named=True))
            ]
        )
    finally:
        runtime.close()
    np.testing.assert_allclose([p.score for p in served], batch, rtol=0, atol=1e-6)
    assert os.environ.get("LIFECYCLE_HOME") == str(home.root)
