"""The model registry: numbered immutable versions kept in the registry's own model store in
the home, audited alias moves, the stage each version is in, and the served-version ledger.

The registry never touches BentoML (a Bento build exports a version: `serving/bento.py`), so
every test's store is its home's, under `tmp_path`, whatever ran before it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.registry.registry import (
    MOVE_TICK,
    Registry,
    RegistryError,
    alias_version,
    bento_model_tag,
    load_version,
    model_path,
    record_served,
    recorded_digest,
    served_before,
    served_ledger,
    validate_version,
    verify_versions,
)
from lifecycle_assets.training.artifact import (
    ArtifactError,
    ModelArtifact,
    artifact_digest,
    build_net,
    load_artifact,
    save_artifact,
    sha256_file,
)
from lifecycle_assets.training.features import Preprocessor

NAME = "card-fraud"
UTC = dt.UTC
SECOND = dt.timedelta(seconds=1)
FRAME = pl.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0], "country": ["DE", "FR", "DE", "US"]})


@pytest.fixture
def home(tmp_path) -> LifecycleHome:
    return LifecycleHome(tmp_path / "home")


def make_artifact(version: str, seed: int = 0) -> ModelArtifact:
    """A train-free artifact: fitted preprocessing, seeded random weights."""
    import torch

    torch.manual_seed(seed)
    pre = Preprocessor.fit(FRAME, ("amount",), ("country",))
    architecture = {"embedding_dim": 2, "hidden_units": 4}
    return ModelArtifact(
        task="binary",
        preprocessor=pre,
        net=build_net(pre, architecture),
        architecture=architecture,
        thresholds={"review": 0.3, "decline": 0.7},
        version=version,
    )


def stage(tmp_path, version: str, seed: int = 0) -> tuple:
    directory = tmp_path / "staged" / f"{version}-{seed}"
    artifact = make_artifact(version, seed)
    digest = save_artifact(artifact, directory)
    return directory, artifact, digest


def store_tags(home: LifecycleHome) -> list[str]:
    """`NAME:vN` of every version in the home's registry store (staging folders are hidden)."""
    folder = home.models / NAME
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return [f"{NAME}:{n}" for n in names if not n.startswith(".")]


def test_versions_are_numbered_from_v1(tmp_path, home):
    registry = Registry(home, NAME)
    assert registry.versions() == {}
    assert registry.next_version() == "v1"
    for expected in ("v1", "v2", "v3"):
        version = registry.next_version()
        assert version == expected
        directory, _, _ = stage(tmp_path, version)
        assert registry.register(directory, {"source": "test"}) == expected
    assert list(registry.versions()) == ["v1", "v2", "v3"]
    assert registry.next_version() == "v4"


def test_next_version_counts_numerically_not_lexically(tmp_path, home):
    registry = Registry(home, NAME)
    for i in range(1, 11):
        directory, _, _ = stage(tmp_path, f"v{i}")
        registry.register(directory, {})
    assert registry.next_version() == "v11"


def test_register_keeps_the_files_once_in_the_registrys_store(tmp_path, home):
    registry = Registry(home, NAME)
    directory, artifact, digest = stage(tmp_path, "v1")
    registry.register(directory, {"train_split": "abc123", "note": None})

    assert store_tags(home) == [f"{NAME}:v1"]
    assert registry.stage("v1") == "registered"
    whole = artifact_digest(directory)
    assert artifact_digest(model_path(home, NAME, "v1")) == whole
    # Nothing goes to BentoML at registration: a Bento build exports the version.
    assert not (home.bentoml_home / "models").exists()
    assert registry.versions() == {
        "v1": {
            "weights_sha256": digest,
            "artifact_sha256": whole,
            "train_split": "abc123",
            "note": None,
        }
    }
    assert model_path(home, NAME, "v1").is_relative_to(home.models)

    loaded = load_version(home, NAME, "v1")
    assert loaded.version == "v1"
    np.testing.assert_array_equal(loaded.score(FRAME), artifact.score(FRAME))
    assert registry.load("v1").version == "v1"


def test_two_homes_in_one_process_keep_separate_stores(tmp_path):
    first, second = LifecycleHome(tmp_path / "a"), LifecycleHome(tmp_path / "b")
    Registry(first, NAME).register(stage(tmp_path, "v1", seed=1)[0], {})
    Registry(second, NAME).register(stage(tmp_path, "v1", seed=2)[0], {})
    Registry(second, NAME).register(stage(tmp_path, "v2", seed=3)[0], {})
    assert store_tags(first) == [f"{NAME}:v1"]
    assert store_tags(second) == [f"{NAME}:v1", f"{NAME}:v2"]
    with pytest.raises(RegistryError, match="not in the registry's model store"):
        load_version(first, NAME, "v2")


def test_reregistering_the_same_artifact_is_a_no_op(tmp_path, home):
    registry = Registry(home, NAME)
    directory, _, _ = stage(tmp_path, "v1")
    registry.register(directory, {"run": "first"})
    assert registry.register(directory, {"run": "second"}) == "v1"
    assert registry.versions()["v1"]["run"] == "first"
    assert store_tags(home) == [f"{NAME}:v1"]


def test_reregistering_a_version_with_different_weights_is_refused(tmp_path, home):
    registry = Registry(home, NAME)
    registry.register(stage(tmp_path, "v1", seed=1)[0], {})
    before = registry.versions()
    with pytest.raises(RegistryError, match="already registered with a different artifact"):
        registry.register(stage(tmp_path, "v1", seed=2)[0], {})
    assert registry.versions() == before
    assert store_tags(home) == [f"{NAME}:v1"]


def test_a_tampered_store_copy_is_refused_at_load(tmp_path, home):
    registry = Registry(home, NAME)
    registry.register(stage(tmp_path, "v1")[0], {})
    weights = model_path(home, NAME, "v1") / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="does not match the registry"):
        load_version(home, NAME, "v1")


def flip_weights(folder: Path) -> dict:
    """Change one weight byte and recompute the manifest's weights hash (returned, unsaved)."""
    weights = folder / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    manifest = json.loads((folder / "model.json").read_text())
    manifest["weights_sha256"] = sha256_file(weights)
    return manifest


def test_a_consistently_rewritten_manifest_is_refused_at_load(tmp_path, home):
    """The attack the weights hash alone misses: weights flipped, the manifest's weights hash
    recomputed and the thresholds set to approve everything. The registry's digest covers
    both files, so the version never loads."""
    registry = Registry(home, NAME)
    registry.register(stage(tmp_path, "v1")[0], {})
    folder = model_path(home, NAME, "v1")
    manifest = flip_weights(folder)
    manifest["thresholds"] = {"review": 0.99, "decline": 1.0}
    (folder / "model.json").write_text(json.dumps(manifest))
    load_artifact(folder)  # self-consistent on its own ...
    with pytest.raises(ArtifactError, match="does not match the registry"):
        load_version(home, NAME, "v1")  # ... but not what was registered


def test_a_version_without_a_recorded_digest_is_not_loaded(tmp_path, home):
    registry = Registry(home, NAME)
    registry.register(stage(tmp_path, "v1")[0], {})
    versions = registry.versions()
    del versions["v1"]["artifact_sha256"]
    (registry.dir / "versions.json").write_text(json.dumps(versions))
    with pytest.raises(RegistryError, match="disagrees with its history"):
        load_version(home, NAME, "v1")


def test_a_tamper_of_every_file_is_refused_by_history(tmp_path, home):
    """Weights, manifest and the registry's digest rewritten consistently: only the
    registration commit in git still says what was registered."""
    registry = Registry(home, NAME)
    registry.register(stage(tmp_path, "v1")[0], {})
    registry.register(stage(tmp_path, "v2", seed=2)[0], {})
    folder = model_path(home, NAME, "v1")
    manifest = flip_weights(folder)
    (folder / "model.json").write_text(json.dumps(manifest))
    digest = artifact_digest(folder)
    versions = registry.versions()
    versions["v1"].update(artifact_sha256=digest, weights_sha256=manifest["weights_sha256"])
    (registry.dir / "versions.json").write_text(json.dumps(versions))
    with pytest.raises(RegistryError, match="disagrees with its history for v1"):
        load_version(home, NAME, "v1")
    report = verify_versions(home, NAME)
    assert [(r["version"], r["ok"]) for r in report] == [("v1", False), ("v2", True)]
    assert "history" in report[0]["reason"]


def test_a_version_missing_from_history_is_not_loaded(tmp_path, home):
    """A version written into versions.json by hand (no registration commit) is refused."""
    registry = Registry(home, NAME)
    registry.register(stage(tmp_path, "v1")[0], {})
    versions = registry.versions()
    versions["v2"] = dict(versions["v1"])
    (registry.dir / "versions.json").write_text(json.dumps(versions))
    with pytest.raises(RegistryError, match="not in the registry's history"):
        recorded_digest(home, "v2")


def test_thresholds_outside_zero_one_are_refused(tmp_path):
    directory, _, _ = stage(tmp_path, "v1")
    manifest = json.loads((directory / "model.json").read_text())
    manifest["thresholds"] = {"review": 5.0, "decline": 5.0}
    (directory / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="not 0 ≤ review ≤ decline ≤ 1"):
        load_artifact(directory)


def test_load_of_an_unknown_version(home):
    with pytest.raises(RegistryError, match="not in the registry's model store"):
        load_version(home, NAME, "v9")


def test_register_refuses_a_directory_without_a_manifest(tmp_path, home):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError):
        Registry(home, NAME).register(tmp_path / "empty", {})
    assert Registry(home, NAME).versions() == {}


def test_register_refuses_an_artifact_with_an_invalid_version(tmp_path, home):
    directory = tmp_path / "bad"
    save_artifact(make_artifact("../v1"), directory)
    with pytest.raises(RegistryError, match="invalid model version"):
        Registry(home, NAME).register(directory, {})
    assert not home.root.exists()


def test_a_model_name_that_is_no_folder_name_is_refused(tmp_path, home):
    with pytest.raises(RegistryError, match="invalid model name"):
        Registry(home, "..").register(stage(tmp_path, "v1")[0], {})
    with pytest.raises(RegistryError, match="invalid model name"):
        load_version(home, ".", "v1")


# --- aliases ---------------------------------------------------------------------------------


def test_move_alias_records_history_and_served_at_answers_by_time(tmp_path, home):
    registry = Registry(home, NAME)
    for version in ("v1", "v2"):
        registry.register(stage(tmp_path, version)[0], {})
    t1 = dt.datetime(2026, 6, 1, 12, tzinfo=UTC)
    t2 = dt.datetime(2026, 6, 3, 12, tzinfo=UTC)
    t3 = dt.datetime(2026, 6, 5, 12, tzinfo=UTC)

    first = registry.move_alias("production", "v1", actor="loop", reason="FIRST_MODEL", when=t1)
    registry.move_alias("production", "v2", actor="loop", reason="PASS", when=t2)
    registry.move_alias("production", "v1", actor="alice", reason="rollback: bad v2", when=t3)

    assert first == {
        "alias": "production",
        "from": None,
        "to": "v1",
        "actor": "loop",
        "reason": "FIRST_MODEL",
        "time": t1.isoformat(),
    }
    history = registry.history()
    assert [(e["from"], e["to"], e["actor"], e["reason"]) for e in history] == [
        (None, "v1", "loop", "FIRST_MODEL"),
        ("v1", "v2", "loop", "PASS"),
        ("v2", "v1", "alice", "rollback: bad v2"),
    ]
    assert [e["time"] for e in history] == [t.isoformat() for t in (t1, t2, t3)]
    assert registry.alias("production") == "v1"
    assert alias_version(home, "production") == "v1"
    assert registry.aliases()["production"] == {
        "version": "v1",
        "since": t3.isoformat(),
        "actor": "alice",
    }

    second = dt.timedelta(seconds=1)
    assert registry.served_at(t1 - second) is None
    assert registry.served_at(t1) == "v1"
    assert registry.served_at(t2 - second) == "v1"
    assert registry.served_at(t2) == "v2"
    assert registry.served_at(t3 - second) == "v2"
    assert registry.served_at(t3 + dt.timedelta(days=100)) == "v1"
    # a time in another zone is compared as the same instant
    assert registry.served_at(t2.astimezone(dt.timezone(dt.timedelta(hours=-5)))) == "v2"


def test_a_move_at_the_same_instant_is_stamped_after_the_one_it_follows(tmp_path, home):
    """A frozen clock (a demo home's simulated day): a rollback read at the instant of the
    promotion it undoes is stamped just after it, so the log's order is the times' order
    and `served_at` at the promotion's instant still answers the promoted version."""
    registry = Registry(home, NAME)
    for version in ("v1", "v2"):
        registry.register(stage(tmp_path, version)[0], {})
    t = dt.datetime(2026, 6, 3, 12, tzinfo=UTC)
    registry.move_alias("production", "v1", actor="loop", reason="FIRST_MODEL", when=t)
    promoted = registry.move_alias("production", "v2", actor="loop", reason="PASS", when=t)
    undone = registry.move_alias("production", "v1", actor="alice", reason="rollback", when=t)
    times = [dt.datetime.fromisoformat(e["time"]) for e in registry.history()]
    assert times == [t, t + MOVE_TICK, t + 2 * MOVE_TICK]
    assert promoted["time"] < undone["time"]
    assert registry.served_at(t + MOVE_TICK) == "v2"
    assert registry.served_at(t + 2 * MOVE_TICK) == "v1"
    # an earlier time (a clock that stepped back) is ordered after the last move too
    back = registry.move_alias("production", "v2", actor="bob", reason="again", when=t - SECOND)
    assert dt.datetime.fromisoformat(back["time"]) == t + 3 * MOVE_TICK


def test_aliases_are_independent(tmp_path, home):
    registry = Registry(home, NAME)
    for version in ("v1", "v2"):
        registry.register(stage(tmp_path, version)[0], {})
    t = dt.datetime(2026, 6, 1, tzinfo=UTC)
    registry.move_alias("production", "v1", actor="loop", reason="first", when=t)
    registry.move_alias("candidate", "v2", actor="loop", reason="review", when=t)
    assert (registry.alias("production"), registry.alias("candidate")) == ("v1", "v2")
    assert registry.served_at(t) == "v1"
    assert registry.served_at(t, alias="candidate") == "v2"


def test_clearing_an_alias(tmp_path, home):
    registry = Registry(home, NAME)
    registry.register(stage(tmp_path, "v1")[0], {})
    t = dt.datetime(2026, 6, 1, tzinfo=UTC)
    registry.move_alias("candidate", "v1", actor="loop", reason="review", when=t)
    event = registry.move_alias(
        "candidate", None, actor="bob", reason="rejected", when=t + dt.timedelta(hours=1)
    )
    assert (event["from"], event["to"]) == ("v1", None)
    assert registry.alias("candidate") is None
    assert "candidate" not in registry.aliases()
    assert registry.served_at(t + dt.timedelta(hours=2), alias="candidate") is None


@pytest.mark.parametrize(
    ("alias", "version", "match"),
    [
        ("staging", "v1", "unknown alias"),
        ("production", "v2", "no such version"),
        ("production", "../v1", "invalid model version"),
    ],
)
def test_move_alias_refuses_bad_moves_without_writing(tmp_path, home, alias, version, match):
    registry = Registry(home, NAME)
    registry.register(stage(tmp_path, "v1")[0], {})
    with pytest.raises(RegistryError, match=match):
        registry.move_alias(alias, version, actor="x", reason="y", when=dt.datetime.now(UTC))
    assert registry.history() == []
    assert registry.aliases() == {}


def test_history_file_is_one_json_object_per_line(tmp_path, home):
    registry = Registry(home, NAME)
    registry.register(stage(tmp_path, "v1")[0], {})
    for hour in range(3):
        registry.move_alias(
            "production",
            "v1",
            actor="loop",
            reason=f"tick {hour}",
            when=dt.datetime(2026, 6, 1, hour, tzinfo=UTC),
        )
    lines = (home.repo / "registry" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["reason"] for line in lines] == ["tick 0", "tick 1", "tick 2"]


# --- version names ---------------------------------------------------------------------------

INVALID_VERSIONS = [
    "../v1",
    "v0",
    "v1/..",
    "latest",
    "",
    "v01",
    "V1",
    "v1 ",
    "v-1",
    "v1.0",
    "/v1",
    "v1234567890",
    None,
    3,
]


@pytest.mark.parametrize("version", INVALID_VERSIONS, ids=[repr(v) for v in INVALID_VERSIONS])
def test_invalid_versions_are_refused_before_touching_the_filesystem(tmp_path, version):
    home = LifecycleHome(tmp_path / "home")
    with pytest.raises(RegistryError, match="invalid model version"):
        validate_version(version)
    with pytest.raises(RegistryError, match="invalid model version"):
        bento_model_tag(NAME, version)
    with pytest.raises(RegistryError, match="invalid model version"):
        load_version(home, NAME, version)
    with pytest.raises(RegistryError, match="invalid model version"):
        Registry(home, NAME).load(version)
    with pytest.raises(RegistryError, match="invalid model version"):
        record_served(home, dt.date(2026, 6, 1), version)
    assert not home.root.exists()


@pytest.mark.parametrize("version", ["v1", "v9", "v10", "v123456789"])
def test_valid_versions(version):
    assert validate_version(version) == version
    assert bento_model_tag(NAME, version) == f"{NAME}:{version}"


# --- the served ledger -----------------------------------------------------------------------


def test_record_served_and_served_before_chain(home):
    d = dt.date(2026, 6, 10)
    assert served_ledger(home) == {}
    assert served_before(home, d) is None

    record_served(home, d, "v1")
    record_served(home, d + dt.timedelta(days=1), "v1")
    record_served(home, d + dt.timedelta(days=3), "v2")

    assert served_ledger(home) == {"2026-06-10": "v1", "2026-06-11": "v1", "2026-06-13": "v2"}
    assert served_before(home, d) is None  # nothing decided before the first day
    assert served_before(home, d + dt.timedelta(days=1)) == "v1"
    assert served_before(home, d + dt.timedelta(days=3)) == "v1"  # the 12th had no decision
    assert served_before(home, d + dt.timedelta(days=4)) == "v2"
    assert served_before(home, d + dt.timedelta(days=400)) == "v2"


def test_record_served_replays_idempotently(home):
    d = dt.date(2026, 6, 10)
    record_served(home, d, "v1")
    record_served(home, d + dt.timedelta(days=1), "v2")
    record_served(home, d + dt.timedelta(days=1), "v3")  # the day re-run: last decision wins
    assert served_ledger(home) == {"2026-06-10": "v1", "2026-06-11": "v3"}
    assert served_before(home, d + dt.timedelta(days=2)) == "v3"


def test_an_entry_that_breaks_the_contract_is_not_registered(tmp_path, home) -> None:
    registry = Registry(home, NAME)
    directory = stage(tmp_path, "v1")[0]
    with pytest.raises(RegistryError, match="registry entry: train_rows: Input should be"):
        registry.register(directory, {"train_rows": "many"})
    with pytest.raises(RegistryError, match="registry entry: day: Input should be a valid date"):
        registry.register(directory, {"day": "yesterday"})
    assert registry.versions() == {}
    assert store_tags(home) == []  # nothing stored either
    assert registry.register(directory, {"day": "2026-06-10", "train_rows": 10}) == "v1"


def stages(registry: Registry) -> dict[str, str]:
    return {version: registry.stage(version) for version in registry.versions()}


def test_the_stage_follows_production(tmp_path, home):
    registry = Registry(home, NAME)
    for version in ("v1", "v2", "v3"):
        registry.register(stage(tmp_path, version)[0], {})
    assert stages(registry) == {"v1": "registered", "v2": "registered", "v3": "registered"}
    t = dt.datetime(2026, 6, 1, 12, tzinfo=UTC)

    registry.move_alias("production", "v1", actor="loop", reason="FIRST_MODEL", when=t)
    registry.move_alias("candidate", "v2", actor="loop", reason="trained", when=t)
    assert stages(registry) == {"v1": "production", "v2": "registered", "v3": "registered"}
    registry.move_alias("production", "v2", actor="loop", reason="PASS", when=t + SECOND)
    assert stages(registry) == {"v1": "archived", "v2": "production", "v3": "registered"}
    registry.move_alias("production", "v1", actor="alice", reason="rollback", when=t + 2 * SECOND)
    assert stages(registry) == {"v1": "production", "v2": "archived", "v3": "registered"}

    # The stage is read from the registry's record, not written anywhere: the files the
    # registry verifies are as registered, and the version still loads against its digest.
    assert artifact_digest(model_path(home, NAME, "v1")) == recorded_digest(home, "v1")
    assert registry.load("v1").version == "v1"


def test_a_move_a_crash_cut_short_leaves_the_stages_as_before(tmp_path, home):
    """A kill between the history line and aliases.json: the pending line is not a move, so
    no stage changes until the move completes."""
    registry = Registry(home, NAME)
    for version in ("v1", "v2"):
        registry.register(stage(tmp_path, version)[0], {})
    t = dt.datetime(2026, 6, 1, 12, tzinfo=UTC)
    registry.move_alias("production", "v1", actor="loop", reason="FIRST_MODEL", when=t)
    pending = {"alias": "production", "from": "v1", "to": "v2", "actor": "loop"}
    with open(registry.dir / "history.jsonl", "a") as fh:
        fh.write(json.dumps({**pending, "reason": "PASS", "time": t.isoformat()}) + "\n")
    assert stages(registry) == {"v1": "production", "v2": "registered"}


def test_the_version_trained_from_the_same_inputs_is_found_and_its_files_copied(tmp_path, home):
    """A rerun of a day whose challenger is registered finds it by its training inputs and
    gets the files it was registered with (not the config the store keeps beside them)."""
    registry = Registry(home, NAME)
    registry.register(stage(tmp_path, "v1", seed=1)[0], {"training_inputs": "a" * 64})
    directory, artifact, _ = stage(tmp_path, "v2", seed=2)
    (directory / "model_card.md").write_text("# v2\n")
    registry.register(directory, {"training_inputs": "b" * 64})
    registry.register(stage(tmp_path, "v3", seed=3)[0], {})  # before the digest was recorded
    assert registry.trained_from("b" * 64) == "v2"
    assert registry.trained_from("c" * 64) is None

    copied = registry.copy_registered("v2", tmp_path / "copy")
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == sorted(
        p.name for p in directory.iterdir()
    )
    assert artifact_digest(tmp_path / "copy") == artifact_digest(directory)
    assert (tmp_path / "copy" / "model_card.md").read_text() == "# v2\n"
    np.testing.assert_array_equal(copied.score(FRAME), artifact.score(FRAME))


def test_pointing_an_alias_where_it_points_adds_no_move(tmp_path, home):
    registry = Registry(home, NAME)
    for version in ("v1", "v2"):
        registry.register(stage(tmp_path, version)[0], {})
    t = dt.datetime(2026, 6, 1, tzinfo=UTC)
    first = registry.point("candidate", "v1", actor="run-1", reason="trained", when=t)
    again = registry.point("candidate", "v1", actor="run-2", reason="trained", when=t + SECOND)
    assert again == first and len(registry.history()) == 1
    moved = registry.point("candidate", "v2", actor="run-3", reason="trained", when=t + SECOND)
    assert (moved["from"], moved["to"]) == ("v1", "v2") and len(registry.history()) == 2
