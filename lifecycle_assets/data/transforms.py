"""Logs → labelled examples → features → train/test splits. Plain polars, no Dagster."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import TypeVar, cast

import polars as pl
from polars.io.plugins import register_io_source

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.records import GROUND_TRUTH_SCHEMA, QUARANTINE_SCHEMA
from lifecycle_assets.worktime import work

__all__ = [
    "GROUND_TRUTH_SCHEMA",
    "build_feature_table",
    "build_labeled_examples",
    "build_split",
    "stream_split",
]

LABELED, MATURED_NEGATIVE, PENDING = "labeled", "matured_negative", "pending"
FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def _quarantine(frame: pl.DataFrame, reason: str, source: str) -> pl.DataFrame:
    return frame.select(
        pl.lit(source).alias("source"),
        pl.lit(reason).alias("reason"),
        pl.struct(pl.all()).struct.json_encode().alias("raw"),
    )


CONFLICTING_LABEL = "conflicting_label"


def arrival_time() -> pl.Expr:
    """When a label arrived: the service's own `received_at` stamp (its loop clock); labels
    landed without one (bulk files, the simulator) fall back to their `observed_time`."""
    return pl.coalesce("received_at", "observed_time")


def with_arrival(labels: FrameT) -> FrameT:
    """`labels` with a `received_at` column (null where a writer did not stamp one)."""
    if "received_at" in labels.collect_schema().names():
        return labels
    return labels.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("received_at"))


def has_repeats(values: pl.Series) -> bool:
    """Whether some value occurs twice. Values with distinct 64-bit hashes are distinct, so
    that one cheap pass answers for almost every day (about 7× faster than comparing the
    values at a million request ids); only hashes that repeat (a repeated value, or in rare
    cases a collision) are checked on the values themselves."""
    return values.hash().n_unique() < values.len() and bool(values.is_duplicated().any())


def first_arrivals(labels: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the first label to arrive per request id, the later ones that disagree with it).

    Ordered by `arrival_time`; ties (labels stamped in the same instant, or on the same
    simulated day) keep the order they were written in. The client-supplied
    `observed_time` never reorders labels the service received, so a later conflicting
    label cannot displace the first. Repeats of the same value are duplicates, not
    conflicts."""
    ordered = with_arrival(labels).sort(arrival_time(), maintain_order=True)
    first = ordered.unique("request_id", keep="first", maintain_order=True)
    later = ordered.filter(~pl.col("request_id").is_first_distinct())
    chosen = first.select("request_id", pl.col("label").alias("_first"))
    conflicts = (
        later.join(chosen, on="request_id", how="left", maintain_order="left")
        .filter(pl.col("label") != pl.col("_first"))
        .drop("_first")
    )
    return first.drop("received_at"), conflicts


@work("transforms")
def build_labeled_examples(
    predictions: pl.DataFrame,
    labels: pl.DataFrame,
    day: dt.date,
    today: dt.date,
    config: LifecycleConfig,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Join one day's predictions to the labels that arrived within its maturity window.

    Returns (examples, quarantine). `label_status` says whether a row's label is observed,
    inferred negative after maturity (per `labels.unlabeled_after_maturity`), or pending.
    """
    label_col = config.problem.label
    maturity = config.labels.maturity_days
    quarantined = []

    if has_repeats(predictions["request_id"]):
        dup = predictions.filter(pl.col("request_id").is_duplicated())
        quarantined.append(_quarantine(dup, "duplicate_request_id", "raw_prediction_logs"))
        predictions = predictions.unique("request_id", keep="first", maintain_order=True)

    window_end = dt.datetime.combine(day + dt.timedelta(days=maturity + 1), dt.time(), dt.UTC)
    # By arrival, as labels are filed: a client's `observed_time` cannot move a label out of
    # (or into) the maturity window.
    first_labels, conflicts = first_arrivals(
        with_arrival(labels).filter(arrival_time() < window_end)
    )
    # counted on the day of the prediction they label, once
    if conflicts.height:
        ids = predictions["request_id"].implode()
        conflicts = conflicts.filter(pl.col("request_id").is_in(ids))
    if conflicts.height:
        quarantined.append(_quarantine(conflicts, CONFLICTING_LABEL, "ground_truth"))
    # One streaming query from the predictions to the examples: the join, the (rare) leak
    # filter and the label columns run per batch, with no joined copy of the day in between.
    # The leaked rows come from the labelled rows alone (request ids are unique on both sides,
    # so the inner join holds the left join's labelled rows in the same order).
    labels_lazy = first_labels.lazy()
    joined = predictions.lazy().join(
        labels_lazy, on="request_id", how="left", maintain_order="left"
    )
    leaked = (
        predictions.lazy()
        .join(labels_lazy, on="request_id", how="inner", maintain_order="left")
        .filter(pl.col("observed_time") < pl.col("event_time"))
        .collect(engine="streaming")
    )
    if leaked.height:
        quarantined.append(_quarantine(leaked, "label_before_prediction", "ground_truth"))
        joined = joined.filter(
            pl.col("observed_time").is_null() | (pl.col("observed_time") >= pl.col("event_time"))
        )

    matured = day + dt.timedelta(days=maturity) <= today
    if matured and config.labels.unlabeled_after_maturity == "negative":
        fill = pl.when(pl.col("label").is_null()).then(0.0).otherwise(pl.col("label"))
        status_unlabeled = pl.lit(MATURED_NEGATIVE)
    else:
        fill = pl.col("label")
        status_unlabeled = pl.lit(PENDING)
    # Through a temporary name: a config whose label column is itself called "label" must not
    # lose it to the drop of the ground-truth column.
    examples = (
        joined.with_columns(
            fill.alias("_label_value"),
            pl.when(pl.col("label").is_not_null())
            .then(pl.lit(LABELED))
            .otherwise(status_unlabeled)
            .alias("label_status"),
            pl.lit(matured).alias("label_matured"),
        )
        .drop("label")
        .rename({"_label_value": label_col})
        .collect(engine="streaming")
    )
    quarantine = pl.concat(quarantined) if quarantined else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    return examples, quarantine


@work("transforms")
def build_feature_table(examples: pl.DataFrame, config: LifecycleConfig) -> pl.DataFrame:
    """Model features plus label and provenance; identifying columns never pass this point."""
    p = config.problem
    keep = [
        "request_id",
        "entity_id",
        "event_time",
        *p.numeric_features,
        *p.categorical_features,
        p.label,
        "label_status",
        "label_matured",
        "model_version",
        "score",
    ]
    # Identifying columns reach this point only as keyed hashes (`data.pii_mode: hash`), which
    # are kept for audits and entity-level joins; raw values were removed at ingestion.
    if config.data.pii_mode == "hash":
        keep += [c for c in p.pii_columns if c in examples.columns and c not in keep]
    return examples.select(keep)


def split_windows(day: dt.date, config: LifecycleConfig) -> dict[str, tuple[dt.date, dt.date]]:
    """For day D: test = the newest `test_days` matured days; train = the `train_days` before;
    history = the days the train split holds (`LifecycleConfig.history_days` before the test
    window where there is a history, else the train window)."""
    w = config.windows
    matured_end = day - dt.timedelta(days=config.labels.maturity_days)
    test_start = matured_end - dt.timedelta(days=w.test_days - 1)
    train_end = test_start - dt.timedelta(days=1)
    train_start = train_end - dt.timedelta(days=w.train_days - 1)
    history_start = train_end - dt.timedelta(days=config.split_days - 1)
    return {
        "train": (train_start, train_end),
        "test": (test_start, matured_end),
        "history": (history_start, train_end),
    }


def split_range(day: dt.date, which: str, config: LifecycleConfig) -> tuple[dt.date, dt.date]:
    """The first and last day of the rows split `which` (train | test) holds on day D: the
    train split holds the history."""
    return split_windows(day, config)["history" if which == "train" else which]


@work("transforms")
def build_split(
    features: pl.DataFrame, day: dt.date, which: str, config: LifecycleConfig
) -> pl.DataFrame:
    """Rows of the window with a usable (matured) label, ordered by event time."""
    split = window_rows(features, day, which, config)
    if which == "train" and config.data.entity_disjoint_split:
        # Entities of the test window never train: the gate then measures generalisation to
        # unseen entities, as the config asks.
        test_entities = window_rows(features, day, "test", config)["entity_id"].unique()
        split = split.filter(~pl.col("entity_id").is_in(test_entities.implode()))
    return split


def _in_window(day: dt.date, which: str, config: LifecycleConfig) -> pl.Expr:
    start, end = split_range(day, which, config)
    lo = dt.datetime.combine(start, dt.time(), dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    return (
        (pl.col("event_time") >= lo)
        & (pl.col("event_time") < hi)
        & pl.col("label_matured")
        & pl.col(config.problem.label).is_not_null()
    )


SPLIT_ORDER = ("event_time", "request_id")


def window_rows(features: FrameT, day: dt.date, which: str, config: LifecycleConfig) -> FrameT:
    """Rows of a split's window with a usable (matured) label; eager or lazy frames alike."""
    return features.filter(_in_window(day, which, config)).sort(*SPLIT_ORDER)


def stream_split(
    partitions: Sequence[pl.LazyFrame],
    day: dt.date,
    which: str,
    config: LifecycleConfig,
    *,
    batch_rows: int = 100_000,
) -> pl.LazyFrame:
    """`build_split` over daily feature partitions (lazy scans, in day order), as a lazy frame
    whose memory is bounded by one partition rather than the whole window.

    Partitions hold disjoint days, so sorting each one and concatenating them in day order is
    the split's global (event_time, request_id) order. A streaming engine sorts every input
    of a concatenation at once (the whole window in memory); here one partition is read at a
    time, only its sort keys are sorted, and its rows leave in slices of `batch_rows`.
    """
    window = _in_window(day, which, config)
    excluded: pl.Series | None = None
    if which == "train" and config.data.entity_disjoint_split:
        excluded = (
            pl.concat(
                [p.filter(_in_window(day, "test", config)).select("entity_id") for p in partitions]
            )
            .unique()
            .collect(engine="streaming")["entity_id"]
        )
        window &= ~pl.col("entity_id").is_in(excluded.implode())
    schema = partitions[0].collect_schema() if partitions else pl.Schema()

    def batches(
        columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, _size: int | None
    ) -> Iterator[pl.DataFrame]:
        left = n_rows
        for part in partitions:
            rows = part.filter(window).collect(engine="streaming")
            order = rows.select(pl.arg_sort_by(*SPLIT_ORDER))[:, 0]
            for start in range(0, rows.height, batch_rows):
                batch = rows[order.slice(start, batch_rows)]
                if predicate is not None:
                    batch = batch.filter(predicate)
                if columns is not None:
                    batch = batch.select(columns)
                if left is not None:
                    batch = batch.head(left)
                    left -= batch.height
                yield batch
                if left is not None and left <= 0:
                    return
            del rows, order

    return register_io_source(batches, schema=schema, explain_name="feature partitions by day")


def split_overlap(features: pl.DataFrame, day: dt.date, config: LifecycleConfig) -> dict[str, int]:
    """Request ids (and entities) in both day D's train and test split: both must be 0."""
    train = build_split(features, day, "train", config)
    test = build_split(features, day, "test", config)
    out = {"request_overlap": int(train["request_id"].is_in(test["request_id"].implode()).sum())}
    if config.data.entity_disjoint_split:
        out["entity_overlap"] = int(train["entity_id"].is_in(test["entity_id"].implode()).sum())
    return out


def feature_table_problems(features: pl.DataFrame, config: LifecycleConfig) -> list[str]:
    """What makes a feature partition unusable for training; empty when it is well formed."""
    p = config.problem
    problems = []
    for col in (*p.numeric_features, *p.categorical_features, "request_id", "event_time"):
        if col not in features.columns:
            problems.append(f"missing column {col}")
        elif features[col].null_count():
            problems.append(f"{features[col].null_count()} nulls in {col}")
    for col in p.numeric_features:
        if col in features.columns:
            if not features.schema[col].is_numeric():
                problems.append(f"{col} is {features.schema[col]}, not numeric")
            elif n := features.select((~pl.col(col).is_finite()).sum()).item():
                problems.append(f"{n} non-finite values in {col}")
    for col in p.categorical_features:
        if col in features.columns and features.schema[col] != pl.String():
            problems.append(f"{col} is {features.schema[col]}, not a string")
    if "request_id" in features.columns and has_repeats(features["request_id"]):
        problems.append("duplicate request ids")
    if p.task == "binary" and p.label in features.columns:
        bad = features.filter(pl.col(p.label).is_not_null() & ~pl.col(p.label).is_in([0.0, 1.0]))
        if bad.height:
            problems.append(f"{bad.height} labels outside {{0, 1}}")
    return problems


def numeric_ranges(features: pl.DataFrame, config: LifecycleConfig) -> dict[str, list]:
    """[min, max] of each numeric feature (and the label) in a partition."""
    cols = [
        c for c in (*config.problem.numeric_features, config.problem.label) if c in features.columns
    ]
    if not features.height:
        return {c: [None, None] for c in cols}
    row = features.select(
        *[pl.col(c).min().alias(f"{c}:min") for c in cols],
        *[pl.col(c).max().alias(f"{c}:max") for c in cols],
    ).row(0, named=True)
    return {c: [row[f"{c}:min"], row[f"{c}:max"]] for c in cols}


def data_card(
    split: pl.DataFrame,
    name: str,
    day: dt.date,
    config: LifecycleConfig,
    *,
    content_sha256: str | None = None,
) -> dict:
    """What a reviewer needs to know about a dataset version (docs/data.md)."""
    from lifecycle_assets.data.validation import pii_handling

    start, end = split_range(day, name.removesuffix("_split"), config)
    p = config.problem
    label_rate = (
        cast(float, split[p.label].mean() or 0.0)
        if split.height and p.label in split.columns
        else 0.0
    )
    has_time = split.height and "event_time" in split.columns
    return {
        "dataset": name,
        "partition": day.isoformat(),
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "source_partitions": (
            sorted(d.isoformat() for d in split["event_time"].dt.date().unique().to_list())
            if has_time
            else []
        ),
        "event_time_min": str(split["event_time"].min()) if has_time else None,
        "event_time_max": str(split["event_time"].max()) if has_time else None,
        "sha256": content_sha256,
        "rows": split.height,
        "label": p.label,
        "label_rate": label_rate,
        "null_rates": {
            c: (split[c].null_count() / split.height if split.height else 0.0)
            for c in split.columns
        },
        "schema": {c: str(t) for c, t in split.schema.items()},
        "pii_handling": pii_handling(config),
        "access_policy": ACCESS_POLICY,
    }


ACCESS_POLICY = (
    "owner-only: files 0600 and directories 0700 in the lifecycle home and its local DVC "
    "remote; an object-storage remote is restricted by its bucket policy (docs/data.md)"
)


def data_card_markdown(card: dict) -> str:
    lines = [
        f"# Data card: {card['dataset']} for {card['partition']}",
        "",
        f"- Window: {card['window_start']} to {card['window_end']} (event time, matured labels only)",
        f"- Source partitions: {', '.join(card.get('source_partitions') or []) or 'none'}",
        f"- Event time: {card.get('event_time_min')} to {card.get('event_time_max')}",
        f"- Rows: {card['rows']}",
        f"- Content SHA-256 (data.parquet): {card.get('sha256') or 'n/a'}",
        f"- Label `{card['label']}` rate: {card['label_rate']:.4f}",
        f"- PII: {card['pii_handling']}",
        f"- Access: {card['access_policy']}",
        "",
        "| column | type | null rate |",
        "|---|---|---|",
    ]
    lines += [
        f"| {c} | {t} | {card['null_rates'].get(c, 0.0):.4f} |" for c, t in card["schema"].items()
    ]
    return "\n".join(lines) + "\n"
