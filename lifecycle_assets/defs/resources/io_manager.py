"""Asset values on disk without pickle: frames as Parquet, records as JSON, models as a
reference to their registered version (the registry's model store holds the safetensors +
JSON once), one entry per asset partition, laid out by `storage.AssetStore`."""

from typing import Any

import dagster as dg
import polars as pl

from lifecycle_assets.defs.partitions import WINDOW_INPUT
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.registry.registry import Registry, load_reference
from lifecycle_assets.storage import UNPARTITIONED, AssetStore, ModelReference
from lifecycle_assets.training.artifact import ModelArtifact


class LifecycleIOManager(dg.ConfigurableIOManager):
    home: LifecycleHomeResource

    def _store(self) -> AssetStore:
        return AssetStore.of(self.home.get())

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        partition = context.asset_partition_key if context.has_asset_partitions else None
        if isinstance(obj, ModelArtifact):
            # Registered already (`candidate_model` registers it, `production_model` serves a
            # registered version): the partition keeps a reference, the files stay in the
            # registry's model store.
            home = self.home.get()
            obj = Registry(home, home.config().problem.name).reference(str(obj.version))
        self._store().write(context.asset_key.to_user_string(), partition, obj)

    def _load_one(self, store: AssetStore, asset: str, partition: str | None) -> Any:
        value = store.read(
            asset, partition, factories=lambda: self.home.get().config().training.model_factories
        )
        if isinstance(value, ModelReference):
            where = f"{asset} {partition or UNPARTITIONED}"
            return load_reference(self.home.get(), value, where)
        return value

    def load_input(self, context: dg.InputContext) -> Any:
        store, asset = self._store(), context.asset_key.to_user_string()
        if not context.has_asset_partitions:
            value = self._load_one(store, asset, None)
            if value is None:
                raise FileNotFoundError(f"{asset} has not been materialised")
            return value
        keys = context.asset_partition_keys
        if len(keys) == 1 and not context.definition_metadata.get(WINDOW_INPUT):
            value = self._load_one(store, asset, keys[0])
            if value is None:
                raise FileNotFoundError(f"{asset} partition {keys[0]} has not been materialised")
            return value
        # A window of upstream partitions: the ones not materialised (before the data
        # starts, or not yet arrived) contribute no rows.
        if context.definition_metadata.get(WINDOW_INPUT) == "records":
            loaded = (self._load_one(store, asset, k) for k in sorted(keys))
            return [record for record in loaded if record is not None]
        frames = [f for f in (self._load_one(store, asset, k) for k in keys) if f is not None]
        if not frames:
            return store.empty_frame(asset)
        return pl.concat(frames, how="vertical_relaxed")
