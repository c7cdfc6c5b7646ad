"""`benchmarks/quality.py` end to end at its small size: one binary scenario (concept drift)
replayed through the loop with the `periodic` policy and backtested with the scikit-learn
reference; the result JSON is checked for its structure and finite qualities (no timing
assertions; the figures are in docs/quality.md)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_small_concept_drift_run(tmp_path: Path) -> None:
    out = tmp_path / "quality.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "quality.py"),
            "--size",
            "small",
            "--scenarios",
            "concept",
            "--policy",
            "periodic",
            "--quiet",
            "--workdir",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| gbm-retrained |" in proc.stdout and "# bars (small" in proc.stdout

    result = json.loads(out.read_text())
    assert result["size"] == "small" and result["policies"] == ["periodic"]
    res = result["scenarios"]["concept"]
    assert res["task"] == "binary" and res["metric"] == "roc_auc" and res["higher_is_better"]
    assert res["rows"] >= 3000 and res["periods"] >= 6 and res["periods_compared"] >= 2
    assert set(res["results"]) == {"periodic", "gbm-static", "gbm-retrained"}
    for name, row in res["results"].items():
        for key in ("mean", "last_third"):
            assert row[key] is not None and math.isfinite(row[key]), (name, key, row)
            assert 0.0 <= row[key] <= 1.0, (name, key, row)
        assert len(row["per_period"]) == res["periods_compared"]
        assert row["retrains"] >= 1 and row["train_seconds_per_period"] >= 0
    assert res["results"]["periodic"]["rejections"] >= 0
    assert res["results"]["gbm-retrained"]["rejections"] is None
    # one policy: only the best-policy-vs-reference bar applies
    verdicts = [b["verdict"] for b in res["bars"]]
    assert len(verdicts) == 1 and verdicts[0] in {"PASS", "MISS"}
    assert isinstance(result["missed"], list)
