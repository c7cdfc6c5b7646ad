"""Verify before the alias moves: a tampered, unregistered or wrong-featured model, or a PASS
that is not a paired gate result, is refused and nothing moves."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lifecycle_assets.registry.promotion import PromotionError, promote_or_carry_over
from lifecycle_assets.registry.registry import Registry, model_path, served_ledger
from lifecycle_assets.training.artifact import WEIGHTS
from lifecycle_assets_tests.promotion.helpers import fit_model, labelled_frame, register

DAY = dt.date(2026, 6, 10)
WHEN = dt.datetime(2026, 6, 10, 1, tzinfo=dt.UTC)


def passing(**overrides: object) -> dict:
    return {
        "decision": "PASS",
        "day": DAY.isoformat(),
        "challenger_version": "v2",
        "production_version": "v1",
        "test_split_tag": f"test_split/{DAY}",
        "test_rows_sha256": "a" * 64,
        "n_rows": 500,
        "test_rows": 500,
        "delta_lower_bound": -0.002,
        "margin": 0.01,
        **overrides,
    }


@pytest.fixture
def registry(make_home) -> Registry:
    home = make_home()
    frame = labelled_frame(600, seed=2)
    register(home, fit_model(home, frame, "v1", steps=5), "v1")
    register(home, fit_model(home, frame, "v2", steps=5, seed=1), "v2")
    reg = Registry(home, home.config().problem.name)
    reg.move_alias("production", "v1", actor="t", reason="setup", when=WHEN)
    return reg


def test_a_pass_promotes_and_a_fail_carries_over(registry: Registry) -> None:
    out = promote_or_carry_over(registry, passing(), DAY, actor="t", when=WHEN)
    assert (out.version, out.promoted) == ("v2", True)
    assert registry.alias("production") == "v2"
    later = DAY + dt.timedelta(days=1)
    fail = passing(decision="FAIL", challenger_version="v1", production_version="v2")
    out = promote_or_carry_over(registry, fail, later, actor="t", when=WHEN)
    assert (out.version, out.promoted) == ("v2", False)
    assert served_ledger(registry.home) == {DAY.isoformat(): "v2", later.isoformat(): "v2"}


def test_a_pass_to_shadow_moves_the_shadow_alias_and_carries_production_over(
    registry: Registry,
) -> None:
    out = promote_or_carry_over(
        registry, passing(stage="shadow", shadow_days=2), DAY, actor="t", when=WHEN
    )
    assert (out.version, out.promoted, out.stage, out.shadow) == ("v1", False, "shadow", "v2")
    assert (registry.alias("production"), registry.alias("shadow")) == ("v1", "v2")
    assert served_ledger(registry.home) == {DAY.isoformat(): "v1"}
    moves = len(registry.history())
    # rerun (a retried run): nothing moves twice
    promote_or_carry_over(
        registry, passing(stage="shadow", shadow_days=2), DAY, actor="t", when=WHEN
    )
    assert len(registry.history()) == moves
    # held: another challenger passes while v2 is in shadow; nothing moves
    out = promote_or_carry_over(
        registry, passing(stage="held", challenger_version="v1"), DAY, actor="t", when=WHEN
    )
    assert (out.version, out.promoted, out.shadow) == ("v1", False, "v2")
    assert len(registry.history()) == moves


def test_a_shadow_that_fails_verification_is_refused_before_the_alias_moves(
    registry: Registry,
) -> None:
    weights = model_path(registry.home, registry.model_name, "v2") / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PromotionError, match="v2"):
        promote_or_carry_over(registry, passing(stage="shadow"), DAY, actor="t", when=WHEN)
    assert (registry.alias("production"), registry.alias("shadow")) == ("v1", None)


def test_tampered_weights_are_refused_before_the_alias_moves(registry: Registry) -> None:
    weights = model_path(registry.home, registry.model_name, "v2") / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PromotionError, match="v2"):
        promote_or_carry_over(registry, passing(), DAY, actor="t", when=WHEN)
    assert registry.alias("production") == "v1"
    assert served_ledger(registry.home) == {}


def test_a_changed_manifest_hash_is_still_caught_by_the_registry_record(
    registry: Registry,
) -> None:
    """Weights and manifest replaced consistently: the registry's recorded hash differs."""
    versions = json.loads((registry.dir / "versions.json").read_text())
    versions["v2"]["weights_sha256"] = "0" * 64
    (registry.dir / "versions.json").write_text(json.dumps(versions))
    with pytest.raises(PromotionError, match="differs from the registered"):
        promote_or_carry_over(registry, passing(), DAY, actor="t", when=WHEN)
    assert registry.alias("production") == "v1"


REFUSED = [
    ({"test_rows_sha256": None}, "not a paired gate result"),
    ({"n_rows": 400}, "not the identical rows"),
    ({"delta_lower_bound": -0.02}, "≤ −margin"),
    ({"challenger_version": "v7"}, "not a registered version"),
]


def test_a_pass_that_is_not_a_paired_gate_result_is_refused(registry: Registry) -> None:
    for overrides, words in REFUSED:
        with pytest.raises(PromotionError, match=words):
            promote_or_carry_over(registry, passing(**overrides), DAY, actor="t", when=WHEN)
    assert registry.alias("production") == "v1"
    assert served_ledger(registry.home) == {}
