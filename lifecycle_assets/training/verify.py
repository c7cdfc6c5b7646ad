"""Whether a model can answer a config's requests: the features it was trained on, and one
finite warm-up prediction. A serving worker checks it before a model answers
(`serving/model_source.py`), the promotion before an alias moves to it
(`registry/promotion.py`): one check, so a model that would fail to serve never gets an alias.
"""

from __future__ import annotations

import math

from lifecycle_assets.config import ProblemConfig
from lifecycle_assets.training.artifact import ArtifactError, ModelArtifact


class FeaturesError(ArtifactError):
    """A model trained on other features than this service's config serves."""


def verify(artifact: ModelArtifact, problem: ProblemConfig) -> None:
    """Refuse a model that cannot answer this config's requests; warm it up once."""
    pp = artifact.preprocessor
    if pp.numeric != tuple(problem.numeric_features) or pp.categorical != tuple(
        problem.categorical_features
    ):
        raise FeaturesError(
            f"model {artifact.version} was trained on features {[*pp.numeric, *pp.categorical]}"
            f", the config serves {list(problem.features)}"
        )
    row: dict[str, float | str] = dict(zip(pp.numeric, pp.means, strict=True))
    row.update({c: "" for c in pp.categorical})  # the out-of-vocabulary bucket
    scores = artifact.score_rows([row])
    artifact.decide(scores)
    if scores.shape != (1,) or not math.isfinite(float(scores[0])):
        raise ArtifactError(f"model {artifact.version} gives a non-finite warm-up score")
