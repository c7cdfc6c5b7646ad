"""The built-in simulator's traffic as a replay file: one row per payment with its label and
the time its chargeback arrives (null: no chargeback, so the label never arrives)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from lifecycle_assets.config import load_config
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.simulator.fraud import FraudSimulator

LABEL_TIME_COLUMN = "chargeback_time"


def simulated_frame(
    config_file: str | Path | None, days: int, seed: int | None = None
) -> pl.DataFrame:
    config = load_config(config_file)
    if seed is not None:
        config = config.model_copy(
            update={"simulation": config.simulation.model_copy(update={"seed": seed})}
        )
    sim = FraudSimulator(config)
    p = config.problem
    rows = []
    for index in range(days):
        for pay in sim.payments(index):
            rows.append(
                {
                    p.request_id: pay.request_id,
                    p.entity_id: pay.card_id,
                    **{c: pay.card_number for c in p.pii_columns[:1]},
                    p.event_time: pay.event_time,
                    **pay.features,
                    p.label: 1.0 if pay.is_fraud else 0.0,
                    LABEL_TIME_COLUMN: pay.chargeback_time,
                }
            )
    return pl.DataFrame(rows)


def write_simulated_traffic(
    config_file: str | Path | None, days: int, out: str | Path, seed: int | None = None
) -> Path:
    if days < 1:
        raise LifecycleError("--days must be at least 1")
    path = Path(out)
    frame = simulated_frame(config_file, days, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    return path
