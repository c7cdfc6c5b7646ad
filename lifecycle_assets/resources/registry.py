"""The model registry as a resource."""

import dagster as dg

from lifecycle_assets.registry.registry import Registry
from lifecycle_assets.resources.home import LifecycleHomeResource


class RegistryResource(dg.ConfigurableResource):
    home: LifecycleHomeResource

    def get(self) -> Registry:
        home = self.home.get()
        return Registry(home, home.config().problem.name)
