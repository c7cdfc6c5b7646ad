"""The model registry as a resource."""

import dagster as dg

from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.registry.registry import Registry


class RegistryResource(dg.ConfigurableResource):
    home: LifecycleHomeResource

    def get(self) -> Registry:
        home = self.home.get()
        return Registry(home, home.config().problem.name)
