"""Quality benchmark: the loop's retraining policies against a scikit-learn reference, per
drift scenario, in one run. Every scenario's file is replayed through the whole loop
(`lifecycle replay`, every policy), once per model family; in the same script a
HistGradientBoosting reference is backtested on the same rows: static (fitted once, on the
loop's first training window) and retrained every period on the same trailing window with
the same label availability.

    .venv/bin/python benchmarks/quality.py                                  # full: 7 scenarios
    .venv/bin/python benchmarks/quality.py --scenarios stable,concept --out quality.json
    .venv/bin/python benchmarks/quality.py --size small --scenarios stable  # a smoke run
    .venv/bin/python benchmarks/quality.py --scenarios concept --first-window full
    .venv/bin/python benchmarks/quality.py --family mlp --family gbdt --workdir DIR  # families

Generated scenarios (numpy generators of this file, seeded; nothing from the fraud
simulator): a churn problem (binary) that is `stable`, under `covariate` shift (feature
distributions move, P(y|x) fixed), `prior` shift (the label rate steps, P(x|y) fixed) or
`concept` drift (P(y|x) changes at 45 % of the file), and an energy-demand `regression`
problem whose heating/cooling response and building mix change at 60 %. `--size full`: 24
weekly periods of 2,100 rows (50,400 rows); `--size small`: 6 weeks of 600 rows. Public
scenarios (public_data.py: NannyML's example data read out of its wheel, fetched once into
a cache): `public-wfh` (work from home, 36 monthly periods, a feature shift at 2019-05) and
`public-housing` (California housing above a value, 19 monthly periods, the region moving
with time); `--size small`: 8 months of at most 600 rows. The loop trains on four periods,
tests on the next, and labels mature one period late; `--first-window full` makes the cold
start wait for a full train window (default: the first matured period suffices).

`--family NAME` (repeatable; default the config's default family): the loop's policies are
replayed once per family; with several, each row is `policy[family]` and the bars are per
family. Per scenario and row (policy never/periodic/triggered, reference
gbm-static/gbm-retrained): mean quality (ROC-AUC or RMSE) over the periods in which every
policy of every family served a model, the mean over their last third, retrains, gate
rejections, alerts and training seconds per period (the loop: its training stage —
datasets, fit, gate, promotion; the reference: the fit). Then the bars, each PASS or MISS
with its figures. With `--workdir`, every family's replay and every scenario's result are
kept as they finish (`DIR/<scenario>/family-<f>.json`, `result.json`) and a rerun skips
them; `--out` is rewritten after each scenario. `--jobs N` (default: the machine's cores)
replays up to N policies of a family at once, each in a process of its own: the same
results, with each policy's seconds taken while the others ran. A run that replays every
scenario at the full size itself is also judged on its own wall time (the full benchmark in
30 minutes). The exit code is 0 when the benchmark ran, whatever the verdicts (a benchmark
reports).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

try:
    import public_data  # run as a script: benchmarks/ is on sys.path
except ImportError:  # imported as benchmarks.quality
    from benchmarks import public_data  # type: ignore[no-redef]

# `shadow` (periodic with the shadow stage on) is replayed when asked for (`--policy shadow`).
POLICIES = ("never", "periodic", "triggered", "shadow")
DEFAULT_POLICIES = ("never", "periodic", "triggered")
REFERENCES = ("gbm-static", "gbm-retrained")
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # a Monday: ISO weeks are the periods
WEEK_S = 7 * 86_400
SIZES = {"full": (24, 2100), "small": (6, 600)}  # (weekly periods, rows per period)

# Bars (the quality-engine issue): best loop policy vs the retrained reference.
AUC_SLACK = 0.002  # binary: best policy ROC-AUC >= retrained GBM - this
RMSE_RATIO = 1.02  # regression: best policy RMSE <= this x retrained GBM
TRIGGERED_SLACK = 0.003  # drift scenarios: triggered >= periodic - this (ROC-AUC) ...
TRIGGERED_RETRAIN_SHARE = 1 / 3  # ... with at most this share of periodic's retrains
STABLE_REJECTION_SHARE = 0.10  # stable: gate rejections <= this share of challengers
# The label-free estimate (binary): on these scenarios, per policy, the median
# |estimated - realised| ROC-AUC over the periods and the share of periods whose interval
# covers the realised value. Elsewhere (concept drift, prior shift, regression's RMSE) the
# figures are shown, not judged: the estimate is not meant to see a changed P(y | x).
ESTIMATE_SCENARIOS = ("stable", "covariate")
ESTIMATE_ERROR = 0.01
ESTIMATE_COVERAGE = 0.80

PLANS = ("basic", "plus", "pro")
REGIONS = ("north", "south", "east", "west", "central")
DEVICES = ("ios", "android", "web")
BUILDINGS = ("flat", "terrace", "detached", "office")
TARIFFS = ("fixed", "variable", "night")


# --- generators ------------------------------------------------------------------------------


def _times(rng: np.random.Generator, periods: int, per_period: int) -> tuple[np.ndarray, Any]:
    """Period index and a uniform instant inside that ISO week, per row (in time order)."""
    period = np.repeat(np.arange(periods), per_period)
    offset = np.sort(rng.uniform(0, WEEK_S, (periods, per_period)), axis=1).ravel()
    seconds = period * WEEK_S + offset
    times = np.datetime64(START.replace(tzinfo=None), "us") + (seconds * 1e6).astype(
        "timedelta64[us]"
    )
    return period, times


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category index per row from row-wise probabilities (rows × categories)."""
    cum = np.cumsum(probs, axis=1)
    return (rng.random(len(probs))[:, None] > cum[:, :-1]).sum(axis=1)


def _mix(a: list[float], b: list[float], w: np.ndarray) -> np.ndarray:
    """Row-wise category probabilities moving from `a` (w=0) to `b` (w=1)."""
    return (1 - w)[:, None] * np.array(a) + w[:, None] * np.array(b)


def _churn_features(rng: np.random.Generator, w: np.ndarray) -> dict[str, np.ndarray]:
    """The churn problem's features; `w` in [0, 1] per row moves their distributions."""
    n = len(w)
    spend = np.exp(rng.normal(3.5 + 0.45 * w, 0.6))
    tenure = rng.gamma(2.0, 12.0 * (1 - 0.5 * w))
    calls = rng.poisson(1.5 + 1.0 * w).astype(np.float64)
    usage = rng.normal(40 + 15 * w, 12).clip(0)
    return {
        "monthly_spend": spend.round(2),
        "tenure_months": tenure.round(2),
        "support_calls": calls,
        "usage_hours": usage.round(2),
        "plan": _pick(rng, _mix([0.5, 0.35, 0.15], [0.2, 0.35, 0.45], w)),
        "region": rng.integers(0, len(REGIONS), n),
        "device": _pick(rng, _mix([0.4, 0.4, 0.2], [0.25, 0.3, 0.45], w)),
    }


def _churn_logit(f: dict[str, np.ndarray], concept: np.ndarray) -> np.ndarray:
    """log-odds of churn. concept 0: the original relation; 1: the drifted one (what drives
    churn changes: price sensitivity flips between plans, tenure and support calls matter
    much less, the web app and the east region become the problem)."""
    spend = (np.log(f["monthly_spend"]) - 3.5) / 0.6
    tenure = (np.log1p(f["tenure_months"]) - 2.9) / 0.8
    calls = (f["support_calls"] - 1.5) / 1.2
    usage = (f["usage_hours"] - 40) / 12
    basic, pro = (f["plan"] == 0).astype(float), (f["plan"] == 2).astype(float)
    web = (f["device"] == 2).astype(float)
    region_a = np.array([0.3, -0.2, 0.0, 0.4, -0.5])[f["region"]]
    region_b = np.array([-0.3, 0.2, 0.9, -0.4, 0.0])[f["region"]]
    a = (
        -2.3
        + 0.9 * calls
        - 1.1 * tenure
        + 0.7 * spend * basic
        - 0.5 * spend * pro
        + 0.6 * np.sin(1.5 * usage)
        + 0.6 * (usage < -1.2)
        + region_a
        + 0.2 * web
    )
    b = (
        -2.3
        + 0.2 * calls
        - 0.3 * tenure
        - 0.7 * spend * basic
        + 0.8 * spend * pro
        - 0.6 * np.sin(1.5 * usage)
        + 0.8 * (usage > 1.0)
        + region_b
        + 1.1 * web
    )
    return (1 - concept) * a + concept * b


def _churn_frame(
    period: np.ndarray, times: np.ndarray, f: dict[str, np.ndarray], y: np.ndarray, seed: int
) -> pl.DataFrame:
    rng = np.random.default_rng(seed + 1)
    return pl.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in rng.integers(0, 20_000, len(period))],
            "event_time": pl.Series(times).dt.replace_time_zone("UTC"),
            "monthly_spend": f["monthly_spend"],
            "tenure_months": f["tenure_months"],
            "support_calls": f["support_calls"],
            "usage_hours": f["usage_hours"],
            "plan": np.array(PLANS)[f["plan"]],
            "region": np.array(REGIONS)[f["region"]],
            "device": np.array(DEVICES)[f["device"]],
            "churned": y.astype(np.int64),
        }
    )


def churn(
    periods: int, per_period: int, seed: int, *, covariate: bool = False, concept_at: float = 2.0
) -> pl.DataFrame:
    """Churn rows, `per_period` per week. `covariate`: the feature distributions move from
    the first fifth of the file to its end (P(y|x) fixed). `concept_at`: the fraction of the
    periods from which P(y|x) is the drifted relation (> 1: never)."""
    rng = np.random.default_rng(seed)
    period, times = _times(rng, periods, per_period)
    frac = period / max(periods - 1, 1)
    w = np.clip((frac - 0.2) / 0.8, 0, 1) if covariate else np.zeros(len(period))
    f = _churn_features(rng, w)
    concept = (period >= round(concept_at * periods)).astype(float)
    p = 1 / (1 + np.exp(-_churn_logit(f, concept)))
    y = rng.random(len(p)) < p
    return _churn_frame(period, times, f, y, seed)


def churn_prior(periods: int, per_period: int, seed: int) -> pl.DataFrame:
    """Label (prior) shift: the churn rate per week steps from 10 % to 30 % at 40 % of the
    file and down to 20 % at 75 %, each class's features drawn as in `stable` (P(x|y)
    fixed: rows are drawn from the stable joint and kept by class until the week's quota of
    churners and stayers is met)."""
    rng = np.random.default_rng(seed)
    period, times = _times(rng, periods, per_period)
    rates = np.where(
        np.arange(periods) >= round(0.75 * periods),
        0.20,
        np.where(np.arange(periods) >= round(0.4 * periods), 0.30, 0.10),
    )
    pos_need = np.round(rates * per_period).astype(int)
    neg_need = per_period - pos_need
    # A pool from the stable joint, large enough for every week's quota of each class.
    pool_n = int(max(pos_need.sum() / 0.08, neg_need.sum() / 0.8)) + 10_000
    f = _churn_features(rng, np.zeros(pool_n))
    p = 1 / (1 + np.exp(-_churn_logit(f, np.zeros(pool_n))))
    y = rng.random(pool_n) < p
    pos, neg = rng.permutation(np.flatnonzero(y)), rng.permutation(np.flatnonzero(~y))
    if len(pos) < pos_need.sum() or len(neg) < neg_need.sum():
        raise RuntimeError("prior-shift pool too small")
    chosen = []
    pi = ni = 0
    for k in range(periods):
        rows = np.concatenate([pos[pi : pi + pos_need[k]], neg[ni : ni + neg_need[k]]])
        pi, ni = pi + pos_need[k], ni + neg_need[k]
        chosen.append(rng.permutation(rows))
    idx = np.concatenate(chosen)
    return _churn_frame(period, times, {k: v[idx] for k, v in f.items()}, y[idx], seed)


def energy(periods: int, per_period: int, seed: int, drift_at: float = 0.6) -> pl.DataFrame:
    """Regression: a building's daily energy use (kWh). From `drift_at` of the file on,
    heat pumps: heating takes twice as much per degree, cooling 1.5x, and the building mix
    moves towards detached houses; the weather follows the seasons throughout."""
    rng = np.random.default_rng(seed)
    period, times = _times(rng, periods, per_period)
    n = len(period)
    drifted = period >= round(drift_at * periods)
    season = np.cos(2 * np.pi * (period + rng.random(n)) / 52.0)  # winter at week 0
    temperature = rng.normal(11 - 8 * season, 4)
    building = _pick(
        rng,
        np.where(drifted[:, None], [0.2, 0.25, 0.45, 0.1], [0.4, 0.3, 0.15, 0.15]),
    )
    area = rng.gamma(6.0, np.array([12.0, 16.0, 28.0, 60.0])[building])
    occupants = rng.integers(1, 6, n).astype(np.float64)
    solar = rng.exponential(1.5, n) * (rng.random(n) < 0.35)
    tariff = rng.integers(0, len(TARIFFS), n)
    heat = np.maximum(0, 16 - temperature) * np.where(drifted, 1.6, 0.8)
    cool = np.maximum(0, temperature - 21) * np.where(drifted, 1.2, 0.8)
    kwh = (
        4
        + 0.06 * area
        + 1.8 * occupants
        + heat * (0.5 + area / 150)
        + cool
        - 1.5 * solar
        + np.array([0.0, 1.0, 2.0, 4.0])[building]
        + np.array([0.0, 0.5, -1.0])[tariff]
        + rng.normal(0, 2.5, n)
    ).clip(0.5)
    return pl.DataFrame(
        {
            "meter_id": [f"m{i:05d}" for i in rng.integers(0, 8_000, n)],
            "event_time": pl.Series(times).dt.replace_time_zone("UTC"),
            "temperature_c": temperature.round(2),
            "floor_area_m2": area.round(1),
            "occupants": occupants,
            "solar_kw": solar.round(3),
            "building_type": np.array(BUILDINGS)[building],
            "tariff": np.array(TARIFFS)[tariff],
            "kwh": kwh.round(3),
        }
    )


# --- scenarios and their configs --------------------------------------------------------------


TRAIN_PERIODS = 4
DAYS_PER_PERIOD = {"week": 7.0, "month": 30.44}
INTERVAL = {"week": "1w", "month": "1mo"}
# Label delay in periods (the data's time): [0.5, 9] days for weekly periods; a few per cent
# of labels miss the one-period maturity window.
LABEL_DELAY_PERIODS = (0.5 / 7, 9.0 / 7)


@dataclass(frozen=True)
class Problem:
    """A scenario file's columns (its `problem` section)."""

    entity_id: str
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    event_time: str = "event_time"


CHURN = Problem(
    "customer_id",
    "churned",
    ("monthly_spend", "tenure_months", "support_calls", "usage_hours"),
    ("plan", "region", "device"),
)
ENERGY = Problem(
    "meter_id",
    "kwh",
    ("temperature_c", "floor_area_m2", "occupants", "solar_kw"),
    ("building_type", "tariff"),
)


@dataclass(frozen=True)
class Scenario:
    name: str
    task: str
    drift: bool  # a drift scenario: the triggered-vs-periodic bar applies
    what: str
    problem: Problem
    # (size, public-data cache, echo) -> the replay file's rows, in time order
    make: Callable[[str, Path, Callable[[str], None]], pl.DataFrame]
    source: str
    period: str = "week"  # the replay period: one period of data is one loop day
    # A binary label that missed its maturity window (`labels.unlabeled_after_maturity`):
    # `negative` where the label is an event whose absence means no (churn), `drop` where it
    # is a measured property that is merely late (a house's value, where someone worked). A
    # regression label is always dropped.
    unlabeled: str = "negative"

    def rows(self, size: str, cache: Path, echo: Callable[[str], None]) -> pl.DataFrame:
        return self.make(size, cache, echo)


def _generated(
    fn: Callable[[int, int, int], pl.DataFrame], seed: int
) -> Callable[[str, Path, Callable[[str], None]], pl.DataFrame]:
    return lambda size, _cache, _echo: fn(*SIZES[size], seed)


def _public(name: str) -> Callable[[str, Path, Callable[[str], None]], pl.DataFrame]:
    return lambda size, cache, echo: public_data.load(name, size, cache, echo=echo)


def _public_problem(name: str) -> Problem:
    spec = public_data.PUBLIC[name]
    return Problem(
        public_data.ID, spec.label, spec.numeric, spec.categorical, event_time=public_data.TIME
    )


def _period_rows(frame: pl.DataFrame, scenario: Scenario) -> list[int]:
    """Rows per period of the data's time (the replay's periods), in order."""
    start = pl.col(scenario.problem.event_time).dt.truncate(INTERVAL[scenario.period])
    return frame.group_by(start).len().sort(scenario.problem.event_time)["len"].to_list()


RECIPE_KEYS = {
    "holdout": "holdout_fraction",
    "calibration": "calibration",
    "folds": "calibration_folds",
    "epochs": "epochs",
    "seed": "seed",
}
# Recipe items that set the scenario's `windows:` (a history for training to choose from).
WINDOW_RECIPE_KEYS = {"history": "history_days"}


def _recipe_items(spec: str) -> list[tuple[str, str]]:
    """A `--family` spec's recipe as (key, value) pairs, in order; one line for a bad item."""
    _, _, recipe = spec.partition("@")
    items = []
    for item in filter(None, recipe.split(",")):
        key, _, value = item.partition("=")
        if not key or not value:
            keys = ", ".join([*RECIPE_KEYS, *WINDOW_RECIPE_KEYS])
            raise ValueError(
                f"--family {spec}: recipe items are KEY=VALUE ({keys} or a "
                "hyperparameter of the family)"
            )
        items.append((key, value))
    return items


def family_training(spec: str) -> dict[str, Any]:
    """The `training:` section of a `--family` spec: a family name, optionally with a
    training recipe after `@` (`gbdt@holdout=0.2`, `mlp@holdout=0.15,epochs=12`,
    `gbdt@seed=1`) or the family's own hyperparameters (`gbdt@lambda_l2=0,bagging_fraction=1`), so recipes are
    compared like families (each spec is its own row). The config's validation names a
    hyperparameter the family does not have."""
    training: dict[str, Any] = {"model": {"family": spec.partition("@")[0]}}
    for key, value in _recipe_items(spec):
        if key in WINDOW_RECIPE_KEYS:
            continue  # family_windows
        if key not in RECIPE_KEYS:
            training["model"][key] = yaml.safe_load(value)
        elif key == "calibration":
            training[RECIPE_KEYS[key]] = value
        elif key in ("epochs", "seed", "folds"):
            training[RECIPE_KEYS[key]] = int(float(value))
        else:
            training[RECIPE_KEYS[key]] = float(value)
    return training


def family_windows(spec: str) -> dict[str, Any]:
    """The `windows:` settings a `--family` spec's recipe adds: `gbdt@history=24` lets
    training choose between the train window and 24 periods of history."""
    return {
        WINDOW_RECIPE_KEYS[k]: int(float(v))
        for k, v in _recipe_items(spec)
        if k in WINDOW_RECIPE_KEYS
    }


def _config(
    scenario: Scenario, frame: pl.DataFrame, first_window: str, family: str
) -> dict[str, Any]:
    """The scenario's lifecycle.yaml: periods of the data's time (weeks, or months for the
    public sets), labels mature one period late, train on four periods, test on one, the
    model family `family`; otherwise the project's defaults (training, gate, monitoring).

    `first_window`: `one` — `windows.min_train_rows` is one period's rows (the smallest
    period's), so the cold start trains the first model on the first matured period alone
    (as the shipped 2,000 does with a few thousand rows a day); `full` — it is 95 % of a
    full train window's rows, so the first model waits for a full window (late regression
    labels are dropped: hence 95 %)."""
    binary = scenario.task == "binary"
    per_period = min(_period_rows(frame, scenario))
    min_train = (
        min(2000, per_period) if first_window == "one" else int(0.95 * TRAIN_PERIODS * per_period)
    )
    p = scenario.problem
    days = DAYS_PER_PERIOD[scenario.period]
    cfg: dict[str, Any] = {
        "problem": {
            "name": f"quality-{scenario.name}",
            "task": scenario.task,
            "entity_id": p.entity_id,
            "event_time": p.event_time,
            "label": p.label,
            "numeric_features": list(p.numeric),
            "categorical_features": list(p.categorical),
            "pii_columns": [],
            # The shipped range handling: no declared domains, so nothing is refused; values
            # beyond a model's training range are served and flagged (feature_range_slack).
            "feature_ranges": {},
        },
        "labels": {
            "maturity_days": 1,
            "unlabeled_after_maturity": scenario.unlabeled if binary else "drop",
        },
        "windows": {
            "train_days": TRAIN_PERIODS,
            "test_days": 1,
            "min_train_rows": min_train,
            "min_test_rows": min(1000, per_period // 2),
            **family_windows(family),
        },
        "data": {"categories": {}},
        "training": family_training(family),
        "replay": {
            "policies": list(DEFAULT_POLICIES),
            "period": scenario.period,
            # In the data's time: a label late in a period may miss its maturity window.
            "label_delay_days": [round(x * days, 1) for x in LABEL_DELAY_PERIODS],
            "seed": 0,
        },
    }
    if not binary:
        # label units (kWh; the label's sd is about 9)
        cfg["validation"] = {"metric": "rmse", "margin": 0.3, "calibration_tolerance": 0.5}
        cfg["monitoring"] = {"quality_drop": 1.0, "bias_tolerance": 0.5}
    return cfg


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "stable",
            "binary",
            False,
            "churn, nothing changes",
            CHURN,
            _generated(churn, 101),
            "generated (seed 101)",
        ),
        Scenario(
            "covariate",
            "binary",
            True,
            "churn, features move from 20 % of the file on, P(y|x) fixed",
            CHURN,
            _generated(lambda n, k, seed: churn(n, k, seed, covariate=True), 202),
            "generated (seed 202)",
        ),
        Scenario(
            "prior",
            "binary",
            True,
            "churn, label rate 10 % → 30 % at 40 %, → 20 % at 75 %, P(x|y) fixed",
            CHURN,
            _generated(churn_prior, 303),
            "generated (seed 303)",
        ),
        Scenario(
            "concept",
            "binary",
            True,
            "churn, P(y|x) changes at 45 % of the file",
            CHURN,
            _generated(lambda n, k, seed: churn(n, k, seed, concept_at=0.45), 404),
            "generated (seed 404)",
        ),
        Scenario(
            "regression",
            "regression",
            True,
            "energy kWh, heating/cooling response and building mix change at 60 %",
            ENERGY,
            _generated(energy, 505),
            "generated (seed 505)",
        ),
        *(
            Scenario(
                name,
                "binary",
                True,
                spec.what,
                _public_problem(name),
                _public(name),
                f"{public_data.WHEEL}: {spec.stem}_*.csv",
                period="month",
                unlabeled="drop",
            )
            for name, spec in public_data.PUBLIC.items()
        ),
    )
}


# --- the reference backtest ------------------------------------------------------------------


def _design(frame: pl.DataFrame, config: Any, vocab: dict[str, list[str]]) -> np.ndarray:
    """Numeric features as they are, categoricals as codes of a fixed vocabulary."""
    p = config.problem
    cols = [frame[c].to_numpy().astype(np.float64) for c in p.numeric_features]
    for c in p.categorical_features:
        codes = {v: i for i, v in enumerate(vocab[c])}
        cols.append(np.array([codes.get(v, -1) for v in frame[c].to_list()], dtype=np.float64))
    x = np.column_stack(cols)
    x[x == -1] = np.nan  # unseen category: missing
    return x


def matured_label(config: Any, loop_start: dt.date) -> pl.Expr:
    """A traffic frame's label as the loop's datasets see it once its period has matured:
    the label where it arrived within `labels.maturity_days` periods of its prediction's
    period; one that did not is 0 for a binary task under `unlabeled_after_maturity:
    negative`, else null (dropped)."""
    from lifecycle_assets.replay.source import LABEL, LABEL_TIME, PERIOD

    start = dt.datetime.combine(loop_start, dt.time(), dt.UTC)
    due = pl.lit(start) + pl.duration(
        days=pl.col(PERIOD).cast(pl.Int64) + config.labels.maturity_days + 1
    )
    arrived = pl.col(LABEL_TIME).is_not_null() & (pl.col(LABEL_TIME) < due)
    negative = (
        config.problem.task == "binary" and config.labels.unlabeled_after_maturity == "negative"
    )
    missed = pl.lit(0.0) if negative else pl.lit(None, dtype=pl.Float64)
    return pl.when(arrived).then(pl.col(LABEL)).otherwise(missed)


def reference_backtest(data: Path, config_file: Path, first_day: int | None) -> dict[str, Any]:
    """HistGradientBoosting on the replay's own traffic frame (same rows, request ids and
    label arrival times as `prepare_traffic` gives the loop).

    The loop on loop day D serves period D's rows with the model in production after day
    D-1, and on day D trains on `split_windows(D)["train"]` with the labels that arrived
    within `labels.maturity_days` periods of their prediction's period (one that did not: 0
    under `unlabeled_after_maturity: negative`, else dropped). So the
    retrained reference scores period p with a model fitted at day p-1 on exactly those
    rows; the static one with a model fitted once on the train window of `first_day` (the
    day the loop trained its first model)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    from lifecycle_assets.config import load_config
    from lifecycle_assets.data.transforms import split_windows
    from lifecycle_assets.defs.partitions import daily
    from lifecycle_assets.replay.runner import served_quality
    from lifecycle_assets.replay.source import (
        LABEL,
        PERIOD,
        load_table,
        prepare_traffic,
    )

    config = load_config(config_file)
    last = dt.date.fromisoformat(daily.get_last_partition_key() or "2026-01-01")
    traffic = prepare_traffic(load_table(data), config, config.replay.period, last)
    binary = config.problem.task == "binary"
    frame = traffic.frame.with_columns(
        matured_label(config, traffic.loop_start).alias("_train_label")
    )
    vocab = {c: sorted(frame[c].unique().to_list()) for c in config.problem.categorical_features}
    n_num = len(config.problem.numeric_features)
    cat_mask = [False] * n_num + [True] * len(config.problem.categorical_features)
    periods = len(traffic.periods)
    by_period = [frame.filter(pl.col(PERIOD) == k) for k in range(periods)]
    x_period = [_design(f, config, vocab) for f in by_period]

    def window(day: int) -> tuple[np.ndarray, np.ndarray] | None:
        start, end = split_windows(traffic.loop_start + dt.timedelta(days=day), config)["train"]
        lo, hi = (start - traffic.loop_start).days, (end - traffic.loop_start).days
        keep = [k for k in range(max(lo, 0), min(hi, periods - 1) + 1)]
        if not keep:
            return None
        xs, ys = [], []
        for k in keep:
            y = by_period[k]["_train_label"].to_numpy().astype(np.float64)
            ok = np.isfinite(y)
            xs.append(x_period[k][ok])
            ys.append(y[ok])
        x, y = np.concatenate(xs), np.concatenate(ys)
        if len(y) < config.windows.min_train_rows or len(np.unique(y)) < 2:
            return None  # the loop's cold-start rule: no model from this window
        return x, y

    def fit(x: np.ndarray, y: np.ndarray) -> tuple[Any, float]:
        model = (
            HistGradientBoostingClassifier(categorical_features=cat_mask, random_state=0)
            if binary
            else HistGradientBoostingRegressor(categorical_features=cat_mask, random_state=0)
        )
        t0 = time.perf_counter()
        with threadpool_limits(1):  # as the loop's training (training.cpu_threads: 1)
            model.fit(x, y)
        return model, time.perf_counter() - t0

    def score(model: Any, k: int) -> float | None:
        x = x_period[k]
        with threadpool_limits(1):
            s = model.predict_proba(x)[:, 1] if binary else model.predict(x)
        q = served_quality(list(map(float, s)), by_period[k][LABEL], config.validation.metric)
        return q["quality"]

    started = time.perf_counter()
    retrained: list[float | None] = [None] * periods
    fits, fit_s = 0, 0.0
    for p in range(1, periods):
        win = window(p - 1)
        if win is None:
            continue
        model, s = fit(*win)
        fits, fit_s = fits + 1, fit_s + s
        retrained[p] = score(model, p)
    if first_day is None:  # no loop run to read it from: the first day with a model
        first_day = next((d for d in range(periods) if window(d) is not None), None)
    static: list[float | None] = [None] * periods
    static_s, static_fits = 0.0, 0
    if first_day is not None and (win := window(first_day)) is not None:
        model, static_s = fit(*win)
        static_fits = 1
        for p in range(first_day + 1, periods):
            static[p] = score(model, p)
    return {
        "loop_start": traffic.loop_start.isoformat(),
        "first_model_day": first_day,
        "gbm-static": {"qualities": static, "fits": static_fits, "fit_seconds": static_s},
        "gbm-retrained": {"qualities": retrained, "fits": fits, "fit_seconds": fit_s},
        "wall_seconds": round(time.perf_counter() - started, 2),
    }


# --- one scenario ----------------------------------------------------------------------------


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def _row(qualities: list[float | None], common: list[int]) -> dict[str, Any]:
    """Mean over the common periods and over their last third."""
    q = [qualities[i] for i in common]
    finite = [x for x in q if x is not None and math.isfinite(x)]
    tail = q[len(q) - max(1, len(q) // 3) :] if q else []
    tail_f = [x for x in tail if x is not None and math.isfinite(x)]
    return {
        "mean": _mean(finite) if len(finite) == len(q) else None,
        "last_third": _mean(tail_f) if len(tail_f) == len(tail) else None,
        "periods": len(q),
        "per_period": q,
    }


def _digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:16]


def _load_record(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """A finished step's record when it was made with the same inputs (`key`), else None."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("key") == key else None


def _write_record(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)  # a run killed mid-write leaves no half a record


def alerts_from_better(replay_file: Path) -> dict[str, list[str]]:
    """Per policy, the loop days whose gate alert was raised against a challenger at least
    as good as production on the gate metric ("day (Δ)"), read off the replay's periods.
    The offline gate's alert is judged by the day's challenger; a shadow gate's (a rejected
    shadow, `shadow_alerts`) by the shadow's Δ on its live rows."""
    summary = json.loads(replay_file.read_text())
    sign = 1.0 if summary["higher_is_better"] else -1.0
    out: dict[str, list[str]] = {}
    for name, res in summary["policies"].items():
        days = out.setdefault(name, [])
        for p in res["periods"]:
            gate_alerts = (p.get("alerts") or []).count("gate")
            shadow = p.get("shadow_gate") or {}
            # (replays recorded before `shadow_alerts`: the offline gate alerts only on a FAIL)
            default_shadow = gate_alerts if p.get("decision") != "FAIL" and shadow else 0
            shadow_alerts = p.get("shadow_alerts", default_shadow)
            ch, pr = p.get("challenger_metric"), p.get("production_metric")
            deltas = []
            if gate_alerts > shadow_alerts and ch is not None and pr is not None:
                deltas.append(sign * (ch - pr))
            if shadow_alerts and shadow.get("delta") is not None:
                deltas.append(sign * float(shadow["delta"]))
            days.extend(f"{p['loop_day']} ({d:+.4f})" for d in deltas if d >= 0)
    return out


def _with_alerts_from_better(rows: dict[str, dict[str, Any]], root: Path) -> None:
    for row in rows.values():
        replay = root / f"replay-{row.get('family')}" / "replay.json"
        if row.get("policy") in POLICIES and replay.is_file():
            row["alerts_from_better"] = alerts_from_better(replay).get(row["policy"], [])


def row_name(policy: str, family: str, families: list[str]) -> str:
    """`periodic` with one family (the original contract), `periodic[gbdt]` with several."""
    return policy if len(families) == 1 else f"{policy}[{family}]"


def replay_family(
    scenario: Scenario,
    family: str,
    root: Path,
    data: Path,
    config: dict[str, Any],
    key: dict[str, Any],
    policies: list[str],
    echo: Callable[[str], None],
    jobs: int = 1,
) -> dict[str, Any]:
    """One family's `lifecycle replay` of the scenario, every policy (`jobs` of them at once);
    its record is written to `root/family-<family>.json` and reused when the inputs (`key`)
    are the same."""
    from lifecycle_assets.replay.runner import run_replay

    record_file = root / f"family-{family}.json"
    if (done := _load_record(record_file, key)) is not None:
        echo(f"{scenario.name} [{family}]: finished earlier, {record_file}")
        return done
    config_file, replay_dir = root / f"lifecycle-{family}.yaml", root / f"replay-{family}"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    echo(
        f"{scenario.name} [{family}]: lifecycle replay {data} --config {config_file} "
        f"--workdir {replay_dir}"
    )
    t0 = time.perf_counter()
    run_replay(data, config_file, replay_dir, policies=policies, echo=echo, jobs=jobs)
    replay_s = time.perf_counter() - t0
    summary = json.loads((replay_dir / "replay.json").read_text())
    pols = summary["policies"]
    first = [i for res in pols.values() for i, p in enumerate(res["periods"]) if p["challenger"]]
    record = {
        "key": key,
        "family": family,
        "metric": summary["metric"],
        "higher_is_better": summary["higher_is_better"],
        "periods": summary["periods"],
        "loop_days": [p["loop_day"] for p in next(iter(pols.values()))["periods"]],
        "periods_compared": summary["comparison"]["periods_compared"],
        "first_challenger": min(first) if first else None,
        "replay_seconds": round(replay_s, 1),
        "command": f"lifecycle replay {data.name} --config {config_file.name}",
        "policies": {
            name: {
                "qualities": [p["quality"] for p in res["periods"]],
                "retrains": res["retrains"],
                "rejections": res["rejections"],
                "decisions": res["decisions"],
                "alerts": res["alerts"],
                "triggers_fired": res["triggers_fired"],
                "train_seconds": sum(p["seconds"].get("training", 0.0) for p in res["periods"]),
                "seconds_per_period": res["seconds_per_period"],
                "estimate": res.get("estimate"),
                "estimate_errors": [p.get("estimate_error") for p in res["periods"]],
            }
            for name, res in pols.items()
        },
    }
    _write_record(record_file, record)
    return record


def run_scenario(
    scenario: Scenario,
    size: str,
    root: Path,
    policies: list[str],
    echo: Callable[[str], None],
    first_window: str = "one",
    families: list[str] | None = None,
    cache: Path | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """The scenario through the loop once per family (every policy, `jobs` at once) and the
    reference.

    Written as it goes under `root`: data.parquet, per family lifecycle-<f>.yaml,
    replay-<f>/ and family-<f>.json, and the scenario's result.json. A rerun with the same
    `root` reuses what finished with the same inputs (data, configs, policies)."""
    from lifecycle_assets.config import parse_config

    families = families or [default_family()]
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data.parquet"
    frame = scenario.rows(size, cache or public_data.DEFAULT_CACHE, echo)
    data_key = _digest(frame.write_csv())
    configs = {f: _config(scenario, frame, first_window, f) for f in families}
    # The history a config resolves to is part of its inputs: unset, it follows the
    # project's default (`LifecycleConfig.history_days`), which the YAML does not show.
    keys = {
        f: {
            "data": data_key,
            "config": _digest(yaml.safe_dump(c)),
            "history_days": parse_config(c).history_days,
            "policies": policies,
        }
        for f, c in configs.items()
    }
    scenario_key = {"families": keys, "size": size, "first_window": first_window}
    result_file = root / "result.json"
    if (done := _load_record(result_file, scenario_key)) is not None:
        echo(f"{scenario.name}: finished earlier, {result_file}")
        result = done["result"]
        result["reused"] = True  # its seconds are not this run's
        _with_alerts_from_better(result["results"], root)
        result["bars"] = bars(result)  # judged by this version's bars
        return result
    if not data.is_file() or _digest(pl.read_parquet(data).write_csv()) != data_key:
        frame.write_parquet(data)
    label = scenario.problem.label
    n_periods = len(_period_rows(frame, scenario))
    unit = f"{scenario.period}s"
    mean_label = float(frame[label].cast(pl.Float64).to_numpy().mean())
    echo(
        f"{scenario.name}: {frame.height} rows, {n_periods} {unit}, {scenario.what}; "
        f"mean label {mean_label:.3f}; families {', '.join(families)}"
    )
    records = {
        f: replay_family(scenario, f, root, data, configs[f], keys[f], policies, echo, jobs)
        for f in families
    }
    first = next(iter(records.values()))
    n = first["periods"]
    day_index = {d: i for i, d in enumerate(first["loop_days"])}
    compared = set(first["periods_compared"])
    for r in records.values():
        compared &= set(r["periods_compared"])
    common = sorted(day_index[d] for d in compared)
    first_days = [
        r["first_challenger"] for r in records.values() if r["first_challenger"] is not None
    ]
    # The reference needs a config only for the problem and windows: any family's will do.
    ref = reference_backtest(
        data, root / f"lifecycle-{families[0]}.yaml", min(first_days) if first_days else None
    )
    rows: dict[str, dict[str, Any]] = {}
    for f, rec in records.items():
        for name, res in rec["policies"].items():
            rows[row_name(name, f, families)] = {
                **_row(res["qualities"], common),
                "policy": name,
                "family": f,
                "retrains": res["retrains"],
                "rejections": res["rejections"],
                "decisions": res["decisions"],
                "alerts": res["alerts"],
                "triggers_fired": res["triggers_fired"],
                "train_seconds_per_period": res["train_seconds"] / n,
                "seconds_per_period": res["seconds_per_period"],
                "estimate": res.get("estimate"),
                "estimate_errors": res.get("estimate_errors"),
            }
    for name in REFERENCES:
        r = ref[name]
        rows[name] = {
            **_row(r["qualities"], common),
            "policy": None,
            "family": None,
            "retrains": r["fits"],
            "rejections": None,
            "alerts": None,
            "train_seconds_per_period": r["fit_seconds"] / n,
        }
    result = {
        "scenario": scenario.name,
        "what": scenario.what,
        "source": scenario.source,
        "task": scenario.task,
        "metric": first["metric"],
        "higher_is_better": first["higher_is_better"],
        "drift": scenario.drift,
        "first_window": first_window,
        "period": scenario.period,
        "families": families,
        "rows": frame.height,
        "periods": n,
        "periods_compared": len(common),
        "first_compared_period": common[0] if common else None,
        "first_model_day": ref["first_model_day"],
        "replay_seconds": round(sum(r["replay_seconds"] for r in records.values()), 1),
        "replay_seconds_by_family": {f: r["replay_seconds"] for f, r in records.items()},
        "reference_seconds": ref["wall_seconds"],
        "command": first["command"],
        "commands": {f: r["command"] for f, r in records.items()},
        "results": rows,
    }
    _with_alerts_from_better(rows, root)
    result["bars"] = bars(result)
    _write_record(result_file, {"key": scenario_key, "result": result})
    return result


def default_family() -> str:
    """The family a config without `training.model` trains (the project's default)."""
    from lifecycle_assets.config import ModelConfig

    return ModelConfig().family


# --- bars ------------------------------------------------------------------------------------


def bars(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The bars, per family when there are several (the bar's name ends in `[family]`)."""
    rows, out = res["results"], []
    families = res.get("families") or [None]
    ref = rows["gbm-retrained"]["mean"]

    def bar(name: str, ok: bool | None, figures: str) -> None:
        out.append(
            {
                "bar": name,
                "verdict": "n/a" if ok is None else ("PASS" if ok else "MISS"),
                "figures": figures,
            }
        )

    for family in families:
        tag = f" [{family}]" if len(families) > 1 else ""
        mine = {
            v.get("policy", k): v
            for k, v in rows.items()
            if v.get("policy", k) in POLICIES and v.get("family") == family
        }
        loop = {k: v for k, v in mine.items() if v["mean"] is not None}
        if loop and ref is not None:
            if res["higher_is_better"]:
                best = max(loop, key=lambda k: loop[k]["mean"])
                q = loop[best]["mean"]
                bar(
                    f"best policy ROC-AUC >= retrained GBM - 0.002{tag}",
                    q >= ref - AUC_SLACK,
                    f"{best} {q:.4f} vs GBM {ref:.4f} (Δ {q - ref:+.4f})",
                )
            else:
                best = min(loop, key=lambda k: loop[k]["mean"])
                q = loop[best]["mean"]
                bar(
                    f"best policy RMSE <= 1.02 x retrained GBM{tag}",
                    q <= RMSE_RATIO * ref,
                    f"{best} {q:.4f} vs GBM {ref:.4f} (ratio {q / ref:.4f})",
                )
        per, trig = mine.get("periodic"), mine.get("triggered")
        if res["drift"] and per and trig and per["mean"] is not None and trig["mean"] is not None:
            share = trig["retrains"] / per["retrains"] if per["retrains"] else math.inf
            if res["higher_is_better"]:
                diff = trig["mean"] - per["mean"]
                ok = diff >= -TRIGGERED_SLACK and share <= TRIGGERED_RETRAIN_SHARE
                bar(
                    f"triggered within 0.003 of periodic, <= 1/3 of its retrains{tag}",
                    ok,
                    f"triggered {trig['mean']:.4f} vs periodic {per['mean']:.4f} "
                    f"(Δ {diff:+.4f}); retrains {trig['retrains']}/{per['retrains']} = "
                    f"{share:.2f}",
                )
            else:  # regression: reported, no bar in RMSE units
                bar(
                    f"triggered vs periodic (info; the bar is in ROC-AUC units){tag}",
                    None,
                    f"triggered RMSE {trig['mean']:.4f} vs periodic {per['mean']:.4f} "
                    f"(ratio {trig['mean'] / per['mean']:.4f}); retrains "
                    f"{trig['retrains']}/{per['retrains']} = {share:.2f}",
                )
        first, static = mine.get("never"), rows.get("gbm-static")
        if first and static and first["mean"] is not None and static["mean"] is not None:
            # `never` serves the first model throughout: the first model against HGB fitted
            # once on the same first window
            q, s = first["mean"], static["mean"]
            bar(
                f"first model >= HGB trained once{tag}",
                q >= s if res["higher_is_better"] else q <= s,
                f"never {q:.4f} vs gbm-static {s:.4f} (Δ {q - s:+.4f})",
            )
        for name, row in mine.items():
            est = row.get("estimate") or {}
            if not est.get("periods"):
                continue
            judged = res["scenario"] in ESTIMATE_SCENARIOS
            err, cov = est["median_abs_error"], est["coverage"]
            bar(
                f"estimate: median |est - realised| <= {ESTIMATE_ERROR}, interval covers "
                f">= {ESTIMATE_COVERAGE:.0%} ({name}){tag}"
                + ("" if judged else " (info: not judged here)"),
                (err <= ESTIMATE_ERROR and (cov or 0.0) >= ESTIMATE_COVERAGE) if judged else None,
                f"median |error| {err:.4f}, mean error {est['mean_error']:+.4f}, max "
                f"{est['max_abs_error']:.4f}; covers {_fmt(cov, '.0%')} of {est['periods']} "
                "periods",
            )
        if mine and all("alerts_from_better" in v for v in mine.values()):
            flagged = [f"{k} {d}" for k, v in mine.items() for d in v["alerts_from_better"]]
            bar(
                f"no gate alert from a challenger better on the gate metric{tag}",
                not flagged,
                ", ".join(flagged) or "none",
            )
        if res["scenario"] == "stable" or res["scenario"].startswith("public-"):
            challengers = sum(v["retrains"] for v in mine.values())
            rejected = sum(v["rejections"] for v in mine.values())
            share = rejected / challengers if challengers else 0.0
            detail = ", ".join(f"{k} {v['rejections']}/{v['retrains']}" for k, v in mine.items())
            bar(
                f"rejections <= 10 % of challengers{tag}",
                share <= STABLE_REJECTION_SHARE,
                f"{rejected}/{challengers} = {share:.1%} ({detail})",
            )
    return out


# --- output ----------------------------------------------------------------------------------


def _fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def table(res: dict[str, Any]) -> str:
    metric = res["metric"]
    families = res.get("families") or []
    by_family = res.get("replay_seconds_by_family") or {}
    replay = (
        ", ".join(f"{f} {s:.0f} s" for f, s in by_family.items())
        if len(by_family) > 1
        else f"{res['replay_seconds']:.0f} s"
    )
    lines = [
        f"## {res['scenario']} ({res['task']}, {metric}): {res['what']}",
        f"{res['rows']} rows, {res['periods']} {res.get('period', 'week')}ly periods; "
        f"family {', '.join(families)}; quality over the "
        f"{res['periods_compared']} periods every policy served (from period "
        f"{res['first_compared_period']}); replay {replay}, "
        f"reference {res['reference_seconds']:.0f} s",
        "",
        f"| row | mean {metric} | last third | retrains | rejections | alerts | train s/period |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in res["results"].items():
        lines.append(
            f"| {name} | {_fmt(r['mean'], '.4f')} | {_fmt(r['last_third'], '.4f')} | "
            f"{r['retrains']} | {_fmt(r['rejections'], 'd')} | {_fmt(r['alerts'], 'd')} | "
            f"{r['train_seconds_per_period']:.2f} |"
        )
    lines.append("")
    for b in res["bars"]:
        lines.append(f"- {b['verdict']}: {b['bar']} — {b['figures']}")
    return "\n".join(lines)


def family_table(results: list[dict[str, Any]], families: list[str]) -> str:
    """Per scenario and family: the best policy and its mean quality, periodic's mean, and
    periodic's training seconds per period (the loop's whole training stage) — the figures
    to choose the default family by."""
    head = [f"{f}: {c}" for f in families for c in ("best policy", "periodic", "train s/period")]
    lines = [
        "# families",
        "",
        "| scenario | metric | " + " | ".join(head) + " |",
        "|---|---|" + "---|" * len(head),
    ]
    for res in results:
        cells: list[str] = []
        for f in families:
            mine = {
                r["policy"]: r
                for r in res["results"].values()
                if r.get("family") == f and r["mean"] is not None
            }
            ranked = sorted(mine, key=lambda k: mine[k]["mean"], reverse=res["higher_is_better"])
            best = ranked[0] if ranked else None
            per = mine.get("periodic")
            cells += [
                f"{best} {mine[best]['mean']:.4f}" if best else "—",
                _fmt(per["mean"] if per else None, ".4f"),
                _fmt(per["train_seconds_per_period"] if per else None, ".2f"),
            ]
        lines.append(f"| {res['scenario']} | {res['metric']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


FULL_RUN_SECONDS = 30 * 60


def wall_time_bar(
    size: str, names: list[str], results: list[dict[str, Any]], wall: float, jobs: int
) -> dict[str, Any] | None:
    """The full benchmark's own bar, judged only on a run that replayed every scenario at the
    full size itself (one that reused finished scenarios did not take the whole time)."""
    if size != "full" or set(names) != set(SCENARIOS) or any(r.get("reused") for r in results):
        return None
    return {
        "bar": f"the full benchmark <= {FULL_RUN_SECONDS // 60} minutes",
        "figures": f"{wall / 60:.1f} minutes, {jobs} job(s) on {os.cpu_count()} cores",
        "verdict": "PASS" if wall <= FULL_RUN_SECONDS else "MISS",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--policy",
        action="append",
        choices=POLICIES,
        help="replay these policies (repeatable; default never, periodic, triggered; "
        "shadow: periodic with the shadow stage on)",
    )
    parser.add_argument(
        "--family",
        action="append",
        help="replay the loop with this model family (repeatable: each family's rows are "
        "`policy[family]`; default the config's default family only); a training recipe may "
        "follow `@`: gbdt@holdout=0.2 (holdout, calibration, folds, epochs, seed, history — "
        "windows.history_days in periods — or the family's hyperparameters: "
        "gbdt@lambda_l2=0)",
    )
    parser.add_argument(
        "--first-window",
        choices=["one", "full"],
        default="one",
        help="the cold start's first model: on the first matured period (one, default) or "
        "only once a full train window has matured (full)",
    )
    parser.add_argument(
        "--out", default=None, help="write the results as JSON here (after every scenario)"
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="keep data, configs, replays and results here; a rerun with the same workdir "
        "skips what finished (default: a temporary directory)",
    )
    parser.add_argument(
        "--cache",
        default=None,
        help=f"where the public scenarios' wheel is kept (default {public_data.DEFAULT_CACHE})",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="policies replayed at once, each in a process of its own (default: the "
        "machine's cores; 1: one after the other)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-period replay lines")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown or not names:
        parser.error(f"unknown scenarios {unknown}; choose from {','.join(SCENARIOS)}")
    policies = list(dict.fromkeys(args.policy or DEFAULT_POLICIES))
    families = list(dict.fromkeys(args.family or [default_family()]))
    from pydantic import ValidationError

    from lifecycle_assets.config import ModelConfig
    from lifecycle_assets.training.families import FamilyError, resolve

    for family in families:
        try:
            resolve(family.partition("@")[0])
            ModelConfig.model_validate(family_training(family)["model"])
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            msg = first["msg"].removeprefix("Value error, ")
            parser.error(f"--family {family}: {field + ': ' if field else ''}{msg}")
        except (FamilyError, ValueError) as err:
            parser.error(str(err))
    cache = Path(args.cache).resolve() if args.cache else public_data.DEFAULT_CACHE

    def echo(msg: str) -> None:
        if not args.quiet:
            print(f"[quality {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    started = time.perf_counter()
    results: list[dict[str, Any]] = []

    def write_out(missed: list[str] | None) -> None:
        if not args.out:
            return
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_record(
            out,
            {
                "size": args.size,
                "first_window": args.first_window,
                "policies": policies,
                "families": families,
                "jobs": args.jobs,
                "complete": missed is not None,
                "wall_seconds": round(time.perf_counter() - started, 1),
                "scenarios": {r["scenario"]: r for r in results},
                "missed": missed or [],
            },
        )

    with tempfile.TemporaryDirectory(prefix="lifecycle-quality-") as tmp:
        root = Path(args.workdir or tmp).resolve()
        for name in names:
            res = run_scenario(
                SCENARIOS[name],
                args.size,
                root / name,
                policies,
                echo,
                args.first_window,
                families,
                cache,
                args.jobs,
            )
            results.append(res)
            print("\n" + table(res) + "\n", flush=True)
            write_out(None)
    wall = time.perf_counter() - started
    if len(families) > 1:
        print(family_table(results, families) + "\n")
    verdicts = [(r["scenario"], b) for r in results for b in r["bars"]]
    print(f"# bars ({args.size}, first window {args.first_window}, {wall:.0f} s in all)")
    for scenario, b in verdicts:
        print(f"{b['verdict']:4}  {scenario:14}  {b['bar']}: {b['figures']}")
    if (duration := wall_time_bar(args.size, names, results, wall, args.jobs)) is not None:
        verdicts.append(("all", duration))
        print(f"{duration['verdict']:4}  {'all':14}  {duration['bar']}: {duration['figures']}")
    missed = [f"{s}: {b['bar']}" for s, b in verdicts if b["verdict"] == "MISS"]
    print(f"{len(missed)} bar(s) missed" + (": " + "; ".join(missed) if missed else ""))
    write_out(missed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
