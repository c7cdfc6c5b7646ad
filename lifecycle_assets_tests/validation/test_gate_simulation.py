"""benchmarks/gate_simulation.py runs against the gate as configured today: a few simulated
gate runs of each kind through the script's command line, checking the report's structure
(its rates are the benchmark's to judge, not this test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_gate_simulation_runs_on_the_example_config() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gate_simulation.py"),
            *("--rows", "1000", "--sims", "8", "--power-sims", "3", "--json"),
            *("--shadow-rows", "1000", "--shadow-sims", "6"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    # the margin the gate applies to ROC-AUC when the config leaves it unset
    assert result["config"]["margin"] == 0.01
    worse = result["worse_by_margin"]
    assert worse["auc_challenger"] == worse["auc_production"] - 0.01
    assert worse["sims"] == 8 and 0.0 <= worse["promotion_rate"] <= 1.0
    assert worse["mean_resamples"] >= result["config"]["bootstrap_samples"]
    assert 0.0 <= worse["extended_share"] <= 1.0
    shifted = result["worse_by_margin_label_shift_calibration_guard"]
    assert 0.0 <= shifted["calibration_guard_blocked"] <= 1.0
    assert [e["rows"] for e in result["equal"]] == [1000]
    live = result["shadow"]["worse_live"]
    assert (live["auc_offline"], live["auc_live"]) == (0.9, 0.9 - 0.01)
    assert live["sims"] == 6 and live["promotion_rate"] <= live["offline_pass_rate"]
    assert "meets_bound" in live and result["shadow"]["equal"]["sims"] == 3
