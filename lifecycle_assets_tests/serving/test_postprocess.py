"""The post-processing chain, step by step: calibration → thresholds → business rules."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from lifecycle_assets.config import ConfigError, PostprocessingConfig, parse_config
from lifecycle_assets.serving.postprocess import (
    ALLOW_LIST,
    DENY_LIST,
    BusinessRules,
    CalibrationError,
    PostProcessor,
    calibrate,
    threshold_decisions,
)
from lifecycle_assets_tests.serving.helpers import features, make_artifact

THRESHOLDS = {"review": 0.3, "decline": 0.7}


def rules(text: str) -> BusinessRules:
    return BusinessRules.from_config(PostprocessingConfig.model_validate(yaml.safe_load(text)))


# --- step 1: calibration ------------------------------------------------------------------


def test_no_calibration_is_the_identity() -> None:
    scores = np.array([0.0, 0.2, 0.9])
    assert calibrate(scores, None) is scores
    assert calibrate(scores, {}) is scores


def test_platt_calibration() -> None:
    scores = np.array([0.1, 0.5, 0.9])
    # a=1, b=0 is the identity; b shifts the logit.
    np.testing.assert_allclose(calibrate(scores, {"method": "platt", "a": 1, "b": 0}), scores)
    shifted = calibrate(scores, {"method": "platt", "a": 1.0, "b": np.log(3)})
    np.testing.assert_allclose(shifted[1], 0.75)
    assert np.all(np.diff(shifted) > 0)  # monotone
    extreme = calibrate(np.array([0.0, 1.0]), {"method": "platt", "a": 2, "b": 0})
    assert np.all(np.isfinite(extreme))


def test_isotonic_calibration_interpolates_and_clamps() -> None:
    cal = {"method": "isotonic", "x": [0.0, 0.5, 1.0], "y": [0.0, 0.2, 1.0]}
    np.testing.assert_allclose(
        calibrate(np.array([0.25, 0.5, 0.75, 1.5]), cal), [0.1, 0.2, 0.6, 1.0]
    )


@pytest.mark.parametrize(
    "cal",
    [
        {"method": "beta"},
        {"method": "isotonic", "x": [0.0, 1.0], "y": [0.0]},
        {"method": "isotonic", "x": [1.0, 0.0], "y": [0.0, 1.0]},
    ],
)
def test_bad_calibration_is_refused(cal: dict) -> None:
    with pytest.raises(CalibrationError):
        calibrate(np.array([0.5]), cal)


# --- step 2: thresholds -------------------------------------------------------------------


def test_thresholds_are_inclusive_lower_bounds() -> None:
    probs = np.array([0.0, 0.2999, 0.3, 0.6999, 0.7, 1.0])
    assert threshold_decisions(probs, THRESHOLDS) == [
        "approve",
        "approve",
        "review",
        "review",
        "decline",
        "decline",
    ]


# --- step 3: business rules ---------------------------------------------------------------


def test_no_rules_change_nothing() -> None:
    assert rules("{}").apply("review", "card-1", features()) == ("review", None)


def test_deny_list_declines_and_names_itself() -> None:
    r = rules("deny_entities: [card-bad]")
    assert r.apply("approve", "card-bad", features()) == ("decline", DENY_LIST)
    assert r.apply("decline", "card-bad", features()) == ("decline", None)  # no change
    assert r.apply("approve", "card-ok", features()) == ("approve", None)


def test_allow_list_approves() -> None:
    r = rules("allow_entities: [card-vip]")
    assert r.apply("decline", "card-vip", features()) == ("approve", ALLOW_LIST)
    assert r.apply("review", "card-x", features()) == ("review", None)


def test_caps_raise_to_at_least_their_decision() -> None:
    r = rules("caps: [{name: big, feature: amount, above: 1000, decision: review}]")
    assert r.apply("approve", "c", {**features(), "amount": 5000.0}) == ("review", "cap:big")
    assert r.apply("decline", "c", {**features(), "amount": 5000.0}) == ("decline", None)
    assert r.apply("approve", "c", {**features(), "amount": 10.0}) == ("approve", None)
    below = rules("caps: [{name: new-card, feature: card_age_days, below: 7, decision: review}]")
    assert below.apply("approve", "c", {**features(), "card_age_days": 1})[1] == "cap:new-card"


def test_legal_overrides_have_the_last_word() -> None:
    r = rules(
        """
        allow_entities: [card-vip]
        overrides:
          - {name: embargo, feature: country, in: [KP, IR], decision: decline}
          - {name: never-matters, feature: country, in: [KP], decision: approve}
        """
    )
    # Over the allow-list, and the first matching override wins.
    assert r.apply("approve", "card-vip", {**features(), "country": "KP"}) == (
        "decline",
        "override:embargo",
    )
    assert r.apply("approve", "card-vip", {**features(), "country": "US"}) == ("approve", None)


def test_deny_beats_allow_order_and_config_refuses_both() -> None:
    with pytest.raises(ConfigError, match="both the deny and the allow list"):
        parse_config({"postprocessing": {"deny_entities": ["x"], "allow_entities": ["x"]}})


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "r", "feature": "amount", "decision": "review"}, "exactly one of"),
        (
            {"name": "r", "feature": "amount", "above": 1, "below": 2, "decision": "review"},
            "exactly one of",
        ),
        ({"name": "r", "feature": "colour", "above": 1, "decision": "review"}, "not a numeric"),
        ({"name": "r", "feature": "amount", "in": ["x"], "decision": "review"}, "categorical"),
        ({"name": "r", "feature": "amount", "above": 1, "decision": "maybe"}, "decision"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(rule: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"postprocessing": {"caps": [rule]}})


# --- the whole chain ----------------------------------------------------------------------


def test_chain_uses_the_artifacts_thresholds_and_calibration() -> None:
    artifact = make_artifact("v1")
    artifact.thresholds = {"review": 0.2, "decline": 0.4}  # carried by the artifact
    feats = [features(i) for i in range(6)]
    scores = artifact.score_rows(feats)
    chain = PostProcessor(PostprocessingConfig())
    out = chain.run(artifact, scores, [f"c{i}" for i in range(6)], feats)
    assert [o.probability for o in out] == scores.tolist()
    assert [o.decision for o in out] == threshold_decisions(scores, artifact.thresholds)
    assert all(o.rule is None and o.decision == o.model_decision for o in out)

    artifact.metadata["calibration"] = {"method": "isotonic", "x": [0, 1], "y": [1, 1]}
    out = chain.run(artifact, scores, [f"c{i}" for i in range(6)], feats)
    assert {o.probability for o in out} == {1.0} and {o.decision for o in out} == {"decline"}
    off = PostProcessor(PostprocessingConfig(calibration=False))
    assert [o.probability for o in off.run(artifact, scores, ["c"] * 6, feats)] == scores.tolist()


def test_chain_reports_the_rule_per_row() -> None:
    artifact = make_artifact("v1")
    artifact.thresholds = {"review": 1.0, "decline": 1.0}  # the model approves everything
    config = PostprocessingConfig.model_validate(
        {
            "deny_entities": ["c1"],
            "caps": [{"name": "big", "feature": "amount", "above": 12.5, "decision": "review"}],
        }
    )
    feats = [features(i) for i in range(4)]  # amounts 10, 11, 12, 13
    out = PostProcessor(config).run(
        artifact, artifact.score_rows(feats), ["c0", "c1", "c2", "c3"], feats
    )
    assert [(o.model_decision, o.decision, o.rule) for o in out] == [
        ("approve", "approve", None),
        ("approve", "decline", DENY_LIST),
        ("approve", "approve", None),
        ("approve", "review", "cap:big"),
    ]
