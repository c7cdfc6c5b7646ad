"""The built-in model families' hyperparameters (pydantic only): the config validates them
without importing torch or the training package. The families themselves are in
`training/families.py`."""

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


class GbdtShape(_Params):
    """The compiled ensemble's tensor shapes, recorded by the fit (`training/trees.py`) so
    loading rebuilds an empty module of the same shapes before the weights fill it. The
    defaults are an empty ensemble (no trees: it scores 0)."""

    n_trees: int = Field(0, ge=0)
    n_nodes: int = Field(1, ge=1)  # split nodes per tree, padded to the largest tree
    n_leaves: int = Field(1, ge=1)  # leaves per tree, padded likewise
    # Category-membership columns per split node: the largest category any split names + 1,
    # and one more that is never a member (inputs beyond the others look it up).
    category_width: int = Field(1, ge=1)


class GbdtParams(_Params):
    # Boosting rounds (one tree each): the cap; with a holdout, early stopping ends sooner.
    # 200 rounds at 0.05 with 15 leaves, measured against 100 at 0.1 with 31 (LightGBM's own
    # defaults): a better first model on both public sets of the quality benchmark (ROC-AUC
    # +0.0008 and +0.0046 when trained once on the first month) and on the built-in
    # simulator, and about half the compiled module (trees × leaves²) to serve.
    num_trees: int = Field(200, ge=1, le=10_000)
    # Leaves per tree; the compiled module's cost grows with its square (a path matrix of
    # nodes × leaves per tree), hence the cap.
    num_leaves: int = Field(15, ge=2, le=256)
    learning_rate: float = Field(0.05, gt=0, le=1)
    min_data_in_leaf: int = Field(20, ge=1)
    # Each tree sees a share of the rows (bagging_fraction, redrawn every round) and of the
    # features, and leaf values are shrunk by an L2 penalty. Successive retrains on
    # overlapping windows then differ less: deterministic full-data trees changed enough
    # from one window to the next that the gate could not show a stable-data challenger
    # non-inferior (docs/quality.md: with 1.0/1.0/0 a third of the stable scenario's
    # challengers were rejected).
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    lambda_l2: float = Field(10.0, ge=0)
    # Rounds without a better holdout loss before the fit stops (needs a holdout).
    early_stopping_rounds: int = Field(10, ge=1)
    max_bin: int = Field(255, ge=2, le=65_535)
    # Boosters fitted with seeds `training.seed`, +1, … on the same rows (their row and
    # feature draws differ) and averaged: one compiled ensemble of all their trees, each
    # leaf value divided by `bags`. Averaging cuts what the draws add to a model's error and
    # to how much one retrain differs from the next; it costs `bags` times the fit and the
    # trees to score.
    bags: int = Field(1, ge=1, le=16)
    # Fitted: the compiled tensors' shapes (see GbdtShape); recorded in the manifest.
    compiled: GbdtShape | None = None


# The family a config without `training.model` trains. Chosen by `benchmarks/quality.py`
# on public data the project did not generate (docs/quality.md): LightGBM compiled to
# tensors beat the MLP on both public sets and matched a retrained HistGradientBoosting.
DEFAULT_FAMILY = "gbdt"

# Where installed packages register their own model families (a name → a factory).
ENTRY_POINT_GROUP = "lifecycle.model_families"

BUILT_IN_PARAMS: dict[str, type[BaseModel]] = {
    "mlp": MlpParams,
    "tabm": TabmParams,
    "gbdt": GbdtParams,
}
