"""Serving-stage assets: thin wrappers over `serving.offline` and `serving.bento`."""

import datetime as dt
import warnings
from typing import Any

import dagster as dg
import polars as pl

from lifecycle_assets.defs.partitions import daily, partition_day
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.defs.resources.lookup import LookupStoreResource
from lifecycle_assets.records import log_fingerprints
from lifecycle_assets.serving.bento import build_bento
from lifecycle_assets.serving.offline import publish_offline_predictions
from lifecycle_assets.training.artifact import ModelArtifact


def _observable(**kwargs: Any) -> Any:
    """`dg.observable_source_asset(**kwargs)` without Dagster's beta warning (observable
    source assets and per-partition data versions are beta in Dagster 1.13)."""

    def apply(fn: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)
            return dg.observable_source_asset(**kwargs)(fn)

    return apply


@_observable(partitions_def=daily, group_name="serving", tags={"dagster/kind/bentoml": ""})
def prediction_log_store(home: LifecycleHomeResource) -> dg.DataVersionsByPartition:
    """The service's log store: each day's prediction and ground-truth segments, as the
    service writes them; `raw_prediction_logs` and `ground_truth` read it, which closes the
    loop in the graph. A day's data version is the fingerprint of its segments, the one the
    `new_log_partitions` sensor ingests on (open days and days outside the partitions are
    left out)."""
    fingerprints = log_fingerprints(home.get().logs)
    closed = {day: fp for day, fp in fingerprints.items() if daily.has_partition_key(day)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.DataVersionsByPartition(closed)


@dg.asset(partitions_def=daily, group_name="serving", kinds={"sqlite"})
def offline_predictions(
    context: dg.AssetExecutionContext,
    home: LifecycleHomeResource,
    lookup_store: LookupStoreResource,
    production_model: ModelArtifact,
) -> pl.DataFrame:
    """Day D+1's scheduled payments scored by the model serving after day D, swapped into
    the lookup store atomically; the service answers `GET /lookup/{id}` from it."""
    h = home.get()
    target = partition_day(context) + dt.timedelta(days=1)
    frame, generation = publish_offline_predictions(
        h.logs, h.config(), target, production_model, lookup_store.get(), home.now()
    )
    context.add_output_metadata(
        {
            "scheduled_date": target.isoformat(),
            "rows": frame.height,
            "model_version": production_model.version,
            "quarantined": generation["quarantined"],
            "decisions": {str(k): int(v) for k, v in frame["decision"].value_counts().rows()},
            "generation": generation["generation"],
        }
    )
    return frame


@dg.asset(partitions_def=daily, group_name="serving", kinds={"bentoml"})
def production_bento(
    context: dg.AssetExecutionContext,
    home: LifecycleHomeResource,
    production_model: ModelArtifact,
) -> dict[str, object]:
    """The deployable Bento for the model serving after day D (built once per promotion;
    a carried-over model reuses its Bento)."""
    h = home.get()
    version = production_model.version
    if version is None:
        raise dg.Failure("the production model has no version to tag a Bento with")
    tag, built = build_bento(h, h.config().problem.name, version)
    context.add_output_metadata({"bento": tag, "built": built, "model_version": version})
    return {"bento": tag, "model_version": version, "built": built}
