"""The repo's DVC pipeline files: `dvc.yaml` (stages, their outputs and params) and
`params.yaml` (per-stage params such as the day), read and written as plain YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lifecycle_assets.versioning.errors import VersioningError, one_line

DVC_YAML = "dvc.yaml"
DVC_LOCK = "dvc.lock"
PARAMS_YAML = "params.yaml"


def stage_outs(dvc_yaml: dict[str, Any]) -> dict[str, list[tuple[str, bool]]]:
    """{stage: [(out path, cached?)]} for outs, metrics and plots declared in a dvc.yaml."""
    result: dict[str, list[tuple[str, bool]]] = {}
    for name, stage in (dvc_yaml.get("stages") or {}).items():
        outs: list[tuple[str, bool]] = []
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key) or []:
                if isinstance(entry, str):
                    outs.append((entry, key == "outs"))
                else:
                    for out_path, opts in entry.items():
                        default = key == "outs"
                        outs.append((out_path, bool((opts or {}).get("cache", default))))
        result[name] = outs
    return result


def stage_param_keys(dvc_yaml: dict[str, Any]) -> list[str]:
    """Dotted keys of params.yaml that stages read (`params: [train_split.day]`)."""
    keys: list[str] = []
    for stage in (dvc_yaml.get("stages") or {}).values():
        for entry in stage.get("params") or []:
            if isinstance(entry, str):
                keys.append(entry)
            elif isinstance(entry, dict):
                for file, names in entry.items():
                    if file == PARAMS_YAML:
                        keys.extend(names or [])
    return keys


def load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) if path.exists() else None
    except yaml.YAMLError as exc:
        raise VersioningError(
            f"{path} is not valid YAML ({one_line(exc)}): fix or delete it"
        ) from exc


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def yaml_value(value: Any) -> Any:
    # Dates become ISO strings so that params.yaml holds "2026-06-10", never a YAML date.
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise VersioningError(f"param value {value!r} is not a string, number, bool, date or None")
