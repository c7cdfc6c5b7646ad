"""Safe promotion: verify the model, then move the alias, then record what serves.

The order is what makes a `kill -9` at any point harmless (docs/validation-and-promotion.md):

1. verify the version that will serve: registered, its weights' hash equal to the one the
   registry recorded (and the artifact's own manifest), loadable, answering this config's
   features with a finite warm-up prediction — nothing moves if any of that fails;
2. move the `production` alias — or, for a challenger that serves in shadow first
   (`release.shadow_days`), the `shadow` alias, the same way (the registry appends the
   history line, then replaces `aliases.json` atomically; a crash between the two leaves a
   pending line that readers ignore and the next move drops);
3. record the day in the served ledger (atomic replace).

The service follows `aliases.json` only, so at every instant it serves the old or the new
model; the git commit of `registry/` comes after, in the asset's `publish`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from lifecycle_assets.decision import Decision, ShadowAction, Stage, promotable
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.registry.registry import Registry, record_served, stored_weights_hash
from lifecycle_assets.training.artifact import ModelArtifact
from lifecycle_assets.training.verify import verify


class PromotionError(LifecycleError, RuntimeError):
    """A model that must not serve: the message names the version and what failed."""


@dataclass(frozen=True)
class Promotion:
    version: str  # what serves after the decision
    promoted: bool
    decision: str
    artifact: ModelArtifact
    stage: str | None = None  # the decision's `Stage`; None: the challenger may not serve
    shadow: str | None = None  # the version the `shadow` alias names after the decision


def verify_release(registry: Registry, version: str) -> ModelArtifact:
    """Load and check a registered version before anything points at it."""
    recorded = registry.versions().get(version)
    if recorded is None:
        raise PromotionError(f"{version} is not a registered version; nothing was moved")
    try:
        artifact = registry.load(version)  # checks the weights against the manifest's hash
        manifest_hash = stored_weights_hash(registry.home, registry.model_name, version)
        if manifest_hash != recorded.get("weights_sha256"):
            raise PromotionError(
                f"{version}: weights hash {manifest_hash[:12]}… differs from the registered "
                f"{str(recorded.get('weights_sha256'))[:12]}…; refusing to promote"
            )
        verify(artifact, registry.home.config().problem)  # features + finite warm-up
    except PromotionError:
        raise
    except LifecycleError as err:
        raise PromotionError(f"{version} failed verification, nothing was moved: {err}") from err
    return artifact


def promote_or_carry_over(
    registry: Registry,
    decision: dict[str, Any],
    day: dt.date,
    *,
    actor: str,
    when: dt.datetime,
) -> Promotion:
    """Day D's production model after its decision: the challenger if the decision allows,
    else the incumbent carried over. Verified before the alias moves. A decision whose
    `stage` is shadow moves the `shadow` alias to the challenger instead (verified first)
    and carries production over; a held one moves nothing."""
    verdict = decision["decision"]
    if verdict == Decision.PASS:
        check_pass_record(decision)
    # Records from before the shadow stage carry no `stage`: a promotable one serves.
    stage = (decision.get("stage") or Stage.PRODUCTION) if promotable(verdict) else None
    promote = stage == Stage.PRODUCTION
    version = decision["challenger_version" if promote else "production_version"]
    if version is None:
        raise PromotionError(f"decision {verdict} on {day} leaves no model to serve")
    artifact = verify_release(registry, version)
    if stage == Stage.SHADOW:
        challenger = decision["challenger_version"]
        verify_release(registry, challenger)
        running = registry.alias("shadow")
        if running != challenger:
            # (a running shadow is replaced only by a challenger shown better than it)
            replacing = f", replacing {running}" if running else ""
            registry.move_alias(
                "shadow",
                challenger,
                actor=actor,
                reason=f"{verdict} on {day}: shadow for {decision.get('shadow_days')} "
                f"day(s){replacing}",
                when=when,
            )
    if promote and registry.alias("production") != version:
        registry.move_alias(
            "production", version, actor=actor, reason=f"{verdict} on {day}", when=when
        )
    record_served(registry.home, day, version)
    return Promotion(version, promote, verdict, artifact, stage, registry.alias("shadow"))


@dataclass(frozen=True)
class ShadowSettlement:
    record: dict[
        str, Any
    ]  # the shadow record, as stored (abandoned if the shadow failed to verify)
    moves: list[dict[str, Any]]  # the alias moves made now
    artifact: ModelArtifact | None  # the promoted shadow, verified (None unless promoted)


def settle_shadow(
    registry: Registry,
    record: dict[str, Any],
    day: dt.date,
    *,
    actor: str,
    when: dt.datetime,
) -> ShadowSettlement:
    """Apply a shadow decision record (`validation.shadow`) to the registry, once.

    Promote: verify the shadow, then move `production` to it and clear `shadow` in one write
    of aliases.json (`Registry.move_aliases`), so no reader ever sees it half-promoted; then
    the served ledger. A shadow that fails verification is dropped instead, and the record
    says so. Request approval (manual mode): clear `shadow` and ask for a person's approval.
    Clear: clear `shadow`, production stays. When the `shadow` alias no longer names the
    record's version the moves were made (a rerun after a crash) or overtaken by hand: none
    is made again, and a promotion that happened is verified again and re-recorded in the
    ledger, for the caller to publish."""
    version = record["challenger_version"]
    action = record["action"]
    if registry.alias("shadow") != version:
        promoted = action == ShadowAction.PROMOTE and registry.alias("production") == version
        artifact = verify_release(registry, version) if promoted else None
        if promoted:
            record_served(registry.home, day, version)
        return ShadowSettlement(record, [], artifact)
    reason = f"shadow gate on {day}: {record['decision']}" + (
        " (abandoned)" if record.get("abandoned") else ""
    )
    if action == ShadowAction.PROMOTE:
        check_pass_record(record, rows_from="window")
        try:
            artifact = verify_release(registry, version)
        except PromotionError as err:
            record = {
                **record,
                "decision": Decision.FAIL.value,
                "abandoned": True,
                "action": ShadowAction.CLEAR.value,
                "reason": f"abandoned: {err}",
            }
            reason = f"shadow gate on {day}: {version} failed verification"
            event = registry.move_alias("shadow", None, actor=actor, reason=reason, when=when)
            return ShadowSettlement(record, [event], None)
        moves = registry.move_aliases(
            {"production": version, "shadow": None}, actor=actor, reason=reason, when=when
        )
        record_served(registry.home, day, version)
        return ShadowSettlement(record, moves, artifact)
    if action == ShadowAction.REQUEST_APPROVAL:
        registry.request_approval(record, when)
    event = registry.move_alias("shadow", None, actor=actor, reason=reason, when=when)
    return ShadowSettlement(record, [event], None)


def check_pass_record(decision: dict[str, Any], rows_from: str = "test_split_tag") -> None:
    """A PASS must be the paired gate's: both models on the same identified rows (where they
    came from: `rows_from`, the test split's tag or a shadow's window), and a lower bound
    that really clears the margin. Anything else is refused, not promoted."""
    missing = [
        k
        for k in ("production_version", rows_from, "test_rows_sha256", "delta_lower_bound")
        if decision.get(k) is None
    ]
    if missing:
        raise PromotionError(
            f"PASS record for {decision.get('day')} lacks {missing}: not a paired gate result"
        )
    if decision.get("n_rows") != decision.get("test_rows"):
        raise PromotionError(
            f"PASS record for {decision.get('day')} scored {decision.get('n_rows')} rows of a "
            f"{decision.get('test_rows')}-row test split: not the identical rows"
        )
    if not float(decision["delta_lower_bound"]) > -float(decision["margin"]):
        raise PromotionError(
            f"PASS record for {decision.get('day')} has lower bound "
            f"{decision['delta_lower_bound']} ≤ −margin {decision['margin']}"
        )
