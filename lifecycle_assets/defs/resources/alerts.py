"""Alerts: every alert lands in `<home>/alerts.jsonl` and the log; with `alerts.webhook_url`
set it is also POSTed there as JSON, retried with exponential backoff.

The file is written first, so an alert is never lost to a receiver that is down: a failed
delivery is logged (and recorded in the file) and never fails the run that raised the alert.
Kinds: `gate` (a routine FAIL of the validation gate) and `broken_run` (the pipeline itself
failed; sent by the monitoring sensor), plus whatever other stages raise.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import tenacity

from lifecycle_assets.config import AlertsConfig
from lifecycle_assets.defs.resources.home import LifecycleHomeResource

log = logging.getLogger("lifecycle.alerts")

# Worth another try: the receiver is overloaded, restarting or timed out.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class AlertSink:
    """Plain alert delivery (file + log + optional webhook), usable outside Dagster."""

    def __init__(
        self,
        alerts_path: Path,
        config: AlertsConfig,
        clock: Callable[[], dt.datetime],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.alerts_path = Path(alerts_path)
        self.config = config
        self.clock = clock
        self.sleep = sleep

    def send(self, kind: str, title: str, details: dict[str, Any]) -> dict[str, Any]:
        alert = {"kind": kind, "title": title, "time": self.clock().isoformat(), **details}
        self._append(alert)
        log.warning("ALERT [%s] %s", kind, title)
        if self.config.webhook_url:
            delivery = self.post(alert)
            alert = {**alert, "webhook": delivery}
            if not delivery["delivered"]:
                log.error(
                    "alert webhook %s failed after %d attempt(s): %s (the alert is in %s)",
                    self.config.webhook_url,
                    delivery["attempts"],
                    delivery["error"],
                    self.alerts_path,
                )
                self._append(
                    {
                        "kind": "alert_delivery_failed",
                        "time": self.clock().isoformat(),
                        "alert_title": title,
                        **delivery,
                    }
                )
        return alert

    def post(self, alert: dict[str, Any]) -> dict[str, Any]:
        """POST the alert as JSON; retry transport errors, timeouts and 5xx/429 with
        exponential backoff (`webhook_backoff_s`, doubling), `webhook_retries` times."""
        url = str(self.config.webhook_url)
        body = json.dumps(alert, sort_keys=True, default=str)

        def attempt() -> tuple[bool, str, int | None]:
            """(delivered, the error, the HTTP status) of one POST."""
            try:
                resp = httpx.post(
                    url,
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=self.config.webhook_timeout_s,
                )
            except httpx.HTTPError as err:
                return (
                    False,
                    f"{type(err).__name__}: {err}" if str(err) else type(err).__name__,
                    None,
                )
            if resp.is_success:
                return True, "", resp.status_code
            return False, f"HTTP {resp.status_code}", resp.status_code

        def retryable(outcome: tuple[bool, str, int | None]) -> bool:
            delivered, _, status = outcome
            return not delivered and (status is None or status in RETRYABLE_STATUS)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(1 + self.config.webhook_retries),
            wait=tenacity.wait_exponential(multiplier=self.config.webhook_backoff_s, exp_base=2),
            retry=tenacity.retry_if_result(retryable),
            sleep=self.sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        delivered, error, status = retrying(attempt)
        attempts = retrying.statistics["attempt_number"]
        if delivered:
            return {"delivered": True, "attempts": attempts, "status": status}
        return {"delivered": False, "attempts": attempts, "error": error}

    def _append(self, record: dict[str, Any]) -> None:
        self.alerts_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.alerts_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")


def read_alerts(alerts_path: Path) -> list[dict[str, Any]]:
    if not alerts_path.is_file():
        return []
    return [json.loads(line) for line in alerts_path.read_text().splitlines() if line.strip()]


class AlertSinkResource(dg.ConfigurableResource):
    """The alert sink of the home; `webhook_url` here overrides `alerts.webhook_url`."""

    home: LifecycleHomeResource
    webhook_url: str | None = None

    def sink(self) -> AlertSink:
        home = self.home.get()
        config = home.config().alerts
        if self.webhook_url:
            config = config.model_copy(update={"webhook_url": self.webhook_url})
        return AlertSink(home.alerts_path, config, clock=self.home.now)

    def send(self, kind: str, title: str, details: dict[str, Any]) -> dict[str, Any]:
        """`kind` is `gate` (a routine FAIL) or `broken_run` (the pipeline itself failed)."""
        return self.sink().send(kind, title, details)
