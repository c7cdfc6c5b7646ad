"""The new-log-partitions sensor, evaluated with Dagster's test context on a real home."""

from __future__ import annotations

import dagster as dg

from lifecycle_assets.automation.loop import instance_for
from lifecycle_assets.defs.automation.sensors import days_to_ingest, new_log_partitions
from lifecycle_assets.defs.resources.home import LifecycleHomeResource
from lifecycle_assets.home import set_simulated_today
from lifecycle_assets.records import LogWriter
from lifecycle_assets.simulator.fraud import FraudSimulator


def test_days_to_ingest_only_closed_and_changed_days() -> None:
    import datetime as dt

    fps = {"2026-06-01": "a", "2026-06-02": "b", "2026-06-03": "c"}
    today = dt.date(2026, 6, 3)
    assert days_to_ingest(fps, {}, today) == ["2026-06-01", "2026-06-02"]
    assert days_to_ingest(fps, {"2026-06-01": "a", "2026-06-02": "b"}, today) == []
    assert days_to_ingest(fps, {"2026-06-01": "old", "2026-06-02": "b"}, today) == ["2026-06-01"]


def test_sensor_requests_each_closed_day_once_and_again_when_its_logs_change(make_home) -> None:
    home = make_home()
    sim = FraudSimulator(home.config())
    writer = LogWriter(home.logs, "simulator")
    for index in range(3):
        sim.write_day(writer, index, None)
    writer.close()
    set_simulated_today(home, sim.date(2))  # day 2 is still open
    resources = {"home": LifecycleHomeResource(workdir=str(home.root))}
    instance = instance_for(home)

    def evaluate(cursor: str | None):
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources
        ) as context:
            return new_log_partitions(context), context

    result, _ = evaluate(None)
    assert isinstance(result, dg.SensorResult)
    days = [r.partition_key for r in result.run_requests or []]
    assert days == [sim.date(0).isoformat(), sim.date(1).isoformat()]
    cursor = result.cursor
    again, _ = evaluate(cursor)
    assert isinstance(again, dg.SkipReason)
    # A late segment for day 1 (a replayed label feed, a straggling worker): day 1 again only.
    late = LogWriter(home.logs, "late-writer")
    late.write_ground_truth(sim.chargebacks_arriving(1)[:1])
    late.close()
    changed, _ = evaluate(cursor)
    assert isinstance(changed, dg.SensorResult)
    assert [r.partition_key for r in changed.run_requests or []] == [sim.date(1).isoformat()]
