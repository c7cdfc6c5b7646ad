"""An independent generator for replay tests: food-delivery times (a regression task) with
its own schema and a drift, made with numpy alone (nothing from the fraud simulator)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

ZONES = ("centre", "inner", "outskirts")
VEHICLES = ("bike", "scooter", "car")

CONFIG = """\
problem:
  name: delivery-eta
  task: regression
  request_id: order_ref
  entity_id: courier
  event_time: placed_at
  label: delivery_minutes
  numeric_features: [distance_km, items, prep_minutes, rain_mm]
  categorical_features: [zone, vehicle]
  pii_columns: [customer_phone]
labels:
  maturity_days: 1
  unlabeled_after_maturity: drop
windows:
  train_days: 2
  test_days: 1
  min_train_rows: 600
  min_test_rows: 300
training:
  epochs: 8
  batch_size: 128
validation:
  metric: rmse
  margin: 0.5
  bootstrap_samples: 300
  calibration_tolerance: 1.0
  slice_min_rows: 300
monitoring:
  psi_threshold: 0.25
  quality_drop: 2.0
  bias_tolerance: 1.5
  cooldown_days: 2
data:
  categories: {}
replay:
  period: week
  policies: [never, periodic, triggered]
  label_delay_days: [0.1, 4.0]
  seed: 3
"""


def deliveries(
    weeks: int = 6,
    per_week: int = 700,
    drift_week: int = 3,
    start: dt.date = dt.date(2024, 3, 4),
    seed: int = 11,
) -> pl.DataFrame:
    """Orders over `weeks` weeks from `start`; from `drift_week` on, a new city layout: more
    orders from the outskirts, by car, and every kilometre takes much longer (congestion)."""
    rng = np.random.default_rng(seed)
    n = weeks * per_week
    week = np.repeat(np.arange(weeks), per_week)
    drifted = week >= drift_week
    offset_s = rng.uniform(0, 7 * 86_400, n)
    placed = [
        dt.datetime.combine(start, dt.time()) + dt.timedelta(weeks=int(w), seconds=float(s))
        for w, s in zip(week, offset_s, strict=True)
    ]
    zone_p = np.where(drifted[:, None], [0.2, 0.3, 0.5], [0.5, 0.35, 0.15])
    zone = np.array([rng.choice(3, p=p) for p in zone_p])
    vehicle_p = np.where(drifted[:, None], [0.15, 0.25, 0.6], [0.5, 0.35, 0.15])
    vehicle = np.array([rng.choice(3, p=p) for p in vehicle_p])
    distance = rng.gamma(2.0, 1.2 + zone * 1.5)
    items = rng.integers(1, 8, n).astype(np.float64)
    prep = rng.normal(12, 3, n).clip(3)
    rain = rng.exponential(1.0, n) * (rng.random(n) < 0.3)
    speed = np.array([4.0, 3.0, 2.5])[vehicle]  # minutes per km
    per_km = np.where(drifted, speed * 2.2, speed)
    minutes = prep + per_km * distance + 0.8 * items + 1.5 * rain + rng.normal(0, 2.0, n)
    order = np.argsort(np.array(placed, dtype="datetime64[us]"), kind="stable")
    frame = pl.DataFrame(
        {
            "courier": [f"courier-{i % 40:02d}" for i in range(n)],
            "customer_phone": [f"+44 7700 9{i:05d}" for i in range(n)],
            "placed_at": [p.strftime("%Y-%m-%dT%H:%M:%S+00:00") for p in placed],
            "distance_km": distance.round(3),
            "items": items,
            "prep_minutes": prep.round(2),
            "rain_mm": rain.round(2),
            "zone": [ZONES[z] for z in zone],
            "vehicle": [VEHICLES[v] for v in vehicle],
            "delivery_minutes": minutes.round(2),
        }
    )
    return frame[order.tolist()]
