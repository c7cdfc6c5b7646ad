"""The challenger in shadow (`release.shadow_days`; docs/serving.md, "Shadow").

A service on a lifecycle home follows the registry's `shadow` alias beside `production`
(`shadow_follower`: an `AliasFollower` that drops a failing version instead of retrying it)
and scores every prediction it logs with that version too, off the response path: in the
log drain, one batch of records at a time, just before they are encoded
(`with_shadow_scores`). The answer is production's alone; the record carries the shadow's
version and score, which the shadow gate later pairs with production's on the same rows.

A shadow version that fails to load, raises while scoring or gives a non-finite score is
dropped: production answers as before, the records of the batch are logged without a
shadow score, and the failure is logged as an error and shown by `/healthz`
(`shadow_error`). It stays dropped until the alias names another version (or the service
restarts), so the loop's shadow gate finds the window short of shadow scores and promotes
nothing.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from lifecycle_assets.config import ProblemConfig
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.records import PredictionRecord
from lifecycle_assets.registry.registry import load_version
from lifecycle_assets.serving.model_source import AliasFollower, Loader

logger = logging.getLogger("lifecycle.serving")

SHADOW = "shadow"


def shadow_follower(
    home: LifecycleHome,
    problem: ProblemConfig,
    *,
    background: bool = True,
    loader: Loader = load_version,
) -> AliasFollower:
    """The `shadow` alias's version, loaded, verified and warmed up like production's, with
    no version fence (responses never depend on it, so workers need not switch together)."""
    return AliasFollower(
        home, problem, alias=SHADOW, background=background, loader=loader, drop_failed=True
    )


def with_shadow_scores(
    follower: AliasFollower, records: list[PredictionRecord]
) -> list[PredictionRecord]:
    """`records` with the shadow version's score on each one production scored (a cold-start
    or invalid-score record has no score to pair with); unchanged when no shadow serves or
    it fails, which drops it. Never raises: a record is logged whatever the shadow does."""
    served = follower.served
    if served.artifact is None:
        return records
    rows = [i for i, r in enumerate(records) if r.score is not None]
    if not rows:
        return records
    try:
        scores = served.artifact.score_rows([records[i].features for i in rows])
        if scores.shape != (len(rows),):
            raise ValueError(f"scores of shape {scores.shape} for {len(rows)} rows")
        if not np.isfinite(scores).all():
            raise ValueError(f"{int((~np.isfinite(scores)).sum())} non-finite score(s)")
    except Exception as err:  # whatever the shadow does, production's records are logged
        follower.drop(
            served.version,
            f"{served.version} failed while scoring ({type(err).__name__})",
            str(err),
        )
        return records
    out = list(records)
    for i, score in zip(rows, scores.tolist(), strict=True):
        out[i] = dataclasses.replace(records[i], shadow_version=served.version, shadow_score=score)
    return out
