"""Running days of the loop as real Dagster runs in the home's instance (in-process executor)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from lifecycle_assets import worktime
from lifecycle_assets.defs.automation.daily import (
    BENTO,
    INGEST,
    LABELS,
    SHADOW,
    TRAINING,
    shadow_due,
)
from lifecycle_assets.defs.automation.sensors import label_refresh_days
from lifecycle_assets.defs.registry.jobs import materialization_reporter
from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.instance import check_postgres, postgres_url_of
from lifecycle_assets.registry.queries import SHADOW_REPORT
from lifecycle_assets.registry.registry import bento_model_tag, served_ledger
from lifecycle_assets.serving.bento import bento_built, bento_tag
from lifecycle_assets.storage import AssetStore

# The `stage_seconds` keys `run_day` writes, one per stage of the day.
LOOP_STAGES = ("ingest", "late_labels", "training", "shadow")


class RunFailed(LifecycleError, RuntimeError):
    """A Dagster run of the loop failed (not a routine FAIL decision: that run succeeds)."""


@dataclass
class RunOutcome:
    run_id: str
    assets: list[str]
    partition: str
    seconds: float
    step_seconds: float


@dataclass
class DayOutcome:
    day: dt.date
    runs: list[RunOutcome] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    decision: dict[str, Any] | None = None
    shadow: dict[str, Any] | None = None  # the day's shadow decision, if its gate decided
    # The real work inside the day's runs, by kind (`worktime`): what the stages would cost
    # with no orchestration, versioning or storage around them.
    work_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def loop_seconds(self) -> float:
        """The day's own stages (`run_day`: ingest, label refresh, training, shadow gate), not
        what a driver adds to `stage_seconds` (the demo's Bento build)."""
        return sum(self.stage_seconds.get(stage, 0.0) for stage in LOOP_STAGES)

    @property
    def dagster_seconds(self) -> float:
        """Run time spent outside the steps' own work: orchestration overhead."""
        return sum(max(r.seconds - r.step_seconds, 0.0) for r in self.runs)


_instances: dict[str, dg.DagsterInstance] = {}


def instance_for(home: LifecycleHome) -> dg.DagsterInstance:
    key = str(home.dagster_home)
    if key not in _instances:
        home.activate()
        postgres = postgres_url_of(home.dagster_home)
        if postgres is not None:
            check_postgres(postgres)  # one line naming the URL, not a retrying traceback
        _instances[key] = dg.DagsterInstance.from_config(str(home.dagster_home))
    return _instances[key]


def runless_report(home: LifecycleHome) -> Callable[[str, str, dict[str, Any]], None]:
    """Reports a change made outside a run (a CLI release or rollback) as a runless
    materialisation in the home's instance, so the UI's lineage stays true."""
    return materialization_reporter(instance_for(home).report_runless_asset_event)


def materialize(home: LifecycleHome, assets: list[str], partition: str) -> RunOutcome:
    """One run of the loop's job for the selected assets of one partition."""
    from lifecycle_assets.definitions import defs  # deferred: keeps CLI start-up light

    home.activate()
    instance = instance_for(home)
    job = defs.resolve_job_def("lifecycle_loop")
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        partition_key=partition,
        asset_selection=[dg.AssetKey(a) for a in assets],
        raise_on_error=False,
        # Nothing of the run on the console: a failed step's error and stack trace stay in
        # the run's event log (`lifecycle ui`), and the caller gets them in one line
        # (RunFailed); the loop's alerts are logged on their own (defs/resources/alerts.py).
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        tags={"lifecycle/stage": ",".join(assets)},
    )
    seconds = time.perf_counter() - started
    if not result.success:
        failures = [
            f"{ev.step_key}: {_root_cause(ev.event_specific_data.error)}"  # type: ignore[union-attr]
            for ev in result.all_events
            if ev.is_step_failure and ev.event_specific_data is not None
        ]
        raise RunFailed(
            f"run {result.run_id} for {partition} ({', '.join(assets)}) failed: "
            + ("; ".join(failures) or "see `lifecycle ui` for the run's logs")
        )
    stats = instance.get_run_step_stats(result.run_id)
    step_seconds = sum((s.end_time or 0) - (s.start_time or 0) for s in stats)
    return RunOutcome(result.run_id, assets, partition, seconds, step_seconds)


def _ours() -> set[str]:
    """The class names of the project's errors, whose messages are written for the user."""
    found: set[str] = set()
    todo: list[type] = [LifecycleError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


def _root_cause(error: Any) -> str:
    """A step failure in one line: the first of the project's own errors down the chain of
    causes (its message names what failed and what to do), else the innermost error."""
    ours = _ours()
    while error is not None and error.cause is not None and error.cls_name not in ours:
        error = error.cause
    return error.message.strip().splitlines()[-1] if error is not None else "unknown error"


def run_day(
    home: LifecycleHome,
    day: dt.date,
    echo: Callable[[str], None] = lambda _: None,
    should_train: Callable[[dt.date], bool] | None = None,
) -> DayOutcome:
    """Ingest day D, recompute the past days whose labels are final or changed, then
    train/validate and run the shadow gate.

    A Dagster run materialises one partition (or one range of partitions, the same for every
    asset it selects), so the day's stages take a run per partition, in the order of their
    data: D's ingest (its labels are what matures day D - maturity), each past day's label
    refresh (the matured day enters D's train and test windows), then D's training run: the
    order the daemon's sensors keep (`defs/automation/daily.py`, `day_wait`).

    `should_train(D)`, asked after ingest and labels (so it can read the day's monitoring),
    lets a retraining policy skip the training stage; None trains every day."""
    out = DayOutcome(day)
    key = day.isoformat()
    worktime.take()  # what ran before the day is not the day's

    t0 = time.perf_counter()
    out.runs.append(materialize(home, INGEST + LABELS, key))
    out.stage_seconds["ingest"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    # The day that matured with today's labels gets its final labels before it enters the
    # train/test windows, and a matured day with a label backfill is recomputed: the rule
    # of the daemon's late-label sensor (`label_refresh_days`).
    for refresh in label_refresh_days(instance_for(home), home, day):
        out.runs.append(materialize(home, LABELS, refresh.partition))
    out.stage_seconds["late_labels"] = time.perf_counter() - t0

    # The shadow gate comes after the day's release step (shadow_report depends on
    # production_model), on a day a shadow is in flight or a crashed run left its decision
    # to finish. A shadow in flight already is still in flight after the release step (only
    # the shadow gate moves it), so its gate runs in the training run, as the daemon's
    # `daily_retraining` sensor asks; one sent to shadow by today's release step gets a run
    # of its own after it.
    trains = should_train is None or should_train(day)
    gated = trains and shadow_due(home, key)
    if not trains:
        echo(f"{key}: no training today (retraining policy)")
    else:
        t0 = time.perf_counter()
        run = materialize(home, TRAINING + SHADOW if gated else TRAINING, key)
        out.runs.append(run)
        out.stage_seconds["training"] = time.perf_counter() - t0
        out.decision = decision_for(home, run.run_id)
        echo(
            f"{key}: "
            + (
                f"decision {out.decision['decision']} ({out.decision.get('reason', '')})"
                if out.decision
                else "no challenger (collecting matured labels)"
            )
        )

    if not gated and shadow_due(home, key):
        t0 = time.perf_counter()
        run = materialize(home, SHADOW, key)
        out.runs.append(run)
        out.stage_seconds["shadow"] = time.perf_counter() - t0
        gated = True
    if gated:
        out.shadow = decision_for(home, out.runs[-1].run_id, SHADOW_REPORT)
        if out.shadow is not None:
            echo(
                f"{key}: shadow {out.shadow['challenger_version']} {out.shadow['decision']}, "
                f"{out.shadow['action']} ({out.shadow.get('reason', '')})"
            )
    out.work_seconds = worktime.take()
    return out


def build_day_bento(
    home: LifecycleHome, day: dt.date, echo: Callable[[str], None] = lambda _: None
) -> RunOutcome | None:
    """Materialise `production_bento` for day D: the Bento of the version that served after
    D's decision, built when that version has none yet (a carried-over model reuses its
    Bento). A build takes seconds to half a minute, so it is announced and timed through `echo`.
    None when no model served after day D."""
    key = day.isoformat()
    version = served_ledger(home).get(key)
    if version is None:
        return None
    building = not bento_built(home, version)
    if building:
        model = bento_model_tag(home.config().problem.name, version)
        echo(f"{key}: building Bento {bento_tag(version)} of model {model} …")
    run = materialize(home, BENTO, key)
    if building:
        echo(f"{key}: built Bento {bento_tag(version)} in {run.seconds:.0f} s")
    return run


def decision_for(
    home: LifecycleHome, run_id: str, asset: str = "validation_report"
) -> dict[str, Any] | None:
    """The decision record (`validation_report`, or `shadow_report`) materialised by this
    run, if its gate decided."""
    instance = instance_for(home)
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for rec in records:
        mat = rec.asset_materialization
        if mat is not None and mat.asset_key == dg.AssetKey(asset):
            return AssetStore.of(home).read_record(asset, mat.partition)
    return None
