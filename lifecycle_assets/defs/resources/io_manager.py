"""Asset values on disk without pickle: frames as Parquet, models as safetensors + JSON,
records as JSON, one entry per asset partition, laid out by `storage.AssetStore`."""

from typing import Any

import dagster as dg
import polars as pl

from lifecycle_assets.defs.partitions import WINDOW_INPUT
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.storage import AssetStore


class LifecycleIOManager(dg.ConfigurableIOManager):
    home: LifecycleHomeResource

    def _store(self) -> AssetStore:
        return AssetStore.of(self.home.get())

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        partition = context.asset_partition_key if context.has_asset_partitions else None
        self._store().write(context.asset_key.to_user_string(), partition, obj)

    def _load_one(self, store: AssetStore, asset: str, partition: str | None) -> Any:
        return store.read(
            asset, partition, factories=lambda: self.home.get().config().training.model_factories
        )

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
        frames = [f for f in (self._load_one(store, asset, k) for k in keys) if f is not None]
        if not frames:
            return store.empty_frame(asset)
        return pl.concat(frames, how="vertical_relaxed")
