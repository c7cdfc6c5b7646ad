"""The user's problem in one file (`lifecycle.yaml`), validated at load.

Every field has a default, so the built-in example materialises with no run config. A wrong
field raises `ConfigError` naming the field and what was expected.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lifecycle_assets.errors import LifecycleError

# Train/test windows are mapped onto upstream partitions by a static Dagster partition
# mapping (see `lifecycle_assets.partitions`); the config's windows must fit inside it.
MAX_LOOKBACK_DAYS = 60

# Partitions start here; simulated and replayed data must not start earlier.
PARTITIONS_START = "2026-01-01"


class ConfigError(LifecycleError, ValueError):
    """A config file that cannot be used; the message names the field and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProblemConfig(_Section):
    name: str = "card-fraud"
    task: Literal["binary", "regression"] = "binary"
    request_id: str = "request_id"
    entity_id: str = "card_id"
    event_time: str = "event_time"
    label: str = "is_fraud"
    numeric_features: tuple[str, ...] = (
        "amount",
        "merchant_risk",
        "hour",
        "card_age_days",
        "txn_count_24h",
    )
    categorical_features: tuple[str, ...] = ("merchant_category", "country", "channel")
    pii_columns: tuple[str, ...] = ("card_number",)

    @model_validator(mode="after")
    def _distinct_columns(self) -> ProblemConfig:
        features = [*self.numeric_features, *self.categorical_features]
        if not features:
            raise ValueError("numeric_features and categorical_features are both empty")
        seen: set[str] = set()
        for col in [self.request_id, self.entity_id, self.event_time, self.label, *features]:
            if col in seen:
                raise ValueError(f"column {col!r} is named twice")
            seen.add(col)
        leaked = set(self.pii_columns) & set(features)
        if leaked:
            raise ValueError(f"PII columns {sorted(leaked)} cannot also be features")
        return self

    @property
    def features(self) -> tuple[str, ...]:
        return (*self.numeric_features, *self.categorical_features)


class LabelsConfig(_Section):
    maturity_days: int = Field(3, ge=0, le=30)
    # What an unlabelled prediction means once the maturity window has passed.
    unlabeled_after_maturity: Literal["negative", "drop"] = "negative"


class WindowsConfig(_Section):
    train_days: int = Field(8, ge=1)
    test_days: int = Field(2, ge=1)
    min_train_rows: int = Field(2000, ge=10)
    min_test_rows: int = Field(400, ge=10)


class TrainingConfig(_Section):
    epochs: int = Field(6, ge=1)
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(0.003, gt=0)
    hidden_units: int = Field(32, ge=1)
    embedding_dim: int = Field(4, ge=1)
    seed: int = 7


class ValidationConfig(_Section):
    metric: Literal["roc_auc", "log_loss", "rmse", "mae"] = "roc_auc"
    margin: float = Field(0.01, ge=0)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    bootstrap_samples: int = Field(1000, ge=100)


class PostprocessingConfig(_Section):
    review_threshold: float = Field(0.3, ge=0, le=1)
    decline_threshold: float = Field(0.7, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> PostprocessingConfig:
        if self.review_threshold > self.decline_threshold:
            raise ValueError("review_threshold must not exceed decline_threshold")
        return self


class VersioningConfig(_Section):
    # A DVC remote URL or local path; None means `<home>/dvc-remote`.
    dvc_remote: str | None = None


class SimulationConfig(_Section):
    start_date: dt.date = dt.date(2026, 6, 1)
    payments_per_day: int = Field(3000, ge=10)
    fraud_rate: float = Field(0.03, gt=0, lt=0.5)
    chargeback_delay_days: tuple[int, int] = (1, 3)
    drift_day: int | None = Field(8, ge=0)
    scheduled_payments_per_day: int = Field(200, ge=0)
    seed: int = 42

    @model_validator(mode="after")
    def _delays(self) -> SimulationConfig:
        low, high = self.chargeback_delay_days
        if not 0 <= low <= high:
            raise ValueError("chargeback_delay_days must be [min, max] with 0 <= min <= max")
        if self.start_date < dt.date.fromisoformat(PARTITIONS_START):
            raise ValueError(f"start_date must be on or after {PARTITIONS_START}")
        return self


class MonitoringConfig(_Section):
    # Staleness: the trigger fires once per episode of any of these, then waits cooldown_days.
    psi_threshold: float = Field(0.25, gt=0)
    quality_drop: float = Field(0.05, gt=0)
    bias_tolerance: float = Field(0.02, ge=0)
    cooldown_days: int = Field(3, ge=0)


class LifecycleConfig(_Section):
    problem: ProblemConfig = ProblemConfig()
    labels: LabelsConfig = LabelsConfig()
    windows: WindowsConfig = WindowsConfig()
    training: TrainingConfig = TrainingConfig()
    validation: ValidationConfig = ValidationConfig()
    postprocessing: PostprocessingConfig = PostprocessingConfig()
    versioning: VersioningConfig = VersioningConfig()
    simulation: SimulationConfig = SimulationConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    @model_validator(mode="after")
    def _fits_partition_mapping(self) -> LifecycleConfig:
        lookback = self.labels.maturity_days + self.windows.train_days + self.windows.test_days
        if lookback > MAX_LOOKBACK_DAYS:
            raise ValueError(
                f"labels.maturity_days + windows.train_days + windows.test_days = {lookback} "
                f"exceeds the {MAX_LOOKBACK_DAYS}-day lookback of the partition mapping"
            )
        if self.validation.metric in ("roc_auc",) and self.problem.task != "binary":
            raise ValueError("validation.metric roc_auc needs problem.task binary")
        if self.validation.metric in ("rmse", "mae") and self.problem.task != "regression":
            raise ValueError(f"validation.metric {self.validation.metric} needs task regression")
        return self


def example_config_path() -> Path:
    """The built-in example's config, shipped inside the package."""
    return Path(str(resources.files("lifecycle_assets") / "example" / "lifecycle.yaml"))


def _format_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field (check its spelling and section)"
    elif "input" in first and first["type"] != "value_error":
        msg = f"{msg}, got {first['input']!r}"
    extra = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: field '{field}': {msg}{extra}"


def parse_config(data: object, source: str = "config") -> LifecycleConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    try:
        return LifecycleConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(source, err)) from None


def load_config(path: str | Path | None = None) -> LifecycleConfig:
    """Load and validate a config file; None loads the built-in example."""
    p = Path(path) if path is not None else example_config_path()
    if not p.is_file():
        raise ConfigError(
            f"{p}: config file not found (pass --config FILE or run `lifecycle init`)"
        )
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}".splitlines()[0]) from None
    return parse_config(data, str(p))
