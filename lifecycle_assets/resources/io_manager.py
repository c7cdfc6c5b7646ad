"""Asset values on disk without pickle: frames as Parquet, models as safetensors + JSON,
records as JSON. One file (or directory) per asset partition under `<home>/assets/`."""

import json
import os
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from lifecycle_assets.files import replacing, write_atomic
from lifecycle_assets.resources.home import LifecycleHomeResource
from lifecycle_assets.training.artifact import MANIFEST, ModelArtifact, load_artifact, save_artifact


class LifecycleIOManager(dg.ConfigurableIOManager):
    home: LifecycleHomeResource

    def _base(self, key: dg.AssetKey) -> Path:
        return self.home.get().assets.joinpath(*key.path)

    def _path(self, key: dg.AssetKey, partition: str | None) -> Path:
        return self._base(key) / (partition or "__unpartitioned__")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        partition = context.asset_partition_key if context.has_asset_partitions else None
        target = self._path(context.asset_key, partition)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, pl.DataFrame):
            with replacing(target.with_suffix(".parquet")) as tmp:
                obj.write_parquet(tmp)
        elif isinstance(obj, ModelArtifact):
            tmp_dir = target.with_name(target.name + ".tmp")
            shutil.rmtree(tmp_dir, ignore_errors=True)
            save_artifact(obj, tmp_dir)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp_dir, target)
        elif isinstance(obj, dict):
            text = json.dumps(obj, indent=2, sort_keys=True, default=str)
            write_atomic(target.with_suffix(".json"), text)
        else:
            raise TypeError(f"cannot store {type(obj).__name__} for {context.asset_key}")

    def _load_one(self, key: dg.AssetKey, partition: str | None) -> Any:
        target = self._path(key, partition)
        if target.with_suffix(".parquet").is_file():
            return pl.read_parquet(target.with_suffix(".parquet"))
        if (target / MANIFEST).is_file():
            factories = self.home.get().config().training.model_factories
            return load_artifact(target, factories=factories)
        if target.with_suffix(".json").is_file():
            return json.loads(target.with_suffix(".json").read_text())
        return None

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        if not context.has_asset_partitions:
            value = self._load_one(key, None)
            if value is None:
                raise FileNotFoundError(f"{key.to_user_string()} has not been materialised")
            return value
        keys = context.asset_partition_keys
        if len(keys) == 1:
            value = self._load_one(key, keys[0])
            if value is None:
                raise FileNotFoundError(
                    f"{key.to_user_string()} partition {keys[0]} has not been materialised"
                )
            return value
        # A window of upstream partitions: the ones not materialised (before the data
        # starts, or not yet arrived) contribute no rows.
        frames = [f for f in (self._load_one(key, k) for k in keys) if f is not None]
        if not frames:
            return self._empty_frame(key)
        return pl.concat(frames, how="vertical_relaxed")

    def _empty_frame(self, key: dg.AssetKey) -> pl.DataFrame:
        # Take the schema from any materialised partition so downstream code sees the columns.
        base = self._base(key)
        for sample in sorted(base.glob("*.parquet")) if base.is_dir() else []:
            return pl.read_parquet(sample).clear()
        return pl.DataFrame()
