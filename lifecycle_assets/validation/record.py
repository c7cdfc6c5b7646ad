"""The decision record: computing it from versioned inputs, reading it back, rechecking it.

A record is identified by its day (the `validation_report` partition). It pins everything
the decision rests on: both model versions and their weight hashes, the test split's tag and
DVC hash (and the golden dataset's), a hash of the scored rows, code and lockfile versions,
the gate's settings and seed, the metric values, intervals and guard results. `recheck`
restores the test split at its tag with DVC, loads both models from the registry and
recomputes the record, which must match.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from lifecycle_assets.config import LifecycleConfig, ValidationConfig
from lifecycle_assets.data.transforms import MATURED_NEGATIVE
from lifecycle_assets.decision import Decision, DecisionRecord, Stage, release_stage
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.home import LifecycleHome, now
from lifecycle_assets.lineage import code_version
from lifecycle_assets.registry.queries import shadow_in_flight, shadow_result_for
from lifecycle_assets.registry.registry import Registry, served_before
from lifecycle_assets.storage import AssetStore
from lifecycle_assets.training.artifact import ModelArtifact
from lifecycle_assets.validation.gate import FAIL, FORCED, decide
from lifecycle_assets.versioning.repo import VersionedRepo

SPLIT_PREFIXES = ("test_split", "train_split")
# Fields recomputed by `recheck` and compared with the stored record.
NUMERIC_FIELDS = (
    "challenger_metric",
    "production_metric",
    "delta",
    "delta_lower_bound",
    "delta_upper_bound",
)
TOLERANCE = 1e-9


class DecisionError(LifecycleError):
    """A decision record that is missing or cannot be rechecked; the message says why."""


def rows_sha256(frame: pl.DataFrame, label: str) -> str:
    """Identifies the scored rows: their request ids and labels, in order."""
    digest = hashlib.sha256()
    if "request_id" in frame.columns:
        digest.update("\n".join(frame["request_id"].cast(pl.Utf8).to_list()).encode())
    if label in frame.columns:
        digest.update(frame[label].cast(pl.Float64).to_numpy().tobytes())
    return digest.hexdigest()


def evaluate(
    test_split: pl.DataFrame,
    challenger: ModelArtifact,
    production: ModelArtifact | None,
    config: LifecycleConfig,
    seed: int,
    golden: pl.DataFrame | None = None,
    gate: ValidationConfig | None = None,
) -> dict[str, Any]:
    """The gate's numbers: both models scored here, on the identical rows of `test_split`."""
    golden_scores = None
    if golden is not None and production is not None:
        golden_scores = (
            golden[config.problem.label].cast(pl.Float64).to_numpy(),
            challenger.score(golden),
            production.score(golden),
        )
    return evaluate_scores(
        test_split,
        lambda: challenger.score(test_split),
        (lambda: production.score(test_split)) if production is not None else None,
        config,
        seed,
        golden_scores,
        gate,
    )


def evaluate_scores(
    rows: pl.DataFrame,
    challenger: Callable[[], np.ndarray],
    production: Callable[[], np.ndarray] | None,
    config: LifecycleConfig,
    seed: int,
    golden: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    gate: ValidationConfig | None = None,
) -> dict[str, Any]:
    """The gate's numbers from both models' scores on the identical `rows` (the offline
    test split, or the live rows of a shadow window with their logged scores). The scores
    are asked for only when the rows are enough to decide on."""
    gate = gate or config.validation
    label = config.problem.label
    n = rows.height
    base = {
        "test_rows": n,
        "test_rows_sha256": rows_sha256(rows, label),
        "test_rows_counted_negative": counted_negative(rows),
    }
    if n < config.windows.min_test_rows or n == 0:
        return {
            **base,
            "decision": FAIL,
            "reason": f"test split has {n} rows < windows.min_test_rows "
            f"({config.windows.min_test_rows})",
            "metric": gate.metric,
            "guards": {},
        }
    y = rows[label].cast(pl.Float64).to_numpy()
    slices = {
        f: rows[f].cast(pl.Utf8).fill_null("").to_numpy()
        for f in config.problem.categorical_features
        if f in rows.columns
    }
    record = decide(
        y,
        challenger(),
        production() if production is not None else None,
        gate,
        seed=seed,
        slices=slices,
        golden=golden,
    )
    record.update(base)
    record["reason"] = reason(record)
    return record


# From this share of a test split's negatives on, the reason says how many are predictions
# whose label never arrived, counted negative (`labels.unlabeled_after_maturity: negative`).
# Right where a missing label means "no" (no chargeback: no fraud); where it does not (a
# measured value that is merely late), such rows are wrong labels, and at a high base rate
# they swamp the real negatives: 44 of 89 turned a month's ROC-AUC of 0.86 into 0.63 in the
# quality benchmark (docs/validation-and-promotion.md).
COUNTED_NEGATIVE_SHARE = 0.25


def counted_negative(rows: pl.DataFrame) -> int:
    """Rows whose label is a negative only because none arrived before maturity."""
    if "label_status" not in rows.columns:
        return 0
    return int((rows["label_status"] == MATURED_NEGATIVE).sum())


def reason(record: dict[str, Any]) -> str:
    if record["decision"] == Decision.FIRST_MODEL:
        return "no production model yet"
    text = (
        f"Δ{record['metric']} = {record['delta']:+.4f}, one-sided {1 - record['alpha']:.0%} "
        f"lower bound {record['delta_lower_bound']:+.4f} vs −margin {-record['margin']:+.4f}"
    )
    counted = record.get("test_rows_counted_negative") or 0
    negatives = record["n_rows"] - record["n_positive"]
    if counted and counted >= COUNTED_NEGATIVE_SHARE * negatives:
        text += (
            f" ({counted} of the test split's {negatives} negatives are predictions whose "
            "label never arrived, counted negative: labels.unlabeled_after_maturity)"
        )
    failed = [f"{name}: {g['reason']}" for name, g in record["guards"].items() if not g["passed"]]
    if not record.get("non_inferior", True):
        failed.insert(0, "not shown non-inferior")
    if record.get("inconclusive"):
        failed.append(
            "inconclusive: better on the metric, but too few rows to show it is not worse by "
            "the margin; production kept, no alert"
        )
    return text + ("; FAIL — " + "; ".join(failed) if failed else "")


# --- versioned inputs -----------------------------------------------------------------------


def split_path(tag: str) -> str:
    """`test_split/2026-06-10` → `datasets/test_split` (the DVC output that tag versions)."""
    prefix = tag.split("/", 1)[0]
    if prefix not in SPLIT_PREFIXES or "/" not in tag:
        raise DecisionError(
            f"dataset version {tag!r}: expected a split tag such as test_split/2026-06-10"
        )
    return f"datasets/{prefix}"


def restore_split(repo: VersionedRepo, tag: str) -> tuple[pl.DataFrame, str | None]:
    """A split at its tag (DVC restores it from the cache or the remote) and its DVC hash."""
    path = split_path(tag)
    if repo.tag_commit(tag) is None:
        raise DecisionError(
            f"no dataset version {tag!r} in {repo.path}: `git -C {repo.path} tag -l` lists them"
        )
    with tempfile.TemporaryDirectory(prefix="restore-") as tmp:
        dest = Path(tmp) / "split"
        repo.restore(path, tag, dest)
        frame = pl.read_parquet(dest / "data.parquet")
    return frame, repo.out_hash(path, tag)


def lineage(repo: VersionedRepo, record: dict[str, Any], versions: dict[str, Any]) -> dict:
    """Data hashes at their tags and model weight hashes, for the record."""
    out: dict[str, Any] = {}
    for key in ("test_split", "train_split"):
        tag = record.get(f"{key}_tag")
        out[f"{key}_dvc_hash"] = (
            repo.out_hash(split_path(tag), tag) if tag and repo.tag_commit(tag) else None
        )
    for key in ("challenger", "production"):
        version = record.get(f"{key}_version")
        out[f"{key}_weights_sha256"] = (
            versions.get(version, {}).get("weights_sha256") if version else None
        )
    return out


def gate_seed(config: LifecycleConfig, day: dt.date) -> int:
    """The paired bootstrap's seed for day D's gate (`validation.bootstrap_seed`)."""
    fixed = config.validation.bootstrap_seed
    return day.toordinal() if fixed is None else fixed


def build_record(
    home: LifecycleHome,
    repo: VersionedRepo,
    registry: Registry,
    day: dt.date,
    challenger: ModelArtifact,
    test_split: pl.DataFrame,
    *,
    actor: str,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Day D's decision record: the challenger against what served before D (the ledger)."""
    config = home.config()
    incumbent = served_before(home, day)
    golden_tag = config.validation.golden_dataset
    golden, golden_hash = restore_split(repo, golden_tag) if golden_tag else (None, None)
    record = evaluate(
        test_split,
        challenger,
        registry.load(incumbent) if incumbent else None,
        config,
        seed=gate_seed(config, day),
        golden=golden,
    )
    key = day.isoformat()
    record.update(
        {
            "day": key,
            "challenger_version": challenger.version,
            "production_version": incumbent,
            "test_split_tag": f"test_split/{key}",
            "train_split_tag": challenger.metadata.get("train_split_tag"),
            "golden_dataset_tag": golden_tag,
            "golden_dataset_dvc_hash": golden_hash,
            "validation": config.validation.model_dump(mode="json"),
            "decided_at": now(home).isoformat(),
            "actor": actor,
            "run_id": run_id,
            **code_version(),
        }
    )
    record.update(lineage(repo, record, registry.versions()))
    in_shadow = registry.alias("shadow")
    versus, window_served = None, False
    if (
        record["decision"] == Decision.PASS
        and config.release.shadow_days
        and incumbent is not None
        and in_shadow not in (None, challenger.version)
    ):
        versus = versus_shadow(
            test_split,
            challenger,
            registry.load(in_shadow),
            registry.load(incumbent),
            config,
            gate_seed(config, day),
        )
        flight = shadow_in_flight(home, registry)
        window_served = flight is not None and day >= flight.last
        record["versus_shadow"] = {**versus, "window_served": window_served}
    stage, why = release_stage(
        record["decision"],
        challenger=challenger.version,
        production=incumbent,
        shadow_days=config.release.shadow_days,
        in_shadow=in_shadow,
        beats_shadow=bool(versus and versus["better"]),
        shadow_gains=bool(versus and versus["shadow_gains"]),
        window_served=window_served,
    )
    record.update({"stage": stage, "stage_reason": why})
    if stage == Stage.SHADOW:
        record["shadow_days"] = config.release.shadow_days
    return DecisionRecord.checked(as_jsonable(record))


def versus_shadow(
    test_split: pl.DataFrame,
    challenger: ModelArtifact,
    shadow: ModelArtifact,
    production: ModelArtifact,
    config: LifecycleConfig,
    seed: int,
) -> dict[str, Any]:
    """A passing challenger against the version in shadow, and the shadow against
    production, on the same test rows by the gate's paired bootstrap (each model scored
    once). `better`: the challenger is shown better than the shadow (the one-sided lower
    bound of Δ above 0, not merely within the margin); `shadow_gains`: the shadow is shown
    better than production. What `decision.release_stage` replaces a running shadow on."""

    def shown_better(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
        versus = evaluate_scores(test_split, lambda: a, lambda: b, config, seed)
        low = versus.get("delta_lower_bound")
        return {
            "delta": versus.get("delta"),
            "delta_lower_bound": low,
            "shown_better": low is not None and math.isfinite(low) and low > 0,
            "metrics": (versus.get("challenger_metric"), versus.get("production_metric")),
        }

    scores = [m.score(test_split) for m in (challenger, shadow, production)]
    over_shadow = shown_better(scores[0], scores[1])
    over_production = shown_better(scores[1], scores[2])
    return {
        "shadow_version": shadow.version,
        "challenger_metric": over_shadow["metrics"][0],
        "shadow_metric": over_shadow["metrics"][1],
        "delta": over_shadow["delta"],
        "delta_lower_bound": over_shadow["delta_lower_bound"],
        "better": over_shadow["shown_better"],
        "shadow_delta": over_production["delta"],
        "shadow_delta_lower_bound": over_production["delta_lower_bound"],
        "shadow_gains": over_production["shown_better"],
    }


def recorded_decision(
    home: LifecycleHome,
    repo: VersionedRepo,
    registry: Registry,
    day: dt.date,
    challenger: ModelArtifact,
) -> dict[str, Any] | None:
    """Day D's decision as its `validation/D` tag recorded it, when that record judged this
    challenger (the same weights) against the incumbent that serves before D, on the same
    test split version, under the same gate settings; else None. The day was decided and its
    run failed afterwards (the promotion's push): its rerun publishes the same record again,
    which the tag accepts, rather than a second decision under the day's tag."""
    key = day.isoformat()
    text = repo.file_at(f"validation/{key}", VALIDATION_REPORT)
    if text is None:
        return None
    try:
        record = DecisionRecord.checked(json.loads(text))
    except ValueError:
        return None
    weights = registry.versions().get(challenger.version or "", {}).get("weights_sha256")
    test_tag = f"test_split/{key}"
    same = (
        record.get("challenger_version") == challenger.version
        and record.get("challenger_weights_sha256") == weights
        and record.get("production_version") == served_before(home, day)
        and record.get("test_split_tag") == test_tag
        and record.get("test_split_dvc_hash") == repo.out_hash(split_path(test_tag), test_tag)
        and record.get("validation") == home.config().validation.model_dump(mode="json")
    )
    return record if same else None


# --- reading and rechecking -----------------------------------------------------------------


# The validation stage's DVC output (dvc.yaml): the full record, git-tracked at each day's tag.
VALIDATION_REPORT = "reports/validation.json"


def record_path(home: LifecycleHome, day: str) -> Path:
    return AssetStore.of(home).record_path("validation_report", day)


def parse_day(day: str) -> str:
    try:
        return dt.date.fromisoformat(day).isoformat()
    except ValueError:
        raise DecisionError(f"{day!r} is not a day (YYYY-MM-DD)") from None


def load_record(home: LifecycleHome, day: str) -> dict[str, Any]:
    """The decision stored for `day` (the validation_report partition, FORCED ones included):
    the home's stored output, else the record versioned in the registry repo at the day's
    `validation/DAY` tag (a node whose repo is a clone, with none of the outputs)."""
    day = parse_day(day)
    path = record_path(home, day)
    text = path.read_text() if path.is_file() else None
    if text is None:
        text = VersionedRepo.of(home).file_at(f"validation/{day}", VALIDATION_REPORT)
    if text is None:
        known = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        hint = f"decisions exist for {', '.join(known[-5:])}" if known else "no decisions yet"
        raise DecisionError(f"no decision recorded for {day} in {home.root} ({hint})")
    try:
        record = DecisionRecord.checked(json.loads(text))
    except ValueError as err:  # not JSON, or not a decision record
        raise DecisionError(f"the decision stored for {day} cannot be read: {err}") from None
    if record.get("stage") == Stage.SHADOW:
        shadow = shadow_result_for(home, day)
        if shadow is not None:
            record["shadow_gate"] = shadow_summary(shadow)
    return record


# The shadow gate's result shown beside the offline decision that sent its challenger to
# shadow (`load_record`); the whole shadow record is the `shadow_report` of its own day.
SHADOW_SUMMARY = (
    "day",
    "decision",
    "reason",
    "abandoned",
    "action",
    "production_version",
    "window",
    "n_rows",
    "delta",
    "delta_lower_bound",
    "margin",
)


def shadow_summary(shadow: dict[str, Any]) -> dict[str, Any]:
    """A shadow decision record's `SHADOW_SUMMARY` fields (None where it has none): what the
    offline decision, the demo's day and the replay's period show of it."""
    return {k: shadow.get(k) for k in SHADOW_SUMMARY}


def recheck(home: LifecycleHome, day: str) -> dict[str, Any]:
    """Recompute the decision of `day` from its versioned data and registered models."""

    stored = load_record(home, day)
    if stored.get("decision") == FORCED:
        gate_record = stored.get("superseded")
        note = (
            f"a FORCED release is a person's decision ({stored.get('actor')}: "
            f"{stored.get('reason')})"
        )
        if isinstance(gate_record, dict) and gate_record.get("test_split_tag"):
            result = _recheck(home, gate_record)
            return {**result, "decision": FORCED, "note": f"{note}; the gate record it "
                    f"overrode ({gate_record.get('decision')}) was rechecked"}  # fmt: skip
        return {
            "day": stored["day"],
            "decision": FORCED,
            "matches": None,
            "differences": [],
            "note": f"{note}; there is no gate result to recompute",
        }
    return _recheck(home, stored)


def _recheck(home: LifecycleHome, stored: dict[str, Any]) -> dict[str, Any]:
    config = home.config()
    day = stored.get("day")
    for field in ("test_split_tag", "challenger_version", "validation"):
        if not stored.get(field):
            raise DecisionError(
                f"the record for {day} has no {field!r}: it predates decision records that can be "
                "rechecked"
            )
    repo = VersionedRepo.of(home)
    registry = Registry(home, config.problem.name)
    differences: list[str] = []

    test_split, test_hash = restore_split(repo, stored["test_split_tag"])
    _same(differences, "test_split_dvc_hash", stored.get("test_split_dvc_hash"), test_hash)
    # On a node that has not served them, the versions come from the DVC remote first.
    for key in ("challenger_version", "production_version"):
        if stored.get(key):
            registry.restore(stored[key])
    challenger = registry.load(stored["challenger_version"])
    production = (
        registry.load(stored["production_version"]) if stored.get("production_version") else None
    )
    versions = registry.versions()
    for key, model in (("challenger", challenger), ("production", production)):
        if model is not None:
            _same(
                differences,
                f"{key}_weights_sha256",
                stored.get(f"{key}_weights_sha256"),
                versions.get(str(model.version), {}).get("weights_sha256"),
            )
    golden = None
    golden_tag = stored.get("golden_dataset_tag")
    if golden_tag:
        golden, golden_hash = restore_split(repo, golden_tag)
        _same(
            differences,
            "golden_dataset_dvc_hash",
            stored.get("golden_dataset_dvc_hash"),
            golden_hash,
        )
    gate = ValidationConfig.model_validate(stored["validation"])
    recomputed = evaluate(
        test_split, challenger, production, config, stored.get("seed", 0), golden, gate=gate
    )

    return compare_gate_results(stored, recomputed, differences)


def compare_gate_results(
    stored: dict[str, Any], recomputed: dict[str, Any], differences: list[str]
) -> dict[str, Any]:
    """A recheck's verdict: the stored gate result against its recomputation (the same rows,
    by their hash; the decision; the gate's numbers; each guard), after the `differences`
    already found in what the recomputation read."""
    _same(
        differences,
        "test_rows_sha256",
        stored.get("test_rows_sha256"),
        recomputed["test_rows_sha256"],
    )
    _same(differences, "decision", stored.get("decision"), recomputed["decision"])
    for name in NUMERIC_FIELDS:
        _close(differences, name, stored.get(name), recomputed.get(name))
    for name, guard in recomputed.get("guards", {}).items():
        old = stored.get("guards", {}).get(name, {})
        _same(differences, f"guards.{name}.passed", old.get("passed"), guard["passed"])
    return {
        "day": stored["day"],
        "decision": stored["decision"],
        "recomputed_decision": recomputed["decision"],
        "matches": not differences,
        "differences": differences,
        "stored": {k: stored.get(k) for k in NUMERIC_FIELDS},
        "recomputed": {k: recomputed.get(k) for k in NUMERIC_FIELDS},
    }


def _same(out: list[str], name: str, stored: Any, recomputed: Any) -> None:
    if stored != recomputed:
        out.append(f"{name}: stored {stored!r}, recomputed {recomputed!r}")


def _close(out: list[str], name: str, stored: Any, recomputed: Any) -> None:
    if stored is None or recomputed is None:
        _same(out, name, stored, recomputed)
    elif not math.isclose(float(stored), float(recomputed), rel_tol=TOLERANCE, abs_tol=TOLERANCE):
        out.append(f"{name}: stored {stored!r}, recomputed {recomputed!r}")


def as_jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """numpy scalars and infinities as plain JSON values."""
    return json.loads(json.dumps(record, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
