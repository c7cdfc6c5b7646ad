"""The model card: what a reviewer reads before approving a version.

Written with the artifact at training time (no gate result yet) and rendered again by
`lifecycle models show V` with the decision record of the day it was validated: metrics
overall and per slice, the test data version, and the release state.
"""

from __future__ import annotations

from typing import Any

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.training.artifact import ModelArtifact


def model_card_markdown(
    artifact: ModelArtifact,
    config: LifecycleConfig,
    decision: dict[str, Any] | None = None,
    record: dict[str, Any] | None = None,
) -> str:
    """`record` (the registry's entry for the version) fills in lineage the artifact lacks."""
    meta = {**(record or {}), **artifact.metadata}
    p = config.problem
    params = meta.get("training_params") or {}
    lines = [
        f"# Model card: {p.name} {artifact.version}",
        "",
        "## Intended use",
        f"Scoring {p.name} requests ({artifact.task}, label `{p.label}`) online and in batch "
        "through lifecycle's one scoring function; decisions by the thresholds below. Not for "
        "entities, features or periods outside the training data.",
        "",
        "## Data",
        f"- Training data version: `{meta.get('train_split_tag')}` (DVC "
        f"`{meta.get('train_split_dvc_hash')}`, {meta.get('train_rows')} rows)",
        *_sample(meta.get("training_sample")),
        *_history(meta.get("history")),
        f"- Test data version: `{(decision or {}).get('test_split_tag', 'not validated yet')}`"
        + (f" ({decision.get('test_rows')} rows)" if decision else ""),
        f"- Features: numeric {list(p.numeric_features)}; categorical "
        f"{list(p.categorical_features)} (unknown categories map to an out-of-vocabulary "
        "bucket); preprocessing (scaling, vocabularies) is fitted on the training data and "
        "stored in the artifact",
        "",
        "## Metrics",
        *_metrics(decision),
        "",
        "## Decision thresholds",
        f"- {artifact.thresholds} (score ≥ review → review; ≥ decline → decline)",
        "",
        "## Training",
        f"- Architecture: {artifact.architecture}; params: {params or meta.get('epochs')}",
        f"- Hardware: {meta.get('hardware') or meta.get('device')}; training took "
        f"{meta.get('train_seconds')} s",
        f"- Code: {meta.get('code_commit')} (dirty: {meta.get('code_dirty')}); "
        f"lockfile sha256 {meta.get('lockfile_sha256')}",
        "",
        "## Limitations",
        f"- Labels are chargebacks that mature after {config.labels.maturity_days} days: the "
        "most recent fraud patterns are under-represented.",
        "- Trained on the traffic the previous model let through: declined payments have no "
        "labels, so the data is biased toward what was approved.",
        "- Per-slice results cover slices large enough to test; small slices are unmeasured.",
        "",
    ]
    return "\n".join(lines)


def _sample(sample: dict[str, Any] | None) -> list[str]:
    """The rows fitted when `training.max_rows` capped them (`training.train.cap_rows`)."""
    if not sample:
        return []
    return [
        f"- Fitted on a sample: {sample.get('rows')} of {sample.get('of_rows')} rows "
        f"(training.max_rows {sample.get('max_rows')}, drawn with seed {sample.get('seed')})"
    ]


def _history(history: dict[str, Any] | None) -> list[str]:
    """How far back the model learned (`training/history.py`), where the split had a history."""
    if not history:
        return []
    rows = history.get("rows") or {}
    scores = history.get("scores")
    scored = (
        f"; {history.get('metric')} on the newest days: recent {_num(scores.get('recent'))}, "
        f"history {_num(scores.get('history'))}"
        if scores
        else ""
    )
    return [
        f"- Learned from: the {history.get('chosen')} rows ({rows.get(history.get('chosen'))} "
        f"of the split's {rows.get('history')}; recent = the newest "
        f"{history.get('train_days')} days of {history.get('history_days')}): "
        f"{history.get('reason')}{scored}"
    ]


def _metrics(decision: dict[str, Any] | None) -> list[str]:
    if not decision:
        return ["- Not validated yet: see the decision record once the gate has run."]
    name = decision.get("metric", "metric")
    lines = [
        f"- Gate decision {decision.get('decision')} on {decision.get('day')}: "
        f"{decision.get('reason', '')}",
        f"- {name}: challenger {_num(decision.get('challenger_metric'))} "
        f"(interval {_interval(decision.get('challenger_interval'))}), production "
        f"{decision.get('production_version') or '—'} "
        f"{_num(decision.get('production_metric'))}",
    ]
    if decision.get("delta") is not None:
        lines.append(
            f"- Δ{name} {_num(decision.get('delta'), '+.4f')}, lower bound "
            f"{_num(decision.get('delta_lower_bound'), '+.4f')} vs margin "
            f"{decision.get('margin')}"
        )
    slices = ((decision.get("guards") or {}).get("slices") or {}).get("slices") or []
    if slices:
        lines += ["", f"| slice | rows | Δ{name} | interval | worse |", "|---|---:|---:|---|---|"]
        for s in slices:
            lines.append(
                f"| {s['feature']}={s['value']} | {s['rows']} | {_num(s.get('delta'), '+.4f')} "
                f"| {_interval(s.get('delta_interval'), '+.4f')} | {'yes' if s.get('worse') else 'no'} |"
            )
    return lines


def _num(value: Any, fmt: str = ".4f") -> str:
    return "—" if value is None else format(value, fmt)


def _interval(value: Any, fmt: str = ".4f") -> str:
    """A [low, high] interval at the card's precision ("—" when there is none)."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return "—"
    return f"[{_num(value[0], fmt)}, {_num(value[1], fmt)}]"
