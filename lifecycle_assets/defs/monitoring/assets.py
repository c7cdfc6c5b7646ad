"""Monitoring assets: thin wrappers over `monitoring.metrics`, plotted per partition in the UI."""

import datetime as dt
import math
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from lifecycle_assets.defs.partitions import DAYS_BEFORE, daily, partition_day, window_input
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.defs.resources.registry import RegistryResource
from lifecycle_assets.metrics import metric
from lifecycle_assets.monitoring import estimate, metrics

GROUP = "monitoring"


def _num(value: float | None) -> float:
    """Numeric metadata for the UI's plots; NaN where there is nothing to measure."""
    return float("nan") if value is None else float(value)


@dg.asset(partitions_def=daily, group_name=GROUP, kinds={"polars"})
def prediction_drift(
    context: dg.AssetExecutionContext,
    home: LifecycleHomeResource,
    registry: RegistryResource,
    raw_prediction_logs: pl.DataFrame,
) -> dict[str, Any]:
    """Day D's traffic against the serving model's training data: feature PSI, requests
    served beyond the training range (flagged by the service), mean prediction against the
    training label mean, and the model's age."""
    cfg = home.config()
    day = partition_day(context)
    scored = raw_prediction_logs.filter(pl.col("score").is_not_null())
    report: dict[str, Any] = {
        "day": context.partition_key,
        "rows": raw_prediction_logs.height,
        **metrics.out_of_range(raw_prediction_logs),
    }
    versions = scored["model_version"].drop_nulls().unique().sort().to_list()
    report["model_versions"] = versions
    if not versions:
        report.update(
            {"max_psi": None, "psi": {}, "model_age_days": None, "bias_vs_training": None}
        )
        context.add_output_metadata(
            {
                "rows": raw_prediction_logs.height,
                "scored_rows": 0,
                "out_of_range_share": _num(report["out_of_range_share"]),
            }
        )
        return report
    # The version that served most of the day stands for the day.
    main = scored.group_by("model_version").len().sort("len", descending=True)["model_version"][0]
    model = registry.get().load(main)
    reference = model.metadata.get("monitoring_reference") or {}
    psi = metrics.feature_drift(
        raw_prediction_logs.select(
            [c for c in cfg.problem.features if c in raw_prediction_logs.columns]
        ),
        reference,
    )
    created = model.metadata.get("created_at")
    age = (day - dt.datetime.fromisoformat(created).date()).days if created else None
    train_mean = model.metadata.get("train_label_mean")
    mean_pred = metrics.mean_interval(scored["score"].to_numpy())
    bias = (
        None if train_mean is None or mean_pred["mean"] is None else mean_pred["mean"] - train_mean
    )
    report.update(
        {
            "model_version": main,
            "psi": psi,
            "max_psi": max(psi.values()) if psi else None,
            "max_psi_feature": max(psi, key=lambda k: psi[k]) if psi else None,
            "model_age_days": age,
            "mean_prediction": mean_pred,
            "train_label_mean": train_mean,
            "bias_vs_training": bias,
        }
    )
    context.add_output_metadata(
        {
            "model_version": main,
            "max_psi": _num(report["max_psi"]),
            "max_psi_feature": str(report["max_psi_feature"]),
            "model_age_days": _num(age),
            "mean_prediction": _num(mean_pred["mean"]),
            "bias_vs_training": _num(bias),
            "out_of_range_share": _num(report["out_of_range_share"]),
            "out_of_range_rows": report["out_of_range_rows"],
            "out_of_range_features": dg.MetadataValue.json(report["out_of_range_features"]),
            "psi": dg.MetadataValue.json({k: round(v, 4) for k, v in psi.items()}),
        }
    )
    return report


def _estimate_metadata(
    estimated: dict[str, Any], version: str | None, error: float | None
) -> dict[str, Any]:
    """The estimate's figures for the UI (plotted per partition beside `quality`)."""
    if not estimated:
        return {}
    extra = ("expected_roc_auc", "expected_log_loss", "residual_model_rows")
    recalibration = estimated.get("recalibration") or {}
    return {
        "estimated_model_version": str(version),
        "estimated_quality": _num(estimated["estimated_quality"]),
        "estimated_quality_low": _num(estimated["estimated_low"]),
        "estimated_quality_high": _num(estimated["estimated_high"]),
        "estimate_widened_by": _num(estimated.get("estimate_widened_by")),
        "estimate_error_days": estimated.get("estimate_error_days", 0),
        **{k: _num(estimated[k]) for k in extra if k in estimated},
        **(
            {
                "recalibration_rows": recalibration.get("rows", 0),
                "recalibration_slope": _num(recalibration.get("b")),
            }
            if "recalibration" in estimated
            else {}
        ),
        "estimate_error": _num(error),
    }


def _widened(
    estimated: dict[str, Any], earlier: list[dict[str, Any]], metric_name: str
) -> dict[str, Any]:
    """The estimate with its interval widened by the errors of the matured days before
    (`estimate.widened_by_errors`); the draws' own interval kept beside it."""
    errors = [r.get("estimate_error") for r in earlier if r.get("matured")]
    bounds = (0.0, 1.0) if metric_name in ("roc_auc", "pr_auc") else (0.0, math.inf)
    wide = estimate.widened_by_errors(
        estimated["estimated_quality"],
        estimated["estimated_low"],
        estimated["estimated_high"],
        errors,
        bounds=bounds,
    )
    return {
        **estimated,
        "estimated_draws_low": estimated["estimated_low"],
        "estimated_draws_high": estimated["estimated_high"],
        "estimated_low": wide["low"],
        "estimated_high": wide["high"],
        "estimate_widened_by": wide["widened_by"],
        "estimate_error_days": wide["error_days"],
    }


@dg.asset(
    partitions_def=daily,
    group_name=GROUP,
    kinds={"polars"},
    ins={
        "labeled_examples": dg.AssetIn(),
        "earlier_features": window_input(DAYS_BEFORE, "feature_table"),
        "earlier_quality": window_input(DAYS_BEFORE, "live_quality", records=True),
    },
)
def live_quality(
    context: dg.AssetExecutionContext,
    home: LifecycleHomeResource,
    labeled_examples: pl.DataFrame,
    earlier_features: pl.DataFrame,
    earlier_quality: list[dict[str, Any]],
) -> dict[str, Any]:
    """Quality of what was served on day D, measured on its labels; final once D matures.
    Recomputed whenever day D's labelled examples are, so late labels update it.

    Beside it, from day D itself on, the quality estimated without labels
    (`monitoring.estimate`): binary, from the day's scores, recalibrated on the matured rows
    of the days before D (`earlier_features`); regression, from a model of the absolute
    residual fitted on those rows. Once D matures, the estimate's error (estimated −
    realised). The estimate's interval is at least as wide as the errors it made on the
    matured days before D (`earlier_quality`, this asset's own records) require."""
    cfg = home.config()
    label = cfg.problem.label
    usable = labeled_examples.filter(pl.col("score").is_not_null() & pl.col(label).is_not_null())
    matured = bool(labeled_examples["label_matured"].all()) if labeled_examples.height else False
    y = usable[label].to_numpy()
    s = usable["score"].to_numpy()
    quality = metric(cfg.validation.metric, y, s) if usable.height else None
    if quality is not None and not np.isfinite(quality):
        quality = None
    bias = metrics.prediction_bias(s, y)
    coverage = (
        labeled_examples.filter(pl.col("label_status") == "labeled").height
        / labeled_examples.height
        if labeled_examples.height
        else 0.0
    )
    versions = usable.group_by("model_version").len().sort("len", descending=True)
    main = versions["model_version"][0] if versions.height else None
    # Every scored row, labelled or not: the estimate needs no label.
    scored = labeled_examples.filter(pl.col("score").is_not_null())
    # The version that scored most of the day (labelled or not): what the estimate is of.
    by_version = scored.group_by("model_version").len().sort("len", descending=True)
    scored_by = by_version["model_version"][0] if by_version.height else None
    if cfg.problem.task == "binary":
        estimated = estimate.estimate_day(
            cfg.validation.metric, scored["score"].to_numpy(), earlier_features, label, scored_by
        )
    else:
        estimated = estimate.estimate_regression_day(
            cfg.validation.metric,
            scored,
            earlier_features,
            label,
            cfg.problem.numeric_features,
            scored_by,
        )
    if estimated:
        estimated = _widened(estimated, earlier_quality, cfg.validation.metric)
    error = (
        estimate.estimate_error(estimated.get("estimated_quality"), quality) if matured else None
    )
    report = {
        "day": context.partition_key,
        "model_version": main,
        "matured": matured,
        "metric": cfg.validation.metric,
        "quality": quality,
        "rows_scored": usable.height,
        "label_coverage": coverage,
        "prediction_bias": bias,
        **estimated,
        "estimated_model_version": scored_by,
        "estimate_error": error,
        "estimate_covers": (
            estimate.covered(
                estimated.get("estimated_low"), estimated.get("estimated_high"), quality
            )
            if matured
            else None
        ),
    }
    context.add_output_metadata(
        {
            "matured": matured,
            "model_version": str(main),
            "quality": _num(quality),
            "label_coverage": coverage,
            "prediction_bias": _num(bias["bias"]),
            "prediction_bias_low": _num(bias["low"]),
            "prediction_bias_high": _num(bias["high"]),
            "rows_scored": usable.height,
            **_estimate_metadata(estimated, scored_by, error),
        }
    )
    return report
