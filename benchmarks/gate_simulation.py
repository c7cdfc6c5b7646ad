"""How often the gate promotes a model worse by exactly the margin, and an equal model.

Each simulated gate run draws a fresh test set (`--rows`, `--positive-rate`) and scores two
correlated models on the identical rows (binormal scores: negatives N(0, 1), positives
N(d, 1), so ROC-AUC = Φ(d/√2); the two models share a latent per-row component, correlation
`--rho`). The gate is `lifecycle_assets.validation.gate.decide` exactly as the loop runs it
(metric, margin, α and bootstrap samples from the example config). The main rows run with
the calibration and slice guards off (binormal scores are not probabilities and there are no
slices here).

The calibration rows turn each model's score into the probability it implies at the label
rate it was trained at (`--train-rate`), while the test rows' label rate has moved
(`--positive-rate`): both models are miscalibrated alike, as after a change in the label
rate (the default 8 % → 3 % gives both a bias of about +0.05). They run with the example config's calibration guard on, and report how often the
guard blocked and how often the previous guard (the challenger's own bias interval outside
±tolerance and larger than production's) would have.

    .venv/bin/python benchmarks/gate_simulation.py                 # the demo's size
    .venv/bin/python benchmarks/gate_simulation.py --power-sizes 6000,12000,24000,48000

The shadow rows (`--shadow-sims`, `--shadow-rows`) run the two gates a challenger meets with
`release.shadow_days` on: the offline gate on a fresh test set, then, for a pass, the shadow
gate on a fresh set of live rows, where the challenger may be worse than it was offline.

Prints, per setting, the promotion rate with its simulation standard error, and the verdicts
the issue asks for: worse-by-margin rate ≤ α + 2 SE (guards off, with the calibration guard
on under the label-rate change, and with shadow on for a challenger equal offline and worse
by the margin on its shadow rows), equal-model rate ≥ 80 %.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from statistics import NormalDist

import numpy as np

from lifecycle_assets.config import ValidationConfig
from lifecycle_assets.metrics import metric
from lifecycle_assets.validation.gate import (
    AUTO_MARGIN,
    PASS,
    decide,
    paired_bootstrap_delta,
    resolved_margin,
)

PHI = NormalDist()


def separation(auc: float) -> float:
    """d such that the binormal ROC-AUC Φ(d/√2) equals `auc`."""
    return math.sqrt(2) * PHI.inv_cdf(auc)


def calibrated_probability(score: np.ndarray, d: float, rate: float) -> np.ndarray:
    """P(y = 1 | score) for binormal scores of separation d at label rate `rate`."""
    logit = math.log(rate / (1 - rate)) + d * score - d * d / 2
    return 1 / (1 + np.exp(-logit))


def previous_guard_blocks(guard: dict) -> bool:
    """The calibration guard before the paired one: the challenger's bias interval outside
    ±tolerance and its |bias| larger than production's."""
    lo, hi = guard["challenger_bias_interval"]
    tol = guard["tolerance"]
    outside = lo > tol or hi < -tol
    return outside and abs(guard["challenger_bias"]) > abs(guard["production_bias"])


def draw_pair(
    rng: np.random.Generator, rows: int, positive_rate: float, d_p: float, d_c: float, rho: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two correlated binormal scores (production's, the challenger's) of a fresh
    set of rows."""
    y = (rng.random(rows) < positive_rate).astype(np.float64)
    shared = rng.normal(size=rows)
    own_p, own_c = rng.normal(size=rows), rng.normal(size=rows)
    production = rho * shared + math.sqrt(1 - rho**2) * own_p + d_p * y
    challenger = rho * shared + math.sqrt(1 - rho**2) * own_c + d_c * y
    return y, production, challenger


def shadow_promotion_rate(
    *,
    rows: int,
    shadow_rows: int,
    positive_rate: float,
    auc_production: float,
    auc_offline: float,
    auc_live: float,
    rho: float,
    sims: int,
    seed: int,
) -> dict[str, float]:
    """Promotion rate with the shadow stage on: the offline gate on a fresh test set (the
    challenger's AUC there `auc_offline`), then, for a pass, the shadow gate on a fresh set
    of live rows (`shadow_rows`, the challenger's AUC there `auc_live`), both
    `gate.decide` as the loop runs them (the shadow gate: `validation.shadow`, the shadow's
    logged score as the challenger). Promoted = passed both."""
    cfg = ValidationConfig().model_copy(
        update={"calibration_tolerance": None, "slice_features": ()}
    )
    d_p = separation(auc_production)
    rng = np.random.default_rng(seed)
    offline_passed = promoted = 0
    started = time.perf_counter()
    for i in range(sims):
        y, production, challenger = draw_pair(
            rng, rows, positive_rate, d_p, separation(auc_offline), rho
        )
        if decide(y, challenger, production, cfg, seed=seed * 100_003 + i)["decision"] != PASS:
            continue
        offline_passed += 1
        y, production, shadow = draw_pair(
            rng, shadow_rows, positive_rate, d_p, separation(auc_live), rho
        )
        record = decide(y, shadow, production, cfg, seed=seed * 200_003 + i)
        promoted += record["decision"] == PASS
    rate = promoted / sims
    return {
        "rows": rows,
        "shadow_rows": shadow_rows,
        "auc_production": auc_production,
        "auc_offline": auc_offline,
        "auc_live": auc_live,
        "rho": rho,
        "sims": sims,
        "offline_pass_rate": offline_passed / sims,
        "shadow_pass_rate_after_offline": promoted / offline_passed if offline_passed else None,
        "promotion_rate": rate,
        "simulation_se": math.sqrt(max(rate * (1 - rate), 1e-12) / sims),
        "seconds_per_run": (time.perf_counter() - started) / sims,
    }


def promotion_rate(
    *,
    rows: int,
    positive_rate: float,
    auc_production: float,
    auc_challenger: float,
    rho: float,
    sims: int,
    seed: int,
    train_rate: float | None = None,
) -> dict[str, float]:
    """Promotion rate of the challenger. With `train_rate`, the scores are probabilities
    calibrated for that label rate (the test labels are drawn at `positive_rate`) and the
    example config's calibration guard is on."""
    base = ValidationConfig()
    cfg = base.model_copy(
        update={
            "calibration_tolerance": base.calibration_tolerance if train_rate else None,
            "slice_features": (),
        }
    )
    d_p, d_c = separation(auc_production), separation(auc_challenger)
    rng = np.random.default_rng(seed)
    promoted = blocked = previous_blocked = 0
    deltas, drawn = [], []
    started = time.perf_counter()
    for i in range(sims):
        y, production, challenger = draw_pair(rng, rows, positive_rate, d_p, d_c, rho)
        if train_rate:
            production = calibrated_probability(production, d_p, train_rate)
            challenger = calibrated_probability(challenger, d_c, train_rate)
        record = decide(y, challenger, production, cfg, seed=seed * 100_003 + i)
        promoted += record["decision"] == PASS
        deltas.append(record["delta"])
        drawn.append(record["bootstrap_samples"])
        if train_rate:
            guard = record["guards"]["calibration"]
            blocked += not guard["passed"]
            previous_blocked += previous_guard_blocks(guard)
    rate = promoted / sims
    out = {
        "rows": rows,
        "positives_expected": round(rows * positive_rate),
        "auc_production": auc_production,
        "auc_challenger": auc_challenger,
        "rho": rho,
        "sims": sims,
        "promotion_rate": rate,
        "simulation_se": math.sqrt(max(rate * (1 - rate), 1e-12) / sims),
        "mean_observed_delta": float(np.mean(deltas)),
        # resamples drawn per gate run: more where the verdict sat within the resampling's
        # own error (validation.bootstrap_max_samples)
        "mean_resamples": float(np.mean(drawn)),
        "extended_share": float(np.mean(np.array(drawn) > cfg.bootstrap_samples)),
        "seconds_per_gate_run": (time.perf_counter() - started) / sims,
    }
    if train_rate:
        out |= {
            "train_positive_rate": train_rate,
            "test_positive_rate": positive_rate,
            "calibration_guard_blocked": blocked / sims,
            "previous_guard_would_block": previous_blocked / sims,
        }
    return out


def bootstrap_speed(rows: int, positive_rate: float, samples: int, seed: int = 0) -> dict:
    """The vectorised paired bootstrap against resampling row indices one resample at a time
    (the gate's first implementation), same data, same number of resamples."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < positive_rate).astype(np.float64)
    a, b = rng.normal(size=rows) + 2 * y, rng.normal(size=rows) + 2 * y
    started = time.perf_counter()
    paired_bootstrap_delta("roc_auc", y, a, b, samples, seed)
    vectorised = time.perf_counter() - started
    loop_samples = max(samples // 5, 50)
    started = time.perf_counter()
    for _ in range(loop_samples):
        idx = rng.integers(0, rows, rows)
        metric("roc_auc", y[idx], a[idx]) - metric("roc_auc", y[idx], b[idx])
    loop = (time.perf_counter() - started) * samples / loop_samples
    return {"vectorised_s": vectorised, "per_resample_loop_s": loop, "speedup": loop / vectorised}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000, help="test-set rows (demo: ~6,000)")
    parser.add_argument("--positive-rate", type=float, default=0.03)
    parser.add_argument(
        "--train-rate",
        type=float,
        default=0.08,
        help="label rate the models of the calibration rows are calibrated for",
    )
    parser.add_argument(
        "--better-by", type=float, default=0.005, help="AUC gain of the better challenger"
    )
    parser.add_argument("--auc", type=float, default=0.90, help="production model's ROC-AUC")
    parser.add_argument("--rho", type=float, default=0.8, help="score correlation of the pair")
    parser.add_argument("--sims", type=int, default=600, help="gate runs per worse-model rate")
    parser.add_argument("--power-sims", type=int, default=200, help="gate runs per equal rate")
    parser.add_argument(
        "--power-sizes", default="", help="extra test-set sizes for the equal-model rate"
    )
    parser.add_argument(
        "--shadow-rows",
        type=int,
        default=6000,
        help="live rows of a shadow window (demo: 2 days of ~3,000 payments)",
    )
    parser.add_argument(
        "--shadow-sims", type=int, default=600, help="runs of the shadow rows (0: none)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cfg = ValidationConfig()
    # the margin the gate applies (unset in the example config: scaled to the metric)
    margin = resolved_margin(cfg.margin, AUTO_MARGIN, cfg.metric, args.auc)
    common = {"positive_rate": args.positive_rate, "rho": args.rho, "seed": args.seed}

    worse = promotion_rate(
        rows=args.rows,
        auc_production=args.auc,
        auc_challenger=args.auc - margin,
        sims=args.sims,
        **common,
    )
    worse_shifted = promotion_rate(
        rows=args.rows,
        auc_production=args.auc,
        auc_challenger=args.auc - margin,
        sims=args.sims,
        train_rate=args.train_rate,
        **common,
    )
    better_shifted = promotion_rate(
        rows=args.rows,
        auc_production=args.auc,
        auc_challenger=args.auc + args.better_by,
        sims=args.power_sims,
        train_rate=args.train_rate,
        **common,
    )
    sizes = [args.rows] + [int(s) for s in args.power_sizes.split(",") if s.strip()]
    equal = [
        promotion_rate(
            rows=n,
            auc_production=args.auc,
            auc_challenger=args.auc,
            sims=args.power_sims,
            **common,
        )
        for n in sizes
    ]
    shadow = {}
    if args.shadow_sims:
        # A challenger as good as production offline but worse by the margin on the traffic
        # it shadows (the case the shadow stage is for), and one equal on both.
        for name, live in (("worse_live", args.auc - margin), ("equal", args.auc)):
            shadow[name] = shadow_promotion_rate(
                rows=args.rows,
                shadow_rows=args.shadow_rows,
                auc_production=args.auc,
                auc_offline=args.auc,
                auc_live=live,
                sims=args.shadow_sims if name == "worse_live" else args.power_sims,
                **common,
            )
        worse_live = shadow["worse_live"]
        worse_live["bound"] = cfg.alpha + 2 * worse_live["simulation_se"]
        worse_live["meets_bound"] = worse_live["promotion_rate"] <= worse_live["bound"]
    speed = bootstrap_speed(args.rows, args.positive_rate, cfg.bootstrap_samples)
    worse_ok = worse["promotion_rate"] <= cfg.alpha + 2 * worse["simulation_se"]
    shifted_bound = cfg.alpha + 2 * worse_shifted["simulation_se"]
    shifted_ok = worse_shifted["promotion_rate"] <= shifted_bound
    result = {
        "config": {
            "metric": cfg.metric,
            "margin": margin,
            "alpha": cfg.alpha,
            "bootstrap_samples": cfg.bootstrap_samples,
        },
        "worse_by_margin": {
            **worse,
            "bound": cfg.alpha + 2 * worse["simulation_se"],
            "meets_bound": worse_ok,
        },
        "worse_by_margin_label_shift_calibration_guard": {
            **worse_shifted,
            "bound": shifted_bound,
            "meets_bound": shifted_ok,
        },
        "better_label_shift_calibration_guard": better_shifted,
        "equal": [{**e, "meets_80pct": e["promotion_rate"] >= 0.8} for e in equal],
        "shadow": shadow,
        "bootstrap_speed": speed,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"gate: {cfg.metric}, margin {margin}, α {cfg.alpha}, "
        f"{cfg.bootstrap_samples} bootstrap resamples (up to {cfg.bootstrap_max_samples}); "
        f"AUC {args.auc}, ρ {args.rho}, "
        f"{args.positive_rate:.0%} positives"
    )
    print(
        f"worse by the margin, {args.rows} rows, {worse['sims']} runs: promoted "
        f"{worse['promotion_rate']:.3f} ± {worse['simulation_se']:.3f} "
        f"(ratio to α {worse['promotion_rate'] / cfg.alpha:.2f}; bound α + 2 SE = "
        f"{cfg.alpha + 2 * worse['simulation_se']:.3f}: {'OK' if worse_ok else 'EXCEEDED'}); "
        f"resamples drawn {worse['mean_resamples']:.0f} on average, more than "
        f"{cfg.bootstrap_samples} in {worse['extended_share']:.1%} of runs"
    )
    ws, bs = worse_shifted, better_shifted
    shift = f"label rate {args.train_rate:.0%} → {args.positive_rate:.0%}, calibration guard on"
    print(
        f"worse by the margin, {shift}, {ws['sims']} runs: promoted "
        f"{ws['promotion_rate']:.3f} ± {ws['simulation_se']:.3f} (bound {shifted_bound:.3f}: "
        f"{'OK' if shifted_ok else 'EXCEEDED'}); guard blocked "
        f"{ws['calibration_guard_blocked']:.3f}, previous guard would have blocked "
        f"{ws['previous_guard_would_block']:.3f}"
    )
    print(
        f"better by {args.better_by} AUC, {shift}, {bs['sims']} runs: promoted "
        f"{bs['promotion_rate']:.3f} ± {bs['simulation_se']:.3f}; guard blocked "
        f"{bs['calibration_guard_blocked']:.3f}, previous guard would have blocked "
        f"{bs['previous_guard_would_block']:.3f}"
    )
    for e in equal:
        print(
            f"equal model, {e['rows']} rows (~{e['positives_expected']} positives), "
            f"{e['sims']} runs: promoted {e['promotion_rate']:.3f} ± {e['simulation_se']:.3f} "
            f"({'≥' if e['promotion_rate'] >= 0.8 else '<'} 80 %)"
        )
    for name, sh in shadow.items():
        what = "worse by the margin live" if name == "worse_live" else "equal live"
        verdict = (
            f" (bound α + 2 SE = {sh['bound']:.3f}: {'OK' if sh['meets_bound'] else 'EXCEEDED'})"
            if "bound" in sh
            else ""
        )
        print(
            f"shadow on, equal offline, {what}, {sh['rows']} test + {sh['shadow_rows']} shadow "
            f"rows, {sh['sims']} runs: offline pass {sh['offline_pass_rate']:.3f}, promoted "
            f"{sh['promotion_rate']:.3f} ± {sh['simulation_se']:.3f}{verdict}"
        )
    print(f"one gate run (bootstrap, guards off): {worse['seconds_per_gate_run'] * 1000:.0f} ms")
    print(
        f"paired bootstrap, {args.rows} rows × {cfg.bootstrap_samples} resamples: vectorised "
        f"{speed['vectorised_s']:.2f} s, per-resample loop {speed['per_resample_loop_s']:.2f} s "
        f"(speed-up {speed['speedup']:.1f}×)"
    )


if __name__ == "__main__":
    main()
