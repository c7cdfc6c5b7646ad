"""Shared training-test helpers: the example config with a small training section, and a
learnable synthetic card-fraud frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from lifecycle_assets.config import LifecycleConfig, ModelConfig, load_config

NUMERIC = ("amount", "merchant_risk", "hour", "card_age_days", "txn_count_24h")
CATEGORICAL = ("merchant_category", "country", "channel")


def small_config(model: dict[str, Any] | None = None, **training: Any) -> LifecycleConfig:
    """The example config with a small, fast training section; `model` replaces
    `training.model` (e.g. `{"family": "tabm", "k": 4}`)."""
    cfg = load_config()
    # Eager unless a test asks for XLA (test_xla.py): fast, and the reference for XLA.
    # No holdout unless asked for: these tests pin the fit's mechanics on every row.
    update = {
        "epochs": 12,
        "batch_size": 64,
        "learning_rate": 0.01,
        "device": "cpu",
        "holdout_fraction": 0.0,
        **training,
    }
    if model is not None:
        update["model"] = ModelConfig.model_validate(model)
    return cfg.model_copy(update={"training": cfg.training.model_copy(update=update)})


def synthetic(n: int, seed: int) -> pl.DataFrame:
    """Fraud is likely for risky merchants, large amounts and one country: learnable."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, n)
    risk = rng.random(n)
    hour = rng.integers(0, 24, n)
    age = rng.integers(1, 2000, n)
    count = rng.poisson(3, n)
    category = rng.choice(["grocery", "travel", "games", "fuel"], n)
    country = rng.choice(["DE", "FR", "XX", "US"], n)
    channel = rng.choice(["web", "pos"], n)
    logit = 4.0 * (risk - 0.5) + 1.5 * (np.log(amount) - 3.0) + 3.0 * (country == "XX") - 1.0
    y = (logit + rng.logistic(0, 0.3, n) > 0).astype(np.float64)
    return pl.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "card_number": [f"4111{i:012d}" for i in range(n)],
            "amount": amount,
            "merchant_risk": risk,
            "hour": hour.astype(np.float64),
            "card_age_days": age.astype(np.float64),
            "txn_count_24h": count.astype(np.float64),
            "merchant_category": category,
            "country": country,
            "channel": channel,
            "is_fraud": y,
        }
    )
