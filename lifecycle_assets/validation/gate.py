"""The validation gate: challenger and production scored on the identical test rows.

The decision uses a paired bootstrap of Δ = challenger − production (oriented so that higher
is better): PASS only when the one-sided (1 − α) lower bound of Δ clears −margin, and every
guard (calibration, slices, golden dataset) passes. A guard only ever adds a reason to FAIL,
so none of them can raise the chance of promoting a model worse by the margin above α.

The bootstrap is vectorised: a resample is a vector of row multiplicities (weights), and every
metric (`lifecycle_assets.metrics`) is computed for a whole block of resamples at once from
those weights. Both models and every slice see the same weight rows, which is what makes the
comparison paired.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import repeat
from typing import Any

import numpy as np

from lifecycle_assets.config import ValidationConfig
from lifecycle_assets.decision import Decision
from lifecycle_assets.metrics import BINARY_METRICS, HIGHER_IS_BETTER, metric, weighted_scorer
from lifecycle_assets.worktime import work

# A decision record is JSON data: it holds the verdicts' plain string values.
PASS, FAIL, FIRST_MODEL, FORCED = (
    Decision.PASS.value,
    Decision.FAIL.value,
    Decision.FIRST_MODEL.value,
    Decision.FORCED.value,
)
# Resamples per block: the adaptive resampling looks at its verdict after each block.
BLOCK = 200
# Weights (resamples × rows) drawn and scored at once: a block of a large test split comes in
# chunks of fewer resamples, the same draws in the same order, so memory stays near
# 16 M × (8 bytes drawn + 4 held + the metric's passes) whatever the test split's size.
CHUNK_CELLS = 1 << 24
# At most this many threads work on a chunk (each scorer's running sums are a chunk's size in
# float32): a machine with many cores does not multiply the gate's memory by its core count.
SCORING_THREADS = 4
# Monte Carlo standard errors by which the share of resampled Δ at or below −margin must
# clear α before the resampling stops short of `bootstrap_max_samples` (see `settled`).
SETTLED_Z = 2.58


# --- the paired bootstrap -------------------------------------------------------------------


def block_ends(samples: int, most: int | None = None) -> list[int]:
    """The resample counts at which `bootstrap_weights`' blocks end: every `BLOCK`, and
    `samples` exactly, then on to `most`."""
    last, done, ends = max(samples, most or 0), 0, []
    while done < last:
        done += min(BLOCK, (samples if done < samples else last) - done)
        ends.append(done)
    return ends


def bootstrap_weights(
    n: int, samples: int, seed: int, most: int | None = None, cells: int | None = None
) -> Iterator[np.ndarray]:
    """Resamples with replacement, each as row multiplicities (sum n), in blocks
    (`block_ends`); a block larger than `cells` weights (`CHUNK_CELLS`) comes in chunks of
    whole resamples. The draws do not depend on the chunking: one generator draws every
    resample's rows in turn, whatever the chunk (`test_a_block_in_chunks_is_the_same_resamples`).

    With `most`, blocks go on past `samples` up to `most` for a consumer that may stop early;
    the blocks end at `samples` exactly, so its first `samples` resamples are the ones
    `most=None` gives."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, (cells or CHUNK_CELLS) // max(n, 1))
    done = 0
    for end in block_ends(samples, most):
        while done < end:
            b = min(per_chunk, end - done)
            idx = rng.integers(0, n, size=(b, n))
            idx += (np.arange(b) * n)[:, None]
            counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
            # float32 holds multiplicities exactly and halves the memory traffic of the passes
            yield counts.astype(np.float32)
            done += b


def paired_bootstrap_delta(
    name: str,
    y: np.ndarray,
    challenger: np.ndarray,
    production: np.ndarray,
    samples: int,
    seed: int,
) -> np.ndarray:
    """Bootstrap distribution of the oriented difference, resampling the same rows for both."""
    sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
    ch, pr = weighted_scorer(name, y, challenger), weighted_scorer(name, y, production)
    deltas = [sign * (ch(w) - pr(w)) for w in bootstrap_weights(len(y), samples, seed)]
    out = np.concatenate(deltas) if deltas else np.zeros(0)
    return out[np.isfinite(out)]


RANKING_METRICS = ("roc_auc", "pr_auc")
# Unset margins (ValidationConfig): in metric units for ranking metrics, a share of the
# production model's figure for error metrics.
AUTO_MARGIN = 0.01
AUTO_SLICE_MARGIN = 0.05


def resolved_margin(given: float | None, default: float, name: str, production: float) -> float:
    """A margin in the metric's units: as configured, or scaled to the metric (see above)."""
    if given is not None:
        return given
    if name in RANKING_METRICS:
        return default
    return default * abs(production) if math.isfinite(production) else default


def settled(deltas: np.ndarray, margin: float, alpha: float) -> bool:
    """Whether the non-inferiority verdict from these resampled Δ is the rows' and not the
    resampling's: the lower bound clears −margin exactly when fewer than an α share of the Δ
    sit at or below −margin, and that share, estimated from n resamples, has a Monte Carlo
    standard error of √(α(1 − α)/n) about α. Settled once the share is `SETTLED_Z` of those
    from α (at 1,000 resamples outside 0.032…0.068 for α = 0.05)."""
    n = len(deltas)
    if n == 0:
        return True
    share = float(np.mean(deltas <= -margin))
    return abs(share - alpha) > SETTLED_Z * math.sqrt(alpha * (1 - alpha) / n)


def _quantile(values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q)) if len(values) else None


# --- the decision ---------------------------------------------------------------------------


@work("statistics")
def decide(
    y: np.ndarray,
    challenger: np.ndarray,
    production: np.ndarray | None,
    cfg: ValidationConfig,
    seed: int = 0,
    slices: dict[str, np.ndarray] | None = None,
    golden: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The decision record's numbers: metrics, intervals, guards and the verdict.

    `slices` maps a categorical feature to its value per row (the same rows as `y`); the slice
    guard runs on those of `cfg.slice_features` (all given ones when that is None). `golden`
    is (labels, challenger scores, production scores) on the pinned golden dataset.
    """
    y = np.asarray(y, dtype=np.float64)
    challenger = np.asarray(challenger, dtype=np.float64)
    if len(challenger) != len(y) or (production is not None and len(production) != len(y)):
        raise ValueError("challenger and production must be scored on the same rows")
    name = cfg.metric
    sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
    record: dict[str, Any] = {
        "metric": name,
        "higher_is_better": HIGHER_IS_BETTER[name],
        "n_rows": len(y),
        "n_positive": int(np.sum(y)) if len(y) else 0,
        "margin": cfg.margin if cfg.margin is not None or name in RANKING_METRICS else None,
        "alpha": cfg.alpha,
        "bootstrap_samples": cfg.bootstrap_samples,
        "seed": seed,
        "challenger_metric": metric(name, y, challenger),
        "production_metric": None,
        "delta": None,
        "delta_lower_bound": None,
        "delta_upper_bound": None,
        "challenger_interval": None,
        "production_interval": None,
        "guards": {},
    }
    if production is None:
        record["decision"] = FIRST_MODEL
        return record
    production = np.asarray(production, dtype=np.float64)
    record["production_metric"] = metric(name, y, production)
    record["delta"] = sign * (record["challenger_metric"] - record["production_metric"])
    margin = resolved_margin(cfg.margin, AUTO_MARGIN, name, record["production_metric"])
    record["margin"] = margin

    slice_masks = _slice_masks(y, slices or {}, cfg)
    ch_boot: list[np.ndarray] = []
    pr_boot: list[np.ndarray] = []
    bias_boot: list[np.ndarray] = []
    bias_pr_boot: list[np.ndarray] = []
    slice_boot: dict[tuple[str, str], list[np.ndarray]] = {k: [] for k in slice_masks}
    # Each model overall, then each slice's pair, prepared once; then each resample's total
    # weight and both models' summed residuals (the calibration guard's bias). Every chunk
    # is worked by all of them at once, a thread each (the gathers, running sums and
    # products release the GIL), while the next chunk is drawn.
    tasks = [weighted_scorer(name, y, challenger), weighted_scorer(name, y, production)]
    for mask in slice_masks.values():
        rows = np.flatnonzero(mask)
        tasks += [weighted_scorer(name, y, s, rows) for s in (challenger, production)]
    tasks += [_row_sums, partial(_residual_sums, challenger - y)]
    tasks += [partial(_residual_sums, production - y)]
    # At least `bootstrap_samples` resamples; more, block by block, while the verdict is
    # within the resampling's own error (`settled`). The first blocks are the same resamples
    # whatever the cap, so a clear verdict is unchanged by it.
    drawn = 0
    ends = set(block_ends(cfg.bootstrap_samples, cfg.bootstrap_max_samples))
    weights = bootstrap_weights(len(y), cfg.bootstrap_samples, seed, cfg.bootstrap_max_samples)
    with ThreadPoolExecutor(_threads(len(tasks))) as pool:
        for w in _drawn_ahead(weights):
            ch, pr, *per_slice, total, summed, summed_pr = pool.map(operator.call, tasks, repeat(w))
            ch_boot.append(ch)
            pr_boot.append(pr)
            bias_boot.append(summed / total)
            bias_pr_boot.append(summed_pr / total)
            for i, key in enumerate(slice_masks):
                slice_boot[key].append(sign * (per_slice[2 * i] - per_slice[2 * i + 1]))
            drawn += len(w)
            if (
                drawn in ends
                and drawn >= cfg.bootstrap_samples
                and settled(
                    _finite_deltas(sign, np.concatenate(ch_boot), np.concatenate(pr_boot)),
                    margin,
                    cfg.alpha,
                )
            ):
                break
    record["bootstrap_samples"] = drawn
    ch_all, pr_all = np.concatenate(ch_boot), np.concatenate(pr_boot)
    deltas = _finite_deltas(sign, ch_all, pr_all)
    lower = _quantile(deltas, cfg.alpha)
    record["delta_lower_bound"] = lower if lower is not None else float("-inf")
    record["delta_upper_bound"] = _quantile(deltas, 1 - cfg.alpha)
    record["challenger_interval"] = _interval(ch_all, cfg.alpha)
    record["production_interval"] = _interval(pr_all, cfg.alpha)
    non_inferior = record["delta_lower_bound"] > -margin

    guards = record["guards"]
    guards["calibration"] = calibration_guard(
        y, challenger, production, np.concatenate(bias_boot), np.concatenate(bias_pr_boot), cfg
    )
    guards["slices"] = slice_guard(slice_masks, slice_boot, y, challenger, production, cfg)
    if golden is not None:
        guards["golden"] = golden_guard(*golden, cfg, seed)
    guarded = all(g["passed"] for g in guards.values())
    record["decision"] = PASS if non_inferior and guarded else FAIL
    record["non_inferior"] = non_inferior
    # Better on the gate metric and no guard against it, but the rows are too few to show
    # it is not worse by the margin: production is kept (α still holds), yet nothing points
    # at a data or pipeline problem, so it is no gate alert (the check warns instead).
    record["inconclusive"] = (
        record["decision"] == FAIL
        and guarded
        and record["delta"] is not None
        and record["delta"] >= 0
    )
    return record


def _threads(tasks: int) -> int:
    """Threads that work on a chunk at once: this process's cores (its CPU affinity, where
    the platform says), at most `SCORING_THREADS`, since each holds a chunk's running sums."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(tasks, cores or 1, SCORING_THREADS))


def _row_sums(w: np.ndarray) -> np.ndarray:
    return w.sum(axis=1)


def _residual_sums(residual: np.ndarray, w: np.ndarray) -> np.ndarray:
    return w @ residual


def _drawn_ahead(chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """`chunks` in order, each drawn by a thread of its own while the consumer works on the
    one before (one chunk ahead; a consumer that stops early leaves it unused)."""
    with ThreadPoolExecutor(1) as drawer:
        ahead = drawer.submit(next, chunks, None)
        while (chunk := ahead.result()) is not None:
            ahead = drawer.submit(next, chunks, None)
            yield chunk


def _finite_deltas(sign: float, challenger: np.ndarray, production: np.ndarray) -> np.ndarray:
    """The oriented Δ of each resample where both metrics exist (one-class resamples drop)."""
    deltas = sign * (challenger - production)
    return deltas[np.isfinite(deltas)]


def _interval(values: np.ndarray, alpha: float) -> list[float] | None:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    return [float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha))]


def calibration_scale(y: np.ndarray, production: np.ndarray, name: str) -> tuple[float, str]:
    """What the calibration tolerance is a share of: the minority-class rate for a binary
    task, production's RMSE on the same rows for a regression (1.0 if that is 0)."""
    if name in BINARY_METRICS:
        rate = float(np.mean(y))
        return max(min(rate, 1.0 - rate), 1e-12), "the minority-class rate"
    rmse = float(np.sqrt(np.mean((production - y) ** 2)))
    return (rmse if rmse > 0 else 1.0), "production's RMSE"


def calibration_guard(
    y: np.ndarray,
    challenger: np.ndarray,
    production: np.ndarray,
    bias_boot: np.ndarray,
    production_bias_boot: np.ndarray,
    cfg: ValidationConfig,
) -> dict[str, Any]:
    """Calibration of the challenger relative to production, on the identical rows.

    Each model's calibration error is |mean prediction − mean label| (label units, so it
    serves regression too). The guard bootstraps the paired difference E = error(challenger)
    − error(production) with the gate's own resamples (`bias_boot`, `production_bias_boot`:
    each model's bias per resample) and fails only when the one-sided (1 − α) lower bound of E
    exceeds the tolerance: the challenger is confidently worse calibrated than production by
    more than the tolerance. A change in the label rate shifts both models' bias alike and
    leaves E near 0, so it does not block a challenger that ranks better. While both biases
    have the same sign, E is a difference of the two mean predictions on the same rows and
    the label noise cancels: hence one bootstrap of E, not an interval per model.
    """
    mean_label = float(np.mean(y))
    bias_c = float(np.mean(challenger) - mean_label)
    bias_p = float(np.mean(production) - mean_label)
    scale, scale_name = calibration_scale(y, production, cfg.metric)
    tol = None if cfg.calibration_tolerance is None else cfg.calibration_tolerance * scale
    error_boot = np.abs(bias_boot) - np.abs(production_bias_boot)
    error_boot = error_boot[np.isfinite(error_boot)]
    difference = abs(bias_c) - abs(bias_p)
    lower = _quantile(error_boot, cfg.alpha)
    result: dict[str, Any] = {
        "measure": "abs_mean_bias",
        "scale": scale,
        "scale_is": scale_name,
        "relative_tolerance": cfg.calibration_tolerance,
        "mean_label": mean_label,
        "challenger_mean_prediction": float(np.mean(challenger)),
        "production_mean_prediction": float(np.mean(production)),
        "challenger_bias": bias_c,
        "production_bias": bias_p,
        "challenger_bias_interval": _interval(bias_boot, cfg.alpha),
        "production_bias_interval": _interval(production_bias_boot, cfg.alpha),
        "challenger_error": abs(bias_c),
        "production_error": abs(bias_p),
        "error_difference": difference,
        "error_difference_lower_bound": lower,
        "error_difference_interval": _interval(error_boot, cfg.alpha),
        "tolerance": tol,
    }
    if cfg.metric in BINARY_METRICS:
        # The proper score beside the bias, for the reader of a FAIL: whether the
        # challenger's probabilities as a whole (calibration and sharpness) are worse too, or
        # a better ranking outweighs the shift of its mean.
        result["challenger_brier"] = float(np.mean((challenger - y) ** 2))
        result["production_brier"] = float(np.mean((production - y) ** 2))
    if tol is None:
        return {**result, "passed": True, "reason": "disabled (calibration_tolerance: null)"}
    bound = lower if lower is not None else difference
    passed = bound <= tol
    reason = (
        f"calibration error |bias| challenger {abs(bias_c):.4f} (bias {bias_c:+.4f}) vs "
        f"production {abs(bias_p):.4f} (bias {bias_p:+.4f}): difference {difference:+.4f}, "
        f"one-sided {1 - cfg.alpha:.0%} lower bound {bound:+.4f} "
        f"{'>' if not passed else '≤'} tolerance {tol:.4g} "
        f"({cfg.calibration_tolerance} × {scale_name} {scale:.4g})"
    )
    if "challenger_brier" in result:
        reason += (
            f"; Brier score challenger {result['challenger_brier']:.4f} vs production "
            f"{result['production_brier']:.4f}"
        )
    return {**result, "passed": passed, "reason": reason}


def _slice_masks(
    y: np.ndarray, slices: dict[str, np.ndarray], cfg: ValidationConfig
) -> dict[tuple[str, str], np.ndarray]:
    """Every large-enough slice (feature, value), with both classes for ranking metrics."""
    features: Sequence[str] = (
        cfg.slice_features if cfg.slice_features is not None else sorted(slices)
    )
    masks: dict[tuple[str, str], np.ndarray] = {}
    for feature in features:
        if feature not in slices:
            raise ValueError(f"slice feature {feature!r} is not a column of the test split")
        values = np.asarray(slices[feature]).astype(str)
        for value in sorted(set(values.tolist())):
            mask = values == value
            if mask.sum() < cfg.slice_min_rows:
                continue
            if cfg.metric in ("roc_auc", "pr_auc"):
                positives = int(y[mask].sum())
                if positives < cfg.slice_min_positives or positives == mask.sum():
                    continue
            masks[(feature, value)] = mask
    return masks


def slice_guard(
    masks: dict[tuple[str, str], np.ndarray],
    boot: dict[tuple[str, str], list[np.ndarray]],
    y: np.ndarray,
    challenger: np.ndarray,
    production: np.ndarray,
    cfg: ValidationConfig,
) -> dict[str, Any]:
    """A slice blocks when it is worse than −slice_margin with confidence, Holm-corrected.

    Per slice, H0: Δ_slice ≥ −slice_margin; the bootstrap p-value is the share of resampled
    Δ_slice at or above −slice_margin. Holm's step-down procedure over the m slices keeps the
    chance of blocking a good challenger because of some slice at most α (family-wise).
    """
    name = cfg.metric
    sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
    rows: list[dict[str, Any]] = []
    for (feature, value), mask in masks.items():
        deltas = np.concatenate(boot[(feature, value)])
        deltas = deltas[np.isfinite(deltas)]
        production_slice = metric(name, y[mask], production[mask])
        delta = sign * (metric(name, y[mask], challenger[mask]) - production_slice)
        margin = resolved_margin(cfg.slice_margin, AUTO_SLICE_MARGIN, name, production_slice)
        p_value = (1 + int(np.sum(deltas >= -margin))) / (len(deltas) + 1)
        rows.append(
            {
                "feature": feature,
                "value": value,
                "rows": int(mask.sum()),
                "positives": int(y[mask].sum()),
                "margin": margin,
                "delta": float(delta),
                "delta_interval": _interval(deltas, cfg.alpha),
                "p_value": p_value,
                "worse": False,
            }
        )
    m = len(rows)
    for rank, row in enumerate(sorted(rows, key=lambda r: r["p_value"])):
        if row["p_value"] > cfg.alpha / (m - rank):
            break  # Holm: stop at the first hypothesis not rejected
        row["worse"] = True
    worse = [f"{r['feature']}={r['value']}" for r in rows if r["worse"]]
    shown = AUTO_SLICE_MARGIN if cfg.slice_margin is None else cfg.slice_margin
    rule = (
        f"−{shown}"
        if cfg.slice_margin is not None or name in RANKING_METRICS
        else f"−{AUTO_SLICE_MARGIN:.0%} of production's figure on each slice"
    )
    return {
        "passed": not worse,
        "margin": shown if name in RANKING_METRICS or cfg.slice_margin is not None else None,
        "correction": "holm",
        "tested": m,
        "worse": worse,
        "slices": rows,
        "reason": f"worse beyond the margin in {', '.join(worse)}"
        if worse
        else f"no slice of {m} worse beyond {rule} (Holm, α={cfg.alpha})",
    }


def golden_guard(
    y: np.ndarray,
    challenger: np.ndarray,
    production: np.ndarray,
    cfg: ValidationConfig,
    seed: int,
) -> dict[str, Any]:
    """The pinned golden dataset: blocks when the challenger is worse there beyond
    −golden_margin with confidence (the one-sided 1 − α upper bound of Δ is below it)."""
    name = cfg.metric
    sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
    y = np.asarray(y, dtype=np.float64)
    deltas = paired_bootstrap_delta(name, y, challenger, production, cfg.bootstrap_samples, seed)
    delta = sign * (metric(name, y, challenger) - metric(name, y, production))
    upper = _quantile(deltas, 1 - cfg.alpha)
    passed = upper is None or upper >= -cfg.golden_margin
    return {
        "passed": passed,
        "rows": len(y),
        "challenger_metric": metric(name, y, challenger),
        "production_metric": metric(name, y, production),
        "delta": float(delta),
        "delta_upper_bound": upper,
        "margin": cfg.golden_margin,
        "reason": f"Δ{name} {delta:+.4f}, upper bound "
        f"{'n/a' if upper is None else format(upper, '+.4f')} vs −{cfg.golden_margin}",
    }
