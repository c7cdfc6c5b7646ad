"""Data stage assets: thin wrappers over `records`, `data.validation` and `data.transforms`.

Checks are emitted from inside the assets (`check_specs` + `AssetCheckResult`), so each one
judges exactly the partition being materialised. Only broken data is blocking.
"""

import datetime as dt
import hashlib
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from lifecycle_assets.data import transforms, validation
from lifecycle_assets.defs.partitions import (
    LABEL_ARRIVAL_WINDOW,
    TRAILING_FEATURES,
    daily,
    daily_check,
    partition_day,
    window_input,
)
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.defs.resources.versioning import VersioningResource
from lifecycle_assets.files import write_json
from lifecycle_assets.records import read_ground_truth, read_predictions
from lifecycle_assets.storage import AssetStore

GROUP = "data"
# The service's log store (`serving.assets.prediction_log_store`), which both ingest assets read.
LOG_STORE = dg.AssetKey("prediction_log_store")


def _schema_metadata(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    )


def _quarantine_metadata(
    home: LifecycleHomeResource, asset: str, day: str, quarantine: pl.DataFrame
) -> dict[str, Any]:
    """Bad rows are kept, with their reason, next to the asset; their counts go to metadata."""
    target = AssetStore.of(home.get()).quarantine_path(asset, day)
    if quarantine.height:
        target.parent.mkdir(parents=True, exist_ok=True)
        quarantine.write_parquet(target)
        target.chmod(0o600)
    elif target.exists():
        target.unlink()  # a re-run with clean data must not leave the old verdict behind
    counts = Counter(quarantine["reason"].to_list())
    return {
        "quarantined_rows": quarantine.height,
        "quarantine_reasons": dg.MetadataValue.json(dict(sorted(counts.items()))),
    }


def _frame_metadata(frame: pl.DataFrame) -> dict[str, Any]:
    return {"dagster/row_count": frame.height, "dagster/column_schema": _schema_metadata(frame)}


def _null_rates(frame: pl.DataFrame) -> dict[str, float]:
    if not frame.height:
        return {c: 0.0 for c in frame.columns}
    return {c: frame[c].null_count() / frame.height for c in frame.columns}


@dg.asset(
    partitions_def=daily,
    group_name=GROUP,
    kinds={"polars"},
    deps=[LOG_STORE],
    check_specs=[
        daily_check(
            "raw_prediction_logs_quarantine_rate",
            asset="raw_prediction_logs",
            description="Quarantined share of the day's records (contract breaks, duplicates, "
            "implausible times) at most data.max_quarantine_rate.",
        )
    ],
)
def raw_prediction_logs(
    context: dg.AssetExecutionContext, home: LifecycleHomeResource
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Prediction records of day D (by event date), validated; identifying columns dropped or
    keyed-hashed here, before anything is stored."""
    cfg = home.config()
    h = home.get()
    frame, read_bad = read_predictions(
        h.logs,
        partition_day(context),
        cfg.problem.numeric_features,
        cfg.problem.categorical_features,
        cfg.problem.pii_columns,
    )
    frame, checked_bad, counts = validation.validate_predictions(
        frame,
        home.now(),
        cfg,
        simulated_clock=h.clock_path.is_file(),
        pii_key=validation.load_pii_key(h.root, cfg),
    )
    quarantine = pl.concat([read_bad, checked_bad])
    total = frame.height + quarantine.height
    rate = quarantine.height / total if total else 0.0
    dup = quarantine.filter(
        pl.col("reason").is_in([validation.DUPLICATE_REQUEST_ID, validation.REPLAYED_REQUEST_ID])
    ).height
    yield dg.Output(
        frame,
        metadata={
            **_frame_metadata(frame),
            "scored_rows": frame.filter(pl.col("score").is_not_null()).height,
            "unknown_categories": dg.MetadataValue.json(counts),
            "duplicate_rate": dup / total if total else 0.0,
            "null_rates": dg.MetadataValue.json(_null_rates(frame)),
            "pii_handling": validation.pii_handling(cfg),
            **_quarantine_metadata(home, "raw_prediction_logs", context.partition_key, quarantine),
        },
    )
    yield dg.AssetCheckResult(
        check_name="raw_prediction_logs_quarantine_rate",
        passed=rate <= cfg.data.max_quarantine_rate,
        metadata={"quarantine_rate": rate, "limit": cfg.data.max_quarantine_rate},
    )


@dg.asset(partitions_def=daily, group_name=GROUP, kinds={"polars"}, deps=[LOG_STORE])
def ground_truth(context: dg.AssetExecutionContext, home: LifecycleHomeResource) -> pl.DataFrame:
    """Label events that arrived on day D (joined to predictions later by request id)."""
    h = home.get()
    frame, read_bad = read_ground_truth(h.logs, partition_day(context))
    frame, future = validation.validate_ground_truth(
        frame, home.now(), home.config(), simulated_clock=h.clock_path.is_file()
    )
    context.add_output_metadata(
        {
            **_frame_metadata(frame),
            **_quarantine_metadata(
                home, "ground_truth", context.partition_key, pl.concat([read_bad, future])
            ),
        }
    )
    return frame


@dg.asset(
    partitions_def=daily,
    group_name=GROUP,
    kinds={"polars"},
    ins={
        "raw_prediction_logs": dg.AssetIn(),
        "ground_truth": window_input(LABEL_ARRIVAL_WINDOW),
    },
    check_specs=[
        daily_check(
            "label_coverage",
            asset="labeled_examples",
            description="A matured day with predictions has at least one observed label "
            "(none at all means the label feed is broken, not that nothing happened).",
        )
    ],
)
def labeled_examples(
    context: dg.AssetExecutionContext,
    home: LifecycleHomeResource,
    raw_prediction_logs: pl.DataFrame,
    ground_truth: pl.DataFrame,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
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
    matured = day + dt.timedelta(days=cfg.labels.maturity_days) <= home.today()
    yield dg.Output(
        examples,
        metadata={
            **_frame_metadata(examples),
            "label_status": dg.MetadataValue.json(dict(status)),
            # the late-label sensor compares this with the labels available now
            "labels_joined": labeled,
            "label_coverage": labeled / examples.height if examples.height else 0.0,
            "matured": matured,
            **_quarantine_metadata(home, "labeled_examples", context.partition_key, quarantine),
        },
    )
    yield dg.AssetCheckResult(
        check_name="label_coverage",
        passed=not (matured and examples.height and labeled == 0),
        metadata={"labeled": labeled, "rows": examples.height, "matured": matured},
    )


@dg.asset(
    partitions_def=daily,
    group_name=GROUP,
    kinds={"polars"},
    check_specs=[
        daily_check(
            "feature_table_is_well_formed",
            asset="feature_table",
            blocking=True,
            description="Broken data stops the run before training: missing or mistyped "
            "columns, null or non-finite features, bad labels, duplicate request ids.",
        )
    ],
)
def feature_table(
    context: dg.AssetExecutionContext, home: LifecycleHomeResource, labeled_examples: pl.DataFrame
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Model features plus label for day D; identifying columns never raw."""
    cfg = home.config()
    frame = transforms.build_feature_table(labeled_examples, cfg)
    yield dg.Output(
        frame,
        metadata={
            **_frame_metadata(frame),
            "null_rates": dg.MetadataValue.json(_null_rates(frame)),
            "ranges": dg.MetadataValue.json(transforms.numeric_ranges(frame, cfg)),
        },
    )
    problems = transforms.feature_table_problems(frame, cfg)
    yield dg.AssetCheckResult(
        check_name="feature_table_is_well_formed",
        passed=not problems,
        metadata={"problems": dg.MetadataValue.json(problems)},
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _split_asset(which: str):
    name = f"{which}_split"
    checks = (
        [
            daily_check(
                "no_overlap_with_test",
                asset=name,
                blocking=True,
                description="No request id (and, with data.entity_disjoint_split, no entity) "
                "is in both day D's train and test split.",
            )
        ]
        if which == "train"
        else []
    )

    @dg.asset(
        name=name,
        partitions_def=daily,
        group_name=GROUP,
        kinds={"polars", "dvc"},
        ins={"feature_table": window_input(TRAILING_FEATURES)},
        check_specs=checks,
    )
    def _split(
        context: dg.AssetExecutionContext,
        home: LifecycleHomeResource,
        versioning: VersioningResource,
        feature_table: pl.DataFrame,
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        cfg = home.config()
        day = partition_day(context)
        split = (
            transforms.build_split(feature_table, day, which, cfg)
            if feature_table.width
            else feature_table
        )
        stage = name

        def write(folder: Path) -> None:
            old = os.umask(0o077)  # owner-only, whatever the process umask is
            try:
                folder.mkdir(parents=True)
                split.write_parquet(folder / "data.parquet")
                card = transforms.data_card(
                    split, stage, day, cfg, content_sha256=_sha256(folder / "data.parquet")
                )
                write_json(folder / "data_card.json", card)
                (folder / "data_card.md").write_text(transforms.data_card_markdown(card))
            finally:
                os.umask(old)

        version = versioning.publish(
            stage,
            context.partition_key,
            f"datasets/{stage}",
            write,
            message=f"{stage} {context.partition_key}: {split.height} rows",
            tag=f"{stage}/{context.partition_key}",
        )
        start, end = transforms.split_range(day, which, cfg)
        yield dg.Output(
            split,
            metadata={
                **_frame_metadata(split),
                **version,
                "window": f"{start.isoformat()} … {end.isoformat()}",
                "label_rate": (
                    float(split[cfg.problem.label].mean() or 0.0)  # type: ignore[arg-type]
                    if split.height
                    else 0.0
                ),
            },
        )
        if which == "train":
            overlap = (
                transforms.split_overlap(feature_table, day, cfg)
                if feature_table.width
                else {"request_overlap": 0}
            )
            yield dg.AssetCheckResult(
                check_name="no_overlap_with_test",
                passed=not any(overlap.values()),
                metadata=overlap,
            )

    return _split


train_split = _split_asset("train")
test_split = _split_asset("test")
