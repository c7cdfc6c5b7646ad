"""The built-in model families' hyperparameters (pydantic only: the config validates them
without importing torch). The families themselves are in `families.py`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MlpParams(_Params):
    embedding_dim: int = Field(4, ge=1)
    hidden_units: int = Field(32, ge=1)


class TabmParams(_Params):
    k: int = Field(8, ge=1, le=64)  # ensemble members
    n_blocks: int = Field(2, ge=1, le=8)
    d_block: int = Field(64, ge=4)
    dropout: float = Field(0.1, ge=0, lt=1)
    n_bins: int = Field(16, ge=2, le=256)  # piecewise-linear bins per numeric feature
    d_embedding: int = Field(8, ge=1)
    # Fitted on the training rows (quantile bin edges per numeric feature, in the scaled
    # units the network sees); recorded in the manifest so loading rebuilds the same shapes.
    bins: list[list[float]] | None = None


# Where installed packages register their own model families (a name → a factory).
ENTRY_POINT_GROUP = "lifecycle.model_families"

BUILT_IN_PARAMS: dict[str, type[BaseModel]] = {"mlp": MlpParams, "tabm": TabmParams}
