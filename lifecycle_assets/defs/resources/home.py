"""The lifecycle home as a resource: found at run time, never at import time."""

import datetime as dt

import dagster as dg

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.home import LifecycleHome, now, resolve_home, today


class LifecycleHomeResource(dg.ConfigurableResource):
    """Where runtime state lives. `workdir` unset: $LIFECYCLE_HOME, else the project's home."""

    workdir: str | None = None

    def get(self) -> LifecycleHome:
        home = LifecycleHome(resolve_home(self.workdir)).require()
        home.activate()
        return home

    def config(self) -> LifecycleConfig:
        return self.get().config()

    def today(self) -> dt.date:
        return today(self.get())

    def now(self) -> dt.datetime:
        return now(self.get())
