"""The post-processing chain, shared by online serving and offline (batch) scoring:

    score → calibrated probability (where the artifact has a fitted calibration)
          → decision by the artifact's thresholds (approve / review / decline)
          → business rules from `lifecycle.yaml` (caps, allow-list, deny-list, legal overrides)
          → response, naming the rule (if any) that changed the model's decision.

Every step is a plain function, unit-tested on its own. Rules run in a fixed order so the
strongest has the last word: caps (raise to at least a decision) → allow-list → deny-list →
legal overrides (exactly their decision, over everything else).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifecycle_assets.config import FeatureRule, PostprocessingConfig
from lifecycle_assets.training.artifact import CalibrationError, ModelArtifact, calibrate, decide

__all__ = ["CalibrationError", "calibrate"]  # the one implementation lives with the artifact

DECISIONS = ("approve", "review", "decline")
_RANK = {d: i for i, d in enumerate(DECISIONS)}
ALLOW_LIST = "allow_list"
DENY_LIST = "deny_list"


@dataclass(frozen=True)
class Outcome:
    """What the chain made of one score."""

    probability: float | None  # None for a regression value (not a probability)
    model_decision: str | None  # by thresholds alone; None for regression
    decision: str | None  # after the business rules; None for regression
    rule: str | None  # the rule that changed the decision last; None: the model's decision


def threshold_decisions(probabilities: np.ndarray, thresholds: Mapping[str, float]) -> list[str]:
    """approve below `review`, review below `decline`, decline at or above it; a NaN can
    never approve (see `training.artifact.decide`, the one comparison)."""
    return decide(probabilities, dict(thresholds))


def _matches(rule: FeatureRule, features: Mapping[str, Any]) -> bool:
    value = features.get(rule.feature)
    if rule.in_ is not None:
        return value in rule.in_
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if rule.above is not None:
        return value > rule.above
    return rule.below is not None and value < rule.below


@dataclass(frozen=True)
class BusinessRules:
    """The configured rules, applied to one decision at a time."""

    caps: tuple[FeatureRule, ...] = ()
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    overrides: tuple[FeatureRule, ...] = ()

    @classmethod
    def from_config(cls, config: PostprocessingConfig) -> BusinessRules:
        return cls(
            caps=config.caps,
            allow=frozenset(config.allow_entities),
            deny=frozenset(config.deny_entities),
            overrides=config.overrides,
        )

    @property
    def empty(self) -> bool:
        return not (self.caps or self.allow or self.deny or self.overrides)

    def apply(
        self, decision: str, entity_id: str, features: Mapping[str, Any]
    ) -> tuple[str, str | None]:
        """(final decision, name of the last rule that changed it, or None)."""
        rule: str | None = None
        for cap in self.caps:
            if _RANK[cap.decision] > _RANK[decision] and _matches(cap, features):
                decision, rule = cap.decision, f"cap:{cap.name}"
        if entity_id in self.allow and decision != "approve":
            decision, rule = "approve", ALLOW_LIST
        if entity_id in self.deny and decision != "decline":
            decision, rule = "decline", DENY_LIST
        for override in self.overrides:
            if _matches(override, features):
                if decision != override.decision:
                    decision, rule = override.decision, f"override:{override.name}"
                break  # the first matching legal override is final
        return decision, rule


# Rules named by the scoring step itself, before any business rule.
INVALID_SCORE_RULE = "invalid_score"  # the model gave a non-finite score
INVALID_FEATURES_RULE = "invalid_features"  # outside the ranges a request would be refused at


@dataclass(frozen=True)
class Scored:
    """One row through model and chain: `score` None when it could not be scored."""

    score: float | None
    outcome: Outcome


class PostProcessor:
    """The whole chain for one config; `score` (model + chain, with the finite check) is
    what serving, lookup rescoring and batch scoring call."""

    def __init__(self, config: PostprocessingConfig) -> None:
        self.use_calibration = config.calibration
        self.rules = BusinessRules.from_config(config)

    def run(
        self,
        artifact: ModelArtifact,
        scores: np.ndarray,
        entity_ids: Sequence[str],
        features: Sequence[Mapping[str, Any]],
    ) -> list[Outcome]:
        if artifact.task == "regression":
            # A predicted value: thresholds, calibration and decision rules do not apply.
            return [Outcome(None, None, None, None) for _ in range(len(scores))]
        calibration = artifact.metadata.get("calibration") if self.use_calibration else None
        probabilities = calibrate(scores, calibration)
        model_decisions = threshold_decisions(probabilities, artifact.thresholds)
        probs = probabilities.tolist()
        if self.rules.empty:  # the common case: no per-row rule work at all
            return [Outcome(p, d, d, None) for p, d in zip(probs, model_decisions, strict=True)]
        out = []
        for p, d, entity, feats in zip(probs, model_decisions, entity_ids, features, strict=True):
            final, rule = self.rules.apply(d, entity, feats)
            out.append(Outcome(p, d, final, rule))
        return out

    def score(
        self,
        artifact: ModelArtifact,
        features: Sequence[dict[str, Any]],
        entity_ids: Sequence[str],
        valid: Sequence[bool] | None = None,
    ) -> list[Scored]:
        """Score the rows marked `valid` (default: all) and run the chain. A row that is not
        valid, or whose score is not finite, is never decided by the model: no score, and
        `review` for a binary task (never `approve` by fall-through), with the rule saying
        why. The caller decides whether such a row may be answered at all."""
        keep = (
            list(range(len(features))) if valid is None else [i for i, v in enumerate(valid) if v]
        )
        unscored = "review" if artifact.task == "binary" else None
        out = [
            Scored(None, Outcome(None, None, unscored, INVALID_FEATURES_RULE))
            for _ in range(len(features))
        ]
        if not keep:
            return out
        rows = [features[i] for i in keep]
        raw = artifact.score_rows(rows)
        outcomes = self.run(artifact, raw, [entity_ids[i] for i in keep], rows)
        for i, value, outcome in zip(keep, raw.tolist(), outcomes, strict=True):
            if math.isfinite(value):
                out[i] = Scored(float(value), outcome)
            else:
                out[i] = Scored(None, Outcome(None, None, unscored, INVALID_SCORE_RULE))
        return out
