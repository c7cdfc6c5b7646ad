"""The release process end to end on one real home: models trained and gated by real Dagster
runs (XLA on `PJRT_DEVICE=CPU`), then reviewed, approved, released, rolled back, reproduced
and queried through the `lifecycle models` CLI, with real git, DVC and BentoML underneath.

The tests share one home and run in file order: each starts from the state the previous left.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import Iterator

import dagster as dg
import pytest
import torch

from lifecycle_assets.automation.loop import instance_for, materialize
from lifecycle_assets.cli import main
from lifecycle_assets.defs.partitions import daily
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.defs.resources.io_manager import LifecycleIOManager
from lifecycle_assets.defs.resources.versioning import VersioningResource
from lifecycle_assets.home import LifecycleHome, set_simulated_today
from lifecycle_assets.registry.registry import (
    ModelReferenceError,
    Registry,
    model_path,
    served_ledger,
)
from lifecycle_assets.storage import AssetStore, ModelReference
from lifecycle_assets.training.artifact import WEIGHTS, ModelArtifact, sha256_file
from lifecycle_assets_tests.conftest import subprocess_env
from lifecycle_assets_tests.training.helpers import synthetic

pytestmark = pytest.mark.slow

D1, D2, D3, D4, D5 = (dt.date(2026, 6, 10) + dt.timedelta(days=i) for i in range(5))
CONFIG = """\
windows:
  min_train_rows: 100
  min_test_rows: 100
training:
  epochs: 3
  batch_size: 64
  learning_rate: 0.01
  model: {family: mlp, hidden_units: 24}  # a shape no other test compiles: v1's count is its own
validation:
  margin: 0.05
  bootstrap_samples: 200
"""
TRAINING = ["candidate_model", "validation_report", "production_model"]


def seed_splits(home: LifecycleHome, day: dt.date, seed: int) -> None:
    """Day D's train and test splits, versioned exactly as the split assets version them."""
    versioning = VersioningResource(home=LifecycleHomeResource(workdir=str(home.root)))
    key = day.isoformat()
    for stage, frame in (
        ("train_split", synthetic(900, seed)),
        ("test_split", synthetic(600, seed + 1000)),
    ):

        def write(folder, frame=frame):
            folder.mkdir(parents=True)
            frame.write_parquet(folder / "data.parquet")

        versioning.publish(
            stage, key, f"datasets/{stage}", write, message=f"{stage} {key}", tag=f"{stage}/{key}"
        )
        (home.assets / stage).mkdir(parents=True, exist_ok=True)
        frame.write_parquet(home.assets / stage / f"{key}.parquet")


def run_day(home: LifecycleHome, day: dt.date, seed: int) -> None:
    set_simulated_today(home, day)
    seed_splits(home, day, seed)
    materialize(home, TRAINING, day.isoformat())


def cli(home: LifecycleHome, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["models", *args, "--workdir", str(home.root)])
    out = capsys.readouterr()
    return code, out.out, out.err


def cli_json(home: LifecycleHome, capsys, *args: str):
    code, out, err = cli(home, capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def git_log(home: LifecycleHome) -> str:
    return subprocess.run(
        ["git", "-C", str(home.repo), "log", "--format=%B%x00"],
        capture_output=True, text=True, check=True, env=subprocess_env(home),
    ).stdout  # fmt: skip


def head(home: LifecycleHome) -> str:
    return subprocess.run(
        ["git", "-C", str(home.repo), "rev-parse", "HEAD"],
        capture_output=True, text=True, check=True, env=subprocess_env(home),
    ).stdout.strip()  # fmt: skip


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LifecycleHome]:
    from lifecycle_assets.home_setup import init_home

    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("release")
    for key, value in LifecycleHome(base / "home").tool_env().items():
        mp.setenv(key, value)
    mp.setenv("USER", "alice")
    (base / "lifecycle.yaml").write_text(CONFIG)
    try:
        h = init_home(base / "home", base / "lifecycle.yaml")
        run_day(h, D1, seed=1)  # v1: FIRST_MODEL
        run_day(h, D2, seed=2)  # v2: PASS over v1
        yield h
    finally:
        mp.undo()


def test_the_loop_registers_versions_with_their_training_metadata(home: LifecycleHome) -> None:
    reg = Registry(home, home.config().problem.name)
    assert sorted(reg.versions()) == ["v1", "v2"]
    assert reg.alias("production") == "v2" and reg.alias("candidate") == "v2"
    v1 = reg.versions()["v1"]
    assert v1["train_split_tag"] == f"train_split/{D1}"
    assert v1["train_split_dvc_hash"].endswith(".dir")
    assert v1["training_params"]["epochs"] == 3 and v1["training_params"]["seed"] == 7
    assert v1["training_params"]["model"]["hidden_units"] == 24
    # PJRT_DEVICE is set in the home's environment, so `training.device: auto` took XLA:
    # one graph for the first step (Adam creates its state) and one for every later step.
    assert v1["device"] == "xla" and v1["device_info"]["xla_device_type"] == "CPU"
    assert v1["xla_compilations"] == 2
    assert len(v1["losses"]) == 3 and v1["lockfile_sha256"]
    # The loss curve reaches the UI as numbers per epoch (a table), and drawn (Markdown).
    instance = instance_for(home)
    event = instance.get_latest_materialization_event(dg.AssetKey("candidate_model"))
    assert event is not None and event.asset_materialization is not None
    curve = event.asset_materialization.metadata["loss_curve"]
    assert isinstance(curve, dg.TableMetadataValue)
    assert [r.data["epoch"] for r in curve.records] == [1, 2, 3]
    assert [r.data["loss"] for r in curve.records] == pytest.approx(
        reg.versions()["v2"]["losses"], abs=1e-6
    )
    chart = event.asset_materialization.metadata["loss_chart"]
    assert isinstance(chart, dg.MarkdownMetadataValue)
    assert "data:image/svg+xml;base64," in chart.value and "| 3 |" in chart.value


def load_value(home: LifecycleHome, asset: str, day: dt.date) -> ModelArtifact:
    """A day's model as the assets downstream of it load it: through the IO manager."""
    manager = LifecycleIOManager(home=LifecycleHomeResource(workdir=str(home.root)))
    context = dg.build_input_context(
        asset_key=dg.AssetKey(asset), partition_key=day.isoformat(), asset_partitions_def=daily
    )
    return manager.load_input(context)


def test_a_days_model_is_stored_once_as_a_reference_to_its_version(home: LifecycleHome) -> None:
    reg = Registry(home, "card-fraud")
    store = AssetStore.of(home)
    for day, version in ((D1, "v1"), (D2, "v2")):
        reference = store.read("candidate_model", day.isoformat())
        weights = sha256_file(model_path(home, "card-fraud", version) / WEIGHTS)
        assert reference == ModelReference("card-fraud", version, weights)
        assert reg.versions()[version]["weights_sha256"] == weights
    # the days' values of both model assets are references: no weights file under assets/
    for asset in ("candidate_model", "production_model"):
        names = sorted(p.name for p in store.folder(asset).iterdir())
        assert names == [f"{D1}.json", f"{D2}.json"]
    assert not list(home.assets.rglob(WEIGHTS))
    # loaded through the IO manager: the registered version, its weights
    loaded, registered = load_value(home, "candidate_model", D2), reg.load("v2")
    assert loaded.version == "v2"
    state, expected = loaded.net.state_dict(), registered.net.state_dict()
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in state)
    assert load_value(home, "production_model", D2).version == "v2"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"weights_sha256": "0" * 64}, "are not the ones the reference recorded"),
        ({"version": "v9"}, "no model version v9 in the registry (known: v1, v2)"),
    ],
    ids=["wrong-weights-hash", "unknown-version"],
)
def test_a_tampered_model_reference_is_refused(
    home: LifecycleHome, change: dict[str, str], reason: str
) -> None:
    path = AssetStore.of(home).record_path("candidate_model", D2.isoformat())
    original = path.read_text()
    try:
        path.write_text(json.dumps({**json.loads(original), **change}))
        with pytest.raises(ModelReferenceError) as refused:
            load_value(home, "candidate_model", D2)
        message = str(refused.value)
        version = change.get("version", "v2")
        assert message.startswith(
            f"candidate_model {D2}: the stored reference to card-fraud:{version} is refused: "
        )
        assert reason in message and len(message.splitlines()) == 1
    finally:
        path.write_text(original)


def test_a_reference_to_weights_changed_in_the_model_store_is_refused(
    home: LifecycleHome,
) -> None:
    """The reference matches the registration; the store's file does not: the registration's
    digest (`load_version`) refuses it, in the reference's one line."""
    weights = model_path(home, "card-fraud", "v2") / WEIGHTS
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-8] + b"tampered")
        with pytest.raises(ModelReferenceError) as refused:
            load_value(home, "candidate_model", D2)
        message = str(refused.value)
        assert message.startswith(
            f"candidate_model {D2}: the stored reference to card-fraud:v2 is refused: "
        )
        assert len(message.splitlines()) == 1
    finally:
        weights.write_bytes(original)


def test_a_version_exported_for_a_bento_is_listed_by_bentoml_with_labels(
    home: LifecycleHome,
) -> None:
    """The registry keeps its versions in its own store; the export a Bento build makes
    (`export_model`) puts one into the home's BentoML store with its labels and the digest
    its registration recorded, once: the same export again copies nothing, unless the copy's
    files changed."""
    from lifecycle_assets.registry.registry import recorded_digest
    from lifecycle_assets.serving.bento import export_model

    assert export_model(home, "card-fraud", "v1") is True
    assert export_model(home, "card-fraud", "v2") is True
    assert export_model(home, "card-fraud", "v1") is False
    out = subprocess.run(
        [sys.executable, "-m", "bentoml", "models", "list", "-o", "json"],
        capture_output=True, text=True, env=subprocess_env(home), timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    tags = {m["tag"] for m in json.loads(out.stdout)}
    assert {"card-fraud:v1", "card-fraud:v2"} <= tags
    got = subprocess.run(
        [sys.executable, "-m", "bentoml", "models", "get", "card-fraud:v1", "-o", "json"],
        capture_output=True, text=True, env=subprocess_env(home), timeout=120,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    info = json.loads(got.stdout)
    assert info["labels"]["data_version"] == f"train_split/{D1}"
    assert info["labels"]["device"] == "xla" and info["labels"]["version"] == "v1"
    assert info["metadata"]["artifact_sha256"] == recorded_digest(home, "v1")
    # An exported copy whose files changed in BentoML's store is made again from the registry.
    from lifecycle_assets.training.artifact import artifact_digest

    exported = home.bentoml_home / "models" / "card-fraud" / "v1"
    weights = exported / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    assert export_model(home, "card-fraud", "v1") is True
    assert artifact_digest(exported) == recorded_digest(home, "v1")
    # The stage says which version serves: v2 replaced v1 in production.
    registry = Registry(home, "card-fraud")
    assert (registry.stage("v1"), registry.stage("v2")) == ("archived", "production")


def stage_label(home: LifecycleHome, version: str) -> str:
    return Registry(home, "card-fraud").stage(version)


def test_list_and_show_give_the_review_material(home: LifecycleHome, capsys) -> None:
    rows = cli_json(home, capsys, "list")
    assert [r["version"] for r in rows] == ["v1", "v2"]
    assert rows[1]["aliases"] == ["candidate", "production"]
    assert [r["decision"] for r in rows] == ["FIRST_MODEL", "PASS"]
    shown = cli_json(home, capsys, "show", "v2")
    card = shown["model_card"]
    assert "## Metrics" in card and "Gate decision PASS" in card
    assert f"train_split/{D2}" in card and f"test_split/{D2}" in card
    assert "Hardware: torch-xla" in card and "Limitations" in card
    code, text, _ = cli(home, capsys, "list")
    assert code == 0 and "v2" in text and "production" in text
    # The text form: the alias history, and intervals at the card's precision.
    code, text, _ = cli(home, capsys, "show", "v2")
    assert code == 0 and "Alias history:" in text
    assert re.search(r"production: v1 -> v2 {2}by \S+", text), text
    assert re.search(r"\(interval \[0\.\d{4}, 0\.\d{4}\]\)", text), text
    assert not re.search(r"\d\.\d{7}", text), "a figure printed past the card's precision"


def test_round_trip_promote_rollback_and_served_at(home: LifecycleHome, capsys) -> None:
    assert cli_json(home, capsys, "served-at", str(D1))["version"] == "v1"
    assert cli_json(home, capsys, "served-at", str(D2))["version"] == "v2"
    before = cli_json(home, capsys, "served-at", "2026-06-09")
    assert before["version"] is None

    set_simulated_today(home, D3)
    out = cli_json(home, capsys, "rollback", "--to", "v1", "--reason", "v2 declines too much")
    assert out["event"]["from"] == "v2" and out["event"]["to"] == "v1"
    assert out["event"]["actor"] == "alice"
    assert out["event"]["time"] == f"{D3}T12:00:00+00:00"
    # By the loop's clock: v2 until noon of D3, v1 after.
    assert cli_json(home, capsys, "served-at", f"{D3}T11:59")["version"] == "v2"
    after = cli_json(home, capsys, "served-at", str(D3))
    assert after["version"] == "v1" and after["reason"] == "v2 declines too much"
    assert cli_json(home, capsys, "served-at", "now")["version"] == "v1"
    # The move is a commit naming actor, time, reason, from and to ...
    assert f"registry: production v2 → v1 by alice at {D3}T12:00:00+00:00: v2 declines" in (
        git_log(home)
    )
    # ... the versioned production output and the served ledger hold v1 ...
    assert json.loads((home.repo / "models/production/model.json").read_text())["version"] == "v1"
    assert served_ledger(home)[str(D3)] == "v1"
    # ... the stages follow the rollback ...
    assert stage_label(home, "v1") == "production" and stage_label(home, "v2") == "archived"
    # ... and the UI sees a runless materialisation of production_model for the loop's day.
    event = instance_for(home).get_latest_materialization_event(dg.AssetKey("production_model"))
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.partition == str(D3)
    assert event.asset_materialization.metadata["model_version"].value == "v1"
    assert event.asset_materialization.metadata["actor"].value == "alice"
    assert event.run_id == ""  # runless

    # Releasing v2 again: the gate passed it, so auto mode allows it without --force.
    again = cli_json(home, capsys, "release", "v2", "--reason", "fixed the thresholds")
    assert again["event"]["to"] == "v2"
    assert cli_json(home, capsys, "served-at", "now")["version"] == "v2"
    # rollback without --to goes back to the version before the current one.
    back = cli_json(home, capsys, "rollback", "--reason", "again")
    assert back["event"]["to"] == "v1"
    cli_json(home, capsys, "release", "v2", "--reason", "restore")


def test_rollback_refuses_a_tampered_artifact_and_moves_nothing(
    home: LifecycleHome, capsys
) -> None:
    weights = model_path(home, "card-fraud", "v1") / WEIGHTS
    original = weights.read_bytes()
    commit = head(home)
    try:
        weights.write_bytes(original[:-8] + b"tampered")
        code, out, err = cli(home, capsys, "rollback", "--to", "v1", "--reason", "x")
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1 and "v1" in err
        assert "tampered or corrupt" in err or "hash" in err
        reg = Registry(home, "card-fraud")
        assert reg.alias("production") == "v2"
        assert head(home) == commit
        code, _, err = cli(home, capsys, "reproduce", "v1")
        assert code == 2 and "tampered or corrupt" in err
    finally:
        weights.write_bytes(original)


@pytest.mark.parametrize(
    "args",
    [
        ("show", "../../etc/passwd"),
        ("release", "v1;rm -rf /"),
        ("approve", "v0"),
        ("rollback", "--to", "v1/../v2", "--reason", "x"),
        ("reproduce", "V1"),
        ("show", "v99"),
        ("release", "v2"),  # already in production
    ],
)
def test_bad_arguments_get_one_line_and_touch_nothing(home: LifecycleHome, capsys, args) -> None:
    commit = head(home)
    code, out, err = cli(home, capsys, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert head(home) == commit


def test_forced_release_writes_a_forced_decision_record(home: LifecycleHome, capsys) -> None:
    set_simulated_today(home, D3)
    code, _, err = cli(home, capsys, "release", "v1", "--force")
    assert code == 2 and "--reason" in err
    out = cli_json(home, capsys, "release", "v1", "--force", "--reason", "incident 42")
    assert out["event"]["to"] == "v1"
    record = json.loads((home.assets / "validation_report" / f"{D3}.json").read_text())
    assert record["decision"] == "FORCED"
    assert record["reason"] == "incident 42" and record["actor"] == "alice"
    assert record["challenger_version"] == "v1" and record["production_version"] == "v2"
    assert record["day"] == str(D3) and record["decided_at"] == f"{D3}T12:00:00+00:00"
    assert (home.repo / "registry" / "decisions" / f"{D3}-v1.json").is_file()
    cli_json(home, capsys, "release", "v2", "--reason", "incident over")


def test_a_release_stores_a_reference_to_the_version_that_serves(home: LifecycleHome) -> None:
    # the day's production_model value, written by the CLI's releases outside any run
    store = AssetStore.of(home)
    assert store.read("production_model", D3.isoformat()) == Registry(home, "card-fraud").reference(
        "v2"
    )
    assert not store.model_path("production_model", D3.isoformat()).exists()
    assert load_value(home, "production_model", D3).version == "v2"


def test_reproduce_retrains_bitwise_on_the_recorded_device_and_close_on_eager(
    home: LifecycleHome, capsys
) -> None:
    same = cli_json(home, capsys, "reproduce", "v1")
    assert same["matches"] and same["bitwise_identical"]
    assert same["device_used"] == same["device_recorded"] == "xla"
    assert same["data_hash_restored"] == same["data_hash_recorded"]
    eager = cli_json(home, capsys, "reproduce", "v1", "--device", "cpu")
    assert eager["device_used"] == "cpu" and eager["comparison"].startswith("scores within")
    assert eager["max_score_diff"] <= 1e-6, eager
    assert eager["matches"]


def test_manual_approval_holds_a_passing_challenger_until_approved(
    home: LifecycleHome, capsys
) -> None:
    config = home.config_path.read_text()
    home.config_path.write_text(config + "registry:\n  approval: manual\n")
    try:
        run_day(home, D4, seed=4)  # v3 passes the gate but must wait
        reg = Registry(home, "card-fraud")
        assert reg.alias("production") == "v2"
        assert served_ledger(home)[str(D4)] == "v2"
        assert reg.approval("v3")["status"] == "awaiting_approval"
        code, _, err = cli(home, capsys, "release", "v3")
        assert code == 2 and "not approved" in err
        approved = cli_json(home, capsys, "approve", "v3", "--reason", "card reviewed")
        assert approved["approval"]["status"] == "approved"
        assert "registry: approve v3 by alice" in git_log(home)
        released = cli_json(home, capsys, "release", "v3")
        assert released["event"]["to"] == "v3"
        assert reg.approval("v3")["status"] == "released"

        # From the Dagster UI: the approve_model job with the version as run config.
        run_day(home, D5, seed=5)
        assert reg.alias("production") == "v3" and reg.approval("v4")["status"] == (
            "awaiting_approval"
        )
        from lifecycle_assets.definitions import defs

        result = defs.resolve_job_def("approve_model").execute_in_process(
            instance=instance_for(home),
            run_config={"ops": {"approve_and_release": {"config": {"version": "v4"}}}},
        )
        assert result.success
        assert reg.alias("production") == "v4"
        mats = result.get_asset_materialization_events()
        assert [m.asset_key for m in mats] == [dg.AssetKey("production_model")]
        assert mats[0].partition == str(D5)
    finally:
        home.config_path.write_text(config)


def test_served_at_rejects_a_malformed_time(home: LifecycleHome, capsys) -> None:
    code, _, err = cli(home, capsys, "served-at", "yesterday-ish")
    assert code == 2 and "expected now, YYYY-MM-DD" in err


def test_the_cli_runs_as_a_program(home: LifecycleHome) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lifecycle_assets.cli", "models", "served-at", "now",
         "--workdir", str(home.root), "--json"],
        capture_output=True, text=True, env=subprocess_env(home), timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["version"] == "v4"
