"""The log-record contract (docs/architecture.md): what the service writes and the data
pipeline reads.

Prediction and ground-truth records are JSON lines in append-only segments under the log
store, one folder per day::

    logs/predictions/date=YYYY-MM-DD/<writer>.jsonl     by the prediction's event date
    logs/ground_truth/date=YYYY-MM-DD/<writer>.jsonl    by the label's arrival date

Each writer (a service worker, the simulator) owns its segment files, so concurrent
writers never interleave lines. A record the service cannot encode (a non-finite number, a
naive timestamp) goes, with its reason, to::

    logs/quarantine/date=YYYY-MM-DD/<writer>.jsonl      by the day it was refused

Three modules: `contract` (the record types, streams, folders, schemas and JSON encoding),
`writer` (`LogWriter`) and `reader` (`read_predictions`, `read_ground_truth`, ...). Import
from this package.
"""

from lifecycle_assets.records.contract import (
    GROUND_TRUTH,
    GROUND_TRUTH_SCHEMA,
    PREDICTION_SCHEMA,
    PREDICTIONS,
    QUARANTINE,
    RAW_CAP,
    SCHEDULED,
    FeatureValue,
    GroundTruthRecord,
    PredictionRecord,
    ScheduledRecord,
    day_dir,
    encode,
    utc,
)
from lifecycle_assets.records.reader import (
    BAD_CATEGORICAL,
    BAD_DECISION,
    BAD_EVENT_TIME,
    BAD_LABEL,
    BAD_MODEL_VERSION,
    BAD_NUMERIC,
    BAD_OBSERVED_TIME,
    BAD_PII,
    BAD_RECEIVED_AT,
    CORRUPT_LINE,
    CORRUPT_SEGMENT,
    EMPTY_SEGMENT,
    EVENT_OUTSIDE_PARTITION,
    MISSING_FEATURES,
    MISSING_REQUEST_ID,
    NON_FINITE_NUMERIC,
    QUARANTINE_SCHEMA,
    SEGMENT_PATTERNS,
    count_records,
    has_segments,
    is_number,
    log_fingerprints,
    parse_time,
    read_ground_truth,
    read_log_quarantine,
    read_predictions,
)
from lifecycle_assets.records.writer import (
    LogWriter,
)

__all__ = [
    "BAD_CATEGORICAL",
    "BAD_DECISION",
    "BAD_EVENT_TIME",
    "BAD_LABEL",
    "BAD_MODEL_VERSION",
    "BAD_NUMERIC",
    "BAD_OBSERVED_TIME",
    "BAD_PII",
    "BAD_RECEIVED_AT",
    "CORRUPT_LINE",
    "CORRUPT_SEGMENT",
    "EMPTY_SEGMENT",
    "EVENT_OUTSIDE_PARTITION",
    "GROUND_TRUTH",
    "GROUND_TRUTH_SCHEMA",
    "MISSING_FEATURES",
    "MISSING_REQUEST_ID",
    "NON_FINITE_NUMERIC",
    "PREDICTIONS",
    "PREDICTION_SCHEMA",
    "QUARANTINE",
    "QUARANTINE_SCHEMA",
    "RAW_CAP",
    "SCHEDULED",
    "SEGMENT_PATTERNS",
    "FeatureValue",
    "GroundTruthRecord",
    "LogWriter",
    "PredictionRecord",
    "ScheduledRecord",
    "count_records",
    "day_dir",
    "encode",
    "has_segments",
    "is_number",
    "log_fingerprints",
    "parse_time",
    "read_ground_truth",
    "read_log_quarantine",
    "read_predictions",
    "utc",
]
