"""The offline lookup store as a resource: SQLite in the home by default; a Redis-backed
`LookupStore` would plug in here behind the same interface (get / publish / info)."""

import dagster as dg

from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.serving.lookup import LookupStore, SqliteLookupStore


class LookupStoreResource(dg.ConfigurableResource):
    """`directory` unset: `<home>/lookup`, where the prediction service reads it."""

    home: LifecycleHomeResource
    directory: str | None = None

    def get(self) -> LookupStore:
        return SqliteLookupStore(self.directory or self.home.get().lookup)
