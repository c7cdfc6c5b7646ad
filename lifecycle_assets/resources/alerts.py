"""Alerts: a file of JSON lines in the home plus the run log (a webhook sink comes later)."""

import json
import logging
from typing import Any

import dagster as dg

from lifecycle_assets.resources.home import LifecycleHomeResource

log = logging.getLogger("lifecycle.alerts")


class AlertSinkResource(dg.ConfigurableResource):
    home: LifecycleHomeResource

    def send(self, kind: str, title: str, details: dict[str, Any]) -> dict[str, Any]:
        """`kind` is `gate` (a routine FAIL) or `broken_run` (the pipeline itself failed)."""
        alert = {"kind": kind, "title": title, "time": self.home.now().isoformat(), **details}
        home = self.home.get()
        with open(home.alerts_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(alert, sort_keys=True, default=str) + "\n")
        log.warning("ALERT [%s] %s", kind, title)
        return alert
