"""The `gbdt` family: gradient-boosted trees fitted by LightGBM, compiled into dense tensors.

LightGBM fits the trees (`fit_booster`) on the same preprocessed arrays the other families
train on: the scaled numerics, and the categoricals' vocabulary indices as LightGBM
categorical features (so it can split on sets of categories). The fitted booster is then
compiled from its own tree dump (`compile_booster`) into the GEMM form of a tree ensemble,
every tree padded to the same number of split nodes `N` and leaves `L`:

- per split node: the feature it reads (an index: the one-hot feature-selection matrix in
  compact form, applied as a gather, which is exact on every device where a matmul of
  arbitrary floats may not be), its threshold, `default_left`, LightGBM's `missing_type`,
  and — for a categorical split — a row of the category-membership mask;
- per tree: the path matrix `[N, L]` (+1 where the leaf lies in the node's left subtree,
  −1 in its right one, 0 off its path) and, per leaf, the number of left turns on its path;
- per leaf: its value (the learning rate is already folded in; LightGBM folds the initial
  score into the first tree's leaves), plus a bias.

`TreeEnsembleNet` scores a batch with static shapes only: the node decisions `D [n, T, N]`
(1 = left), `D @ path` per tree, the leaf whose left-turn count that equals is the one
reached, and its value summed over trees. The matmul's inputs are 0 and ±1, exact even
where float32 matmuls run in reduced precision (TPUs); the leaf values are selected by a
mask and summed, never multiplied through a matmul. It traces under torch-xla as one graph
per batch shape and is served by the project's one scoring function like any other family.

LightGBM's decision rules, reproduced exactly (tree.h, and the predictor's input
conversion, which stores |x| ≤ 1e-35 as 0):
- numeric: `x <= threshold` goes left (the double threshold is rounded down to the largest
  float32 not above it, so the float32 comparison decides every float32 input identically);
  a NaN becomes 0 unless `missing_type` is NaN; a missing value (0 for `missing_type` Zero,
  NaN for NaN) goes the `default_left` way;
- categorical: a category in the split's set goes left; anything else — a category never in
  a set, one unseen in training, a negative or NaN value — goes right.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from lifecycle_assets.training.features import Preprocessor
from lifecycle_assets.training.fitted import Fitted

# LightGBM's kZeroThreshold: inputs within it are zero to the predictor (and "missing" at a
# split whose missing_type is Zero).
ZERO_THRESHOLD = 1e-35
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
_MISSING_TYPES = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}


def lightgbm_inputs(numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """The matrix LightGBM fits and predicts on: the scaled numerics, then the categoricals'
    vocabulary indices (exact in float32), as the module receives them."""
    return np.ascontiguousarray(
        np.concatenate([numeric.astype(np.float32), categorical.astype(np.float32)], axis=1)
    )


def lightgbm_params(params: dict[str, Any], task: str, seed: int, threads: int) -> dict[str, Any]:
    """LightGBM's parameters for the family's hyperparameters: deterministic for the seed
    (which also seeds the row and feature draws)."""
    return {
        "objective": "binary" if task == "binary" else "regression",
        "metric": "binary_logloss" if task == "binary" else "l2",
        "num_leaves": int(params["num_leaves"]),
        "learning_rate": float(params["learning_rate"]),
        "min_data_in_leaf": int(params["min_data_in_leaf"]),
        "feature_fraction": float(params["feature_fraction"]),
        "bagging_fraction": float(params["bagging_fraction"]),
        # a fresh draw of rows every round whenever bagging is on
        "bagging_freq": 1 if float(params["bagging_fraction"]) < 1.0 else 0,
        "lambda_l2": float(params["lambda_l2"]),
        "max_bin": int(params["max_bin"]),
        "seed": int(seed),
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": int(threads),
        "verbosity": -1,
    }


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def fit_booster(
    params: dict[str, Any],
    *,
    task: str,
    fit: Arrays,
    holdout: Arrays | None,
    seed: int,
    threads: int,
) -> tuple[Any, dict[str, Any]]:
    """(the fitted `lightgbm.Booster`, what the fit recorded: losses per round, seconds per
    round, the holdout's losses and best round when there is a holdout).

    `fit` and `holdout` are (scaled numerics, category indices, target) as train.py makes
    them; with a holdout, boosting stops `early_stopping_rounds` rounds after its loss last
    improved and the booster keeps the best round (`best_iteration`)."""
    import lightgbm as lgb

    num, cat, y = fit
    k, m = num.shape[1], cat.shape[1]
    config = lightgbm_params(params, task, seed, threads)
    dataset_params = {"max_bin": config["max_bin"], "verbosity": -1}
    categorical = list(range(k, k + m))
    train_set = lgb.Dataset(
        lightgbm_inputs(num, cat), label=y, categorical_feature=categorical, params=dataset_params
    )
    valid_sets, valid_names = [train_set], ["fit"]
    callbacks: list[Any] = []
    if holdout is not None:
        h_num, h_cat, h_y = holdout
        valid_sets.append(
            lgb.Dataset(
                lightgbm_inputs(h_num, h_cat),
                label=h_y,
                categorical_feature=categorical,
                reference=train_set,
                params=dataset_params,
            )
        )
        valid_names.append("holdout")
        rounds = int(params["early_stopping_rounds"])
        callbacks.append(lgb.early_stopping(rounds, first_metric_only=True, verbose=False))
    evaluations: dict[str, Any] = {}
    callbacks.append(lgb.record_evaluation(evaluations))
    ticks: list[float] = []
    callbacks.append(lambda env: ticks.append(time.perf_counter()))
    started = time.perf_counter()
    booster = lgb.train(
        config,
        train_set,
        num_boost_round=int(params["num_trees"]),
        valid_sets=valid_sets,
        valid_names=valid_names,
        callbacks=callbacks,
    )
    metric = config["metric"]
    record: dict[str, Any] = {
        "losses": [float(v) for v in evaluations["fit"][metric]],
        "step_seconds": list(np.diff([started, *ticks]).tolist()),
    }
    if holdout is not None:
        record["holdout_losses"] = [float(v) for v in evaluations["holdout"][metric]]
        # best_iteration is 1-based; 0 when early stopping never fired (the last round).
        record["best_epoch"] = int(booster.best_iteration) or booster.current_iteration()
    return booster, record


def _float32_at_most(values: np.ndarray) -> np.ndarray:
    """The largest float32 ≤ each double: for every float32 x, x <= t ⟺ x <= this."""
    with np.errstate(over="ignore"):
        rounded = values.astype(np.float32)
    above = rounded.astype(np.float64) > values
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


Leaf = tuple[list[tuple[int, int]], float]  # (path of (split node, +1 left / -1 right), value)


def _walk(tree: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Leaf]]:
    """(split nodes in preorder, leaves as (path of (node, ±1), value)); iterative, so a
    deep tree cannot exhaust Python's recursion limit."""
    nodes: list[dict[str, Any]] = []
    leaves: list[Leaf] = []
    stack: list[tuple[dict[str, Any], list[tuple[int, int]]]] = [(tree, [])]
    while stack:
        node, path = stack.pop()
        if "split_feature" not in node:
            if "leaf_coeff" in node:
                raise ValueError("linear trees (a model per leaf) do not compile")
            leaves.append((path, float(node["leaf_value"])))
            continue
        index = len(nodes)
        nodes.append(node)
        # the right child is pushed first so the left subtree is walked first
        stack.append((node["right_child"], [*path, (index, -1)]))
        stack.append((node["left_child"], [*path, (index, 1)]))
    return nodes, leaves


def compile_booster(
    booster: Any, n_numeric: int, n_categorical: int, num_iteration: int | None = None
) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """(the shapes `GbdtShape` records, the tensors `TreeEnsembleNet` loads) for a booster
    fitted on `lightgbm_inputs` of `n_numeric` numerics and `n_categorical` categoricals.

    `num_iteration`: rounds to compile (None: the best round where early stopping recorded
    one, else all of them — what `booster.predict` uses by default)."""
    dump = booster.dump_model(num_iteration=num_iteration)
    if int(dump.get("num_tree_per_iteration", 1)) != 1 or dump.get("average_output"):
        raise ValueError("only single-output boosted trees compile (not multiclass or rf)")
    if int(dump["max_feature_idx"]) + 1 != n_numeric + n_categorical:
        raise ValueError(
            f"the booster has {int(dump['max_feature_idx']) + 1} features, the inputs "
            f"{n_numeric} numeric + {n_categorical} categorical"
        )
    walked = [_walk(info["tree_structure"]) for info in dump["tree_info"]]
    n_trees = len(walked)
    n_nodes = max([1, *(len(nodes) for nodes, _ in walked)])
    n_leaves = max([1, *(len(leaves) for _, leaves in walked)])
    feature = np.zeros((n_trees, n_nodes), dtype=np.int64)
    categorical = np.zeros((n_trees, n_nodes), dtype=bool)
    threshold = np.zeros((n_trees, n_nodes), dtype=np.float64)
    default_left = np.zeros((n_trees, n_nodes), dtype=bool)
    missing = np.zeros((n_trees, n_nodes), dtype=np.int64)
    path = np.zeros((n_trees, n_nodes, n_leaves), dtype=np.float32)
    # A padding leaf needs one left turn and has none: never reached (and worth 0).
    path_left = np.ones((n_trees, n_leaves), dtype=np.float32)
    leaf_value = np.zeros((n_trees, n_leaves), dtype=np.float64)
    members: list[tuple[int, int, list[int]]] = []
    for t, (nodes, leaves) in enumerate(walked):
        for i, node in enumerate(nodes):
            f = int(node["split_feature"])
            decision = node["decision_type"]
            default_left[t, i] = bool(node["default_left"])
            missing[t, i] = _MISSING_TYPES[str(node["missing_type"])]
            if decision == "<=":
                if f >= n_numeric:
                    raise ValueError(f"tree {t}: a numeric split on categorical feature {f}")
                feature[t, i] = f
                threshold[t, i] = float(node["threshold"])
            elif decision == "==":
                if f < n_numeric:
                    raise ValueError(f"tree {t}: a categorical split on numeric feature {f}")
                feature[t, i] = f - n_numeric
                categorical[t, i] = True
                members.append((t, i, [int(c) for c in str(node["threshold"]).split("||")]))
            else:
                raise ValueError(f"tree {t}: unknown decision type {decision!r}")
        for j, (steps, value) in enumerate(leaves):
            for i, direction in steps:
                path[t, i, j] = direction
            path_left[t, j] = sum(1 for _, direction in steps if direction > 0)
            leaf_value[t, j] = value
    # LightGBM's category sets hold non-negative ints; the last column is never a member.
    width = max([0, *(c for _, _, cats in members for c in cats)]) + 2 if members else 1
    categories = np.zeros((n_trees, n_nodes, width), dtype=bool)
    for t, i, cats in members:
        categories[t, i, cats] = True
    shapes = {
        "n_trees": n_trees,
        "n_nodes": n_nodes,
        "n_leaves": n_leaves,
        "category_width": width,
    }
    state = {
        "feature": torch.from_numpy(feature),
        "categorical": torch.from_numpy(categorical),
        "threshold": torch.from_numpy(_float32_at_most(threshold)),
        "default_left": torch.from_numpy(default_left),
        "missing_type": torch.from_numpy(missing),
        "categories": torch.from_numpy(categories),
        "path": torch.from_numpy(path),
        "path_left": torch.from_numpy(path_left),
        "leaf_value": torch.from_numpy(leaf_value.astype(np.float32)),
        "bias": torch.zeros((), dtype=torch.float32),
    }
    return shapes, state


class TreeEnsembleNet(nn.Module):
    """A compiled tree ensemble behind the forward contract: raw scores `[n]` (the logit for
    binary, the value for regression), as `booster.predict(raw_score=True)` gives them.

    Built empty from the shapes `params["compiled"]` records; its tensors are persistent
    buffers (nothing here is trained by gradients), filled by `load_state_dict`."""

    feature: torch.Tensor  # [T, N] int64: the numeric or categorical column a node reads
    categorical: torch.Tensor  # [T, N] bool: a category-set split
    threshold: torch.Tensor  # [T, N] float32: numeric splits go left at x <= threshold
    default_left: torch.Tensor  # [T, N] bool: where a missing value goes
    missing_type: torch.Tensor  # [T, N] int64: MISSING_NONE | MISSING_ZERO | MISSING_NAN
    categories: torch.Tensor  # [T, N, W] bool: the categories that go left
    path: torch.Tensor  # [T, N, L] float32: +1 left subtree, -1 right subtree, 0 off path
    path_left: torch.Tensor  # [T, L] float32: left turns on the leaf's path (1: padding)
    leaf_value: torch.Tensor  # [T, L] float32
    bias: torch.Tensor  # [] float32: added to the sum over trees

    def __init__(self, pre: Preprocessor, params: dict[str, Any]) -> None:
        super().__init__()
        shape = params.get("compiled") or {}
        t = int(shape.get("n_trees", 0))
        n = int(shape.get("n_nodes", 1))
        leaves = int(shape.get("n_leaves", 1))
        width = int(shape.get("category_width", 1))
        if min(t, n - 1, leaves - 1, width - 1) < 0:
            raise ValueError(f"bad compiled shapes {dict(shape)}")
        self.n_numeric = len(pre.numeric)
        self.n_categorical = len(pre.categorical)
        self.register_buffer("feature", torch.zeros(t, n, dtype=torch.int64))
        self.register_buffer("categorical", torch.zeros(t, n, dtype=torch.bool))
        self.register_buffer("threshold", torch.zeros(t, n))
        self.register_buffer("default_left", torch.zeros(t, n, dtype=torch.bool))
        self.register_buffer("missing_type", torch.zeros(t, n, dtype=torch.int64))
        self.register_buffer("categories", torch.zeros(t, n, width, dtype=torch.bool))
        self.register_buffer("path", torch.zeros(t, n, leaves))
        self.register_buffer("path_left", torch.ones(t, leaves))
        self.register_buffer("leaf_value", torch.zeros(t, leaves))
        self.register_buffer("bias", torch.zeros(()))

    def _numeric_left(self, numeric: torch.Tensor) -> torch.Tensor:
        index = self.feature.reshape(-1).clamp(0, self.n_numeric - 1)
        x = numeric.index_select(1, index)  # [n, T*N]
        x = torch.where(x.abs() <= ZERO_THRESHOLD, torch.zeros_like(x), x)
        missing = self.missing_type.reshape(-1)
        nan = torch.isnan(x)
        x = torch.where(nan & (missing != MISSING_NAN), torch.zeros_like(x), x)
        is_missing = ((missing == MISSING_ZERO) & (x == 0)) | ((missing == MISSING_NAN) & nan)
        return torch.where(
            is_missing, self.default_left.reshape(-1), x <= self.threshold.reshape(-1)
        )

    def _categorical_left(self, categorical: torch.Tensor) -> torch.Tensor:
        t, n, width = self.categories.shape
        index = self.feature.reshape(-1).clamp(0, self.n_categorical - 1)
        c = categorical.index_select(1, index)  # [rows, T*N]
        outside = (c < 0) | (c >= width - 1)
        c = torch.where(outside, torch.full_like(c, width - 1), c)
        offset = torch.arange(t * n, device=c.device, dtype=c.dtype) * width
        return self.categories.reshape(-1)[c + offset]

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        rows = numeric.shape[0]
        t, n, _ = self.path.shape
        if self.n_numeric and self.n_categorical:
            left = torch.where(
                self.categorical.reshape(-1),
                self._categorical_left(categorical),
                self._numeric_left(numeric),
            )
        elif self.n_numeric:
            left = self._numeric_left(numeric)
        elif self.n_categorical:
            left = self._categorical_left(categorical)
        else:
            left = torch.zeros(rows, t * n, dtype=torch.bool, device=numeric.device)
        decisions = left.to(self.path.dtype).reshape(rows, t, n)
        turns = torch.einsum("btn,tnl->btl", decisions, self.path)
        reached = turns == self.path_left  # [rows, T, L]: one leaf per tree
        values = torch.where(reached, self.leaf_value, torch.zeros_like(self.leaf_value))
        return values.sum(dim=2).sum(dim=1) + self.bias


def merge_compiled(
    compiled: list[tuple[dict[str, int], dict[str, torch.Tensor]]],
) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """One ensemble that scores the mean of the compiled ensembles' raw scores: their trees
    side by side, padded to the largest tree and category set, each leaf value divided by
    their number. A padded split node is on no leaf's path; a padded leaf needs a left turn
    it cannot get (never reached, worth 0); a padded category column is no split's member,
    as the column it widens past was not (inputs beyond a set fall on a non-member)."""
    if len(compiled) == 1:
        return compiled[0]
    n_nodes = max(shapes["n_nodes"] for shapes, _ in compiled)
    n_leaves = max(shapes["n_leaves"] for shapes, _ in compiled)
    width = max(shapes["category_width"] for shapes, _ in compiled)

    def padded(state: dict[str, torch.Tensor], name: str, fill: float = 0) -> torch.Tensor:
        tensor = state[name]
        sizes = {"path": (n_nodes, n_leaves), "path_left": (n_leaves,), "leaf_value": (n_leaves,)}
        target = sizes.get(name, (n_nodes, width) if name == "categories" else (n_nodes,))
        pad: list[int] = []
        for have, want in zip(reversed(tensor.shape[1:]), reversed(target), strict=True):
            pad += [0, want - have]
        return torch.nn.functional.pad(tensor, pad, value=fill) if any(pad) else tensor

    fills = {"path_left": 1.0}
    names = [name for name in compiled[0][1] if name != "bias"]
    state = {
        name: torch.cat([padded(s, name, fills.get(name, 0)) for _, s in compiled])
        for name in names
    }
    state["leaf_value"] = state["leaf_value"] / len(compiled)
    state["bias"] = sum((s["bias"] for _, s in compiled), torch.zeros(())) / len(compiled)
    shapes = {
        "n_trees": int(state["feature"].shape[0]),
        "n_nodes": n_nodes,
        "n_leaves": n_leaves,
        "category_width": width,
    }
    return shapes, state


def fit_gbdt(
    pre: Preprocessor,
    params: dict[str, Any],
    *,
    task: str,
    fit: Arrays,
    holdout: Arrays | None,
    seed: int,
    threads: int,
) -> Fitted:
    """The family's fit: LightGBM on the fit rows (early stopping on the holdout), compiled;
    `bags` boosters (seeds `seed`, `seed` + 1, …) averaged into one compiled ensemble."""
    import lightgbm as lgb

    bags = int(params.get("bags", 1))
    fits = [
        fit_booster(params, task=task, fit=fit, holdout=holdout, seed=seed + b, threads=threads)
        for b in range(bags)
    ]
    compiled = [compile_booster(b, len(pre.numeric), len(pre.categorical)) for b, _ in fits]
    shapes, state = merge_compiled(compiled)
    records = [record for _, record in fits]
    # The loss curve: the mean over the boosters, on the rounds all of them ran. The seconds
    # per round: what all the boosters' rounds cost together (rounds beyond the common ones
    # counted in the last), so their sum is the whole fit's.
    rounds = min(len(record["losses"]) for record in records)
    losses = np.mean([record["losses"][:rounds] for record in records], axis=0).tolist()
    step_seconds = np.sum([record["step_seconds"][:rounds] for record in records], axis=0)
    step_seconds[-1] += sum(sum(record["step_seconds"][rounds:]) for record in records)
    info: dict[str, Any] = {
        "fitted_by": f"LightGBM {lgb.__version__}",
        "cpu_threads": threads,
        "trees": shapes["n_trees"],
    }
    if bags > 1:
        info["bags"] = bags
        info["trees_per_bag"] = [one["n_trees"] for one, _ in compiled]
    if "best_epoch" in records[0]:
        info["best_epoch"] = round(float(np.mean([r["best_epoch"] for r in records])))
        info["holdout_losses"] = np.mean(
            [r["holdout_losses"][:rounds] for r in records], axis=0
        ).tolist()
    return Fitted(
        params={**params, "compiled": shapes},
        state=state,
        losses=losses,
        step_seconds=step_seconds.tolist(),
        info=info,
    )
