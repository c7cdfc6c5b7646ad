"""Data stage assets: thin wrappers over `records` and `data.transforms`."""

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl

from lifecycle_assets.data import transforms
from lifecycle_assets.partitions import (
    LABEL_ARRIVAL_WINDOW,
    TRAILING_FEATURES,
    daily,
    partition_day,
)
from lifecycle_assets.records import read_ground_truth, read_predictions
from lifecycle_assets.resources.home import LifecycleHomeResource
from lifecycle_assets.resources.versioning import VersioningResource, write_json

GROUP = "data"


def _schema_metadata(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    )


def _quarantine_metadata(
    home: LifecycleHomeResource, asset: str, day: str, quarantine: pl.DataFrame
) -> dict[str, Any]:
    """Bad rows are kept, with their reason, next to the asset; their counts go to metadata."""
    if quarantine.height:
        folder = home.get().assets / "quarantine" / asset
        folder.mkdir(parents=True, exist_ok=True)
        quarantine.write_parquet(folder / f"{day}.parquet")
    counts = Counter(quarantine["reason"].to_list())
    return {
        "quarantined_rows": quarantine.height,
        "quarantine_reasons": dg.MetadataValue.json(dict(counts)),
    }


def _frame_metadata(frame: pl.DataFrame) -> dict[str, Any]:
    return {"dagster/row_count": frame.height, "dagster/column_schema": _schema_metadata(frame)}


@dg.asset(partitions_def=daily, group_name=GROUP, kinds={"polars"})
def raw_prediction_logs(
    context: dg.AssetExecutionContext, home: LifecycleHomeResource
) -> pl.DataFrame:
    """Prediction records of day D as the service wrote them (by event date)."""
    cfg = home.config()
    frame, quarantine = read_predictions(
        home.get().logs,
        partition_day(context),
        cfg.problem.numeric_features,
        cfg.problem.categorical_features,
    )
    context.add_output_metadata(
        {
            **_frame_metadata(frame),
            "scored_rows": frame.filter(pl.col("score").is_not_null()).height,
            **_quarantine_metadata(home, "raw_prediction_logs", context.partition_key, quarantine),
        }
    )
    return frame


@dg.asset(partitions_def=daily, group_name=GROUP, kinds={"polars"})
def ground_truth(context: dg.AssetExecutionContext, home: LifecycleHomeResource) -> pl.DataFrame:
    """Label events that arrived on day D (joined to predictions later by request id)."""
    frame, quarantine = read_ground_truth(home.get().logs, partition_day(context))
    context.add_output_metadata(
        {
            **_frame_metadata(frame),
            **_quarantine_metadata(home, "ground_truth", context.partition_key, quarantine),
        }
    )
    return frame


@dg.asset(
    partitions_def=daily,
    group_name=GROUP,
    kinds={"polars"},
    ins={
        "raw_prediction_logs": dg.AssetIn(),
        "ground_truth": dg.AssetIn(partition_mapping=LABEL_ARRIVAL_WINDOW),
    },
)
def labeled_examples(
    context: dg.AssetExecutionContext,
    home: LifecycleHomeResource,
    raw_prediction_logs: pl.DataFrame,
    ground_truth: pl.DataFrame,
) -> pl.DataFrame:
    """Day D's predictions joined to the labels matured so far; bad rows quarantined."""
    cfg = home.config()
    day = partition_day(context)
    if ground_truth.width == 0:
        ground_truth = pl.DataFrame(schema=transforms.GROUND_TRUTH_SCHEMA)
    examples, quarantine = transforms.build_labeled_examples(
        raw_prediction_logs, ground_truth, day, home.today(), cfg
    )
    status = Counter(examples["label_status"].to_list())
    labeled = status.get(transforms.LABELED, 0)
    context.add_output_metadata(
        {
            **_frame_metadata(examples),
            "label_status": dg.MetadataValue.json(dict(status)),
            "label_coverage": labeled / examples.height if examples.height else 0.0,
            "matured": day + dt.timedelta(days=cfg.labels.maturity_days) <= home.today(),
            **_quarantine_metadata(home, "labeled_examples", context.partition_key, quarantine),
        }
    )
    return examples


@dg.asset(
    partitions_def=daily,
    group_name=GROUP,
    kinds={"polars"},
    check_specs=[
        dg.AssetCheckSpec(
            "feature_table_is_well_formed",
            asset="feature_table",
            blocking=True,
            description="Broken data stops the run before training: null features, bad "
            "labels, duplicate request ids.",
        )
    ],
)
def feature_table(
    context: dg.AssetExecutionContext, home: LifecycleHomeResource, labeled_examples: pl.DataFrame
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Model features plus label for day D; identifying columns dropped."""
    cfg = home.config()
    frame = transforms.build_feature_table(labeled_examples, cfg)
    yield dg.Output(frame, metadata=_frame_metadata(frame))
    problems = transforms.feature_table_problems(frame, cfg)
    yield dg.AssetCheckResult(
        check_name="feature_table_is_well_formed",
        passed=not problems,
        metadata={"problems": dg.MetadataValue.json(problems)},
    )


def _split_asset(which: str):
    @dg.asset(
        name=f"{which}_split",
        partitions_def=daily,
        group_name=GROUP,
        kinds={"polars", "dvc"},
        ins={"feature_table": dg.AssetIn(partition_mapping=TRAILING_FEATURES)},
    )
    def _split(
        context: dg.AssetExecutionContext,
        home: LifecycleHomeResource,
        versioning: VersioningResource,
        feature_table: pl.DataFrame,
    ) -> pl.DataFrame:
        cfg = home.config()
        day = partition_day(context)
        split = (
            transforms.build_split(feature_table, day, which, cfg)
            if feature_table.width
            else (feature_table)
        )
        card = transforms.data_card(split, f"{which}_split", day, cfg)
        stage = f"{which}_split"

        def write(folder):
            folder.mkdir(parents=True)
            split.write_parquet(folder / "data.parquet")
            write_json(folder / "data_card.json", card)
            (folder / "data_card.md").write_text(transforms.data_card_markdown(card))

        version = versioning.publish(
            stage,
            context.partition_key,
            f"datasets/{stage}",
            write,
            message=f"{stage} {context.partition_key}: {split.height} rows",
            tag=f"{stage}/{context.partition_key}",
        )
        context.add_output_metadata(
            {
                **_frame_metadata(split),
                **version,
                "window": f"{card['window_start']} … {card['window_end']}",
                "label_rate": card["label_rate"],
            }
        )
        return split

    return _split


train_split = _split_asset("train")
test_split = _split_asset("test")
