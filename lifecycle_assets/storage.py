"""Where the loop's asset values are stored: the one owner of the layout under `<home>/assets/`.

One entry per asset partition (`<asset>/<partition>`, `__unpartitioned__` without one), by
kind of value: a frame is `<partition>.parquet`, a record (dict) `<partition>.json`, and a
model a `ModelReference` in `<partition>.json`: the registered version it is, whose files live
once, in the registry's model store (the IO manager resolves it there). A model artifact
stored whole, the directory `<partition>/` (safetensors + manifest), is what homes held before
references and is still read. No pickle. Bad rows an asset quarantined are kept beside the
values, under `quarantine/<asset>/<partition>.parquet`.

The IO manager (`defs/resources/io_manager.py`) stores and loads through this module; everything
else that reads a stored value — the late-label sensor, the daily runner, decision records,
retention, replay — asks it for the path or the value instead of spelling the layout. Moving
the values elsewhere means changing this module alone.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl

from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.files import replacing, write_atomic

if TYPE_CHECKING:
    from lifecycle_assets.home import LifecycleHome

UNPARTITIONED = "__unpartitioned__"


class StoredValueError(LifecycleError, ValueError):
    """A stored value that is not what it says it is (a model reference missing a field)."""


@dataclass(frozen=True)
class ModelReference:
    """A model asset's value: the registered version it is (`model:version`) and the sha256
    of its weights file, which the registry's model store holds; not a copy of its files."""

    model: str
    version: str
    weights_sha256: str

    KIND: ClassVar[str] = "model_reference"
    FIELDS: ClassVar[tuple[str, ...]] = ("model", "version", "weights_sha256")

    def to_record(self) -> dict[str, str]:
        return {"kind": self.KIND, **{f: getattr(self, f) for f in self.FIELDS}}

    @classmethod
    def from_record(cls, record: Any, where: str) -> ModelReference | None:
        """The reference a stored record holds; None when it is no reference (any other
        record). One that says it is a reference but lacks a field is refused."""
        if not isinstance(record, dict) or record.get("kind") != cls.KIND:
            return None
        for name in cls.FIELDS:
            if not isinstance(record.get(name), str) or not record[name]:
                raise StoredValueError(f"{where}: a model reference without its {name}")
        return cls(*(record[f] for f in cls.FIELDS))


class AssetStore:
    """The stored values under `root` (the home's `assets/`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def of(cls, home: LifecycleHome) -> AssetStore:
        return cls(home.assets)

    # --- the layout -----------------------------------------------------------------------

    def folder(self, asset: str) -> Path:
        """The folder of an asset's partitions (`asset` may be a multi-part key `a/b`)."""
        return self.root.joinpath(*asset.split("/"))

    def _entry(self, asset: str, partition: str | None) -> Path:
        return self.folder(asset) / (partition or UNPARTITIONED)

    def frame_path(self, asset: str, partition: str | None) -> Path:
        return self._entry(asset, partition).with_suffix(".parquet")

    def record_path(self, asset: str, partition: str | None) -> Path:
        return self._entry(asset, partition).with_suffix(".json")

    def model_path(self, asset: str, partition: str | None) -> Path:
        """Where a model artifact stored whole lies (the layout before `ModelReference`)."""
        return self._entry(asset, partition)

    def quarantine_path(self, asset: str, partition: str) -> Path:
        return self.root / "quarantine" / asset / f"{partition}.parquet"

    # --- writing --------------------------------------------------------------------------

    def write(self, asset: str, partition: str | None, value: Any) -> None:
        """Store a frame, a record, a model reference or a model artifact (whole) as the
        partition's value; a reader sees the previous value or this one, never part of
        either. A model's reference and its whole artifact replace each other: the new one is
        in place before the old one is removed, and `read` takes the reference first."""
        # (the artifact module brings torch: imported only where a model is stored or loaded)
        from lifecycle_assets.training.artifact import ModelArtifact, save_artifact

        if isinstance(value, pl.DataFrame):
            with replacing(self.frame_path(asset, partition)) as tmp:
                value.write_parquet(tmp)
        elif isinstance(value, dict):
            self._write_record(asset, partition, value)
        elif isinstance(value, ModelReference):
            self._write_record(asset, partition, value.to_record())
            shutil.rmtree(self.model_path(asset, partition), ignore_errors=True)
        elif isinstance(value, ModelArtifact):
            target = self.model_path(asset, partition)
            staging = target.with_name(target.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            save_artifact(value, staging)
            shutil.rmtree(target, ignore_errors=True)
            staging.replace(target)
            self.record_path(asset, partition).unlink(missing_ok=True)
        else:
            raise TypeError(f"cannot store {type(value).__name__} for {asset}")

    def _write_record(self, asset: str, partition: str | None, record: dict[str, Any]) -> None:
        text = json.dumps(record, indent=2, sort_keys=True, default=str)
        write_atomic(self.record_path(asset, partition), text)

    # --- reading --------------------------------------------------------------------------

    def has_frame(self, asset: str, partition: str) -> bool:
        return self.frame_path(asset, partition).is_file()

    def read(
        self,
        asset: str,
        partition: str | None,
        factories: Callable[[], dict[str, str]] | None = None,
    ) -> Any:
        """The partition's value (a frame, a model reference, a model artifact stored whole
        or a record), None when it has not been stored. A reference is returned as it is:
        the registry resolves it (`registry.load_reference`). `factories`: gives the config's
        model factories, to load a user family; asked only when the value is an artifact."""
        frame = self.frame_path(asset, partition)
        if frame.is_file():
            return pl.read_parquet(frame)
        record = self.read_record(asset, partition)
        where = f"{asset} {partition or UNPARTITIONED}"
        reference = ModelReference.from_record(record, where)
        if reference is not None:
            return reference
        model = self.model_path(asset, partition)
        if model.is_dir():
            from lifecycle_assets.training.artifact import MANIFEST, load_artifact

            if (model / MANIFEST).is_file():
                return load_artifact(model, factories=factories() if factories else None)
        return record

    def read_record(self, asset: str, partition: str | None) -> dict[str, Any] | None:
        """A record value (JSON), None when there is none. A torn or foreign file raises."""
        path = self.record_path(asset, partition)
        return json.loads(path.read_text()) if path.is_file() else None

    def record_partitions(self, asset: str) -> list[str]:
        """The partitions with a record value, oldest first."""
        folder = self.folder(asset)
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def first_day(self) -> str | None:
        """The earliest day (ISO) any asset holds a value for, None when none does."""
        days = []
        for entry in self.root.glob("*/*") if self.root.is_dir() else []:
            try:
                days.append(dt.date.fromisoformat(entry.name.split(".", 1)[0]))
            except ValueError:  # not a day's value (an unpartitioned one, a staging name)
                continue
        return min(days).isoformat() if days else None

    def empty_frame(self, asset: str) -> pl.DataFrame:
        """No rows, with the columns of any stored partition (none stored: no columns)."""
        folder = self.folder(asset)
        for sample in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
            return pl.read_parquet(sample).clear()
        return pl.DataFrame()
