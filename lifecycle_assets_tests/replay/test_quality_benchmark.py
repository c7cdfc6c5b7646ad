"""`benchmarks/quality.py` end to end at its small size: one binary scenario (concept drift)
replayed through the loop with the `periodic` policy and backtested with the scikit-learn
reference; the result JSON is checked for its structure and finite qualities (no timing
assertions; the figures are in docs/quality.md), and a rerun with the same workdir skips the
finished scenario. Fast tests beside it: the public scenarios' mapping out of NannyML's wheel
(a stand-in wheel of the same layout: nothing is downloaded), and the per-family rows and
bars."""

from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lifecycle_assets.home import LifecycleHome
from lifecycle_assets_tests.conftest import benchmark_module

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _run(tmp_path: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(BENCH / "quality.py"),
            "--size",
            "small",
            "--scenarios",
            "concept",
            "--policy",
            "periodic",
            "--family",
            "mlp",
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


@pytest.mark.slow
def test_small_concept_drift_run(tmp_path: Path) -> None:
    out = tmp_path / "quality.json"
    proc = _run(tmp_path, out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| gbm-retrained |" in proc.stdout and "# bars (small" in proc.stdout

    result = json.loads(out.read_text())
    assert result["size"] == "small" and result["policies"] == ["periodic"]
    assert result["families"] == ["mlp"] and result["complete"] is True
    res = result["scenarios"]["concept"]
    assert res["task"] == "binary" and res["metric"] == "roc_auc" and res["higher_is_better"]
    assert res["rows"] >= 3000 and res["periods"] >= 6 and res["periods_compared"] >= 2
    # one family: the rows keep their plain names
    assert set(res["results"]) == {"periodic", "gbm-static", "gbm-retrained"}
    assert res["results"]["periodic"]["family"] == "mlp"
    for name, row in res["results"].items():
        for key in ("mean", "last_third"):
            assert row[key] is not None and math.isfinite(row[key]), (name, key, row)
            assert 0.0 <= row[key] <= 1.0, (name, key, row)
        assert len(row["per_period"]) == res["periods_compared"]
        assert row["retrains"] >= 1 and row["train_seconds_per_period"] >= 0
    assert res["results"]["periodic"]["rejections"] >= 0
    assert res["results"]["gbm-retrained"]["rejections"] is None
    assert isinstance(res["results"]["periodic"]["alerts_from_better"], list)
    # one policy: the best-policy-vs-reference and the alert bars apply; the label-free
    # estimate is shown on concept, not judged there
    verdicts = {b["bar"]: b["verdict"] for b in res["bars"]}
    shown = (
        "estimate: median |est - realised| <= 0.01, interval covers >= 80% (periodic) "
        "(info: not judged here)"
    )
    assert set(verdicts) == {
        "best policy ROC-AUC >= retrained GBM - 0.002",
        "no gate alert from a challenger better on the gate metric",
        shown,
    }
    assert verdicts.pop(shown) == "n/a" and set(verdicts.values()) <= {"PASS", "MISS"}
    assert isinstance(result["missed"], list)
    work = tmp_path / "work" / "concept"
    assert (work / "family-mlp.json").is_file() and (work / "result.json").is_file()

    # The same workdir again: the finished scenario is read back, not replayed.
    again = tmp_path / "again.json"
    proc = _run(tmp_path, again)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reread = json.loads(again.read_text())["scenarios"]["concept"]
    assert reread.pop("reused") is True and "reused" not in res  # its seconds are not this run's
    assert reread == res

    # benchmarks/challenger_blend.py on the replay kept there: the gate decides again from the
    # stored models (references through the registry), and the challenger as fitted gets
    # every recorded decision back.
    blend = benchmark_module("challenger_blend")
    measured = blend.scenario(LifecycleHome(work / "replay-mlp" / "periodic"))
    assert measured["challengers"] >= 1
    assert measured["recorded_decisions_reproduced"] == measured["challengers"]
    assert set(measured["fails"]) == set(blend.KINDS)
    assert set(measured["mean"]["gate"]) == {"production", *blend.KINDS}

    # benchmarks/retrain_oracle.py on the same home: every candidate scored on every later
    # day; promoting them all is a schedule like any other, never is the first model alone.
    oracle = benchmark_module("retrain_oracle").scenario(
        LifecycleHome(work / "replay-mlp" / "periodic")
    )
    assert oracle["judged_days"] >= 2 and "triggered" not in oracle
    assert 0.0 <= oracle["never"] <= 1.0 and 0.0 <= oracle["always"] <= 1.0
    assert all(len(b["days"]) == int(k) for k, b in oracle["best"].items())


def _csv(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_csv(buf)
    return buf.getvalue()


def _stand_in_wheel(path: Path) -> None:
    """synthetic_sample_* files laid out and shaped as in nannyml 0.13.1's wheel: 2019-01 to
    2019-09, 700 rows a month, the analysis labels in a separate file keyed by `id`."""
    rng = np.random.default_rng(0)
    times = pl.datetime_range(
        pl.datetime(2019, 1, 1), pl.datetime(2019, 9, 30), interval="1h", eager=True
    )
    keep = np.sort(rng.choice(len(times), 9 * 700, replace=False))
    n = len(keep)
    frame = pl.DataFrame(
        {
            "id": np.arange(n),
            "distance_from_office": rng.random(n) * 10,
            "salary_range": rng.choice(["0 - 20K €", "20K - 40K €"], n),
            "gas_price_per_litre": rng.random(n) + 1,
            "public_transportation_cost": rng.random(n) * 5,
            "wfh_prev_workday": rng.random(n) < 0.5,
            "workday": rng.choice(["Monday", "Friday"], n),
            "tenure": rng.random(n) * 8,
            "work_home_actual": rng.integers(0, 2, n),
            "timestamp": times.gather(keep).dt.strftime("%Y-%m-%d %H:%M:%S"),
            "y_pred_proba": rng.random(n),
            "period": ["reference"] * n,
            "y_pred": rng.integers(0, 2, n),
        }
    )
    cut = n // 2
    reference, analysis = frame[:cut], frame[cut:].with_columns(period=pl.lit("analysis"))
    data = "nannyml/datasets/data/synthetic_sample"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{data}_reference.csv", _csv(reference))
        z.writestr(f"{data}_analysis.csv", _csv(analysis.drop("work_home_actual")))
        z.writestr(f"{data}_analysis_gt.csv", _csv(analysis.select("id", "work_home_actual")))


def test_public_mapping_from_the_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    public = benchmark_module("public_data")
    wheel = tmp_path / public.WHEEL
    _stand_in_wheel(wheel)
    monkeypatch.setattr(public, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    spec = public.PUBLIC["public-wfh"]
    full = public.load("public-wfh", "full", tmp_path, echo=lambda _: None)
    # the model's outputs and NannyML's split are not features; nothing else is lost
    assert full.columns == ["id", "timestamp", *spec.numeric, *spec.categorical, spec.label]
    assert full.height == 9 * 700 and full[spec.label].null_count() == 0
    assert full.schema["timestamp"] == pl.Datetime("us", "UTC") and full["timestamp"].is_sorted()
    assert full.schema["id"] == pl.String and not full["id"].is_duplicated().any()
    assert set(full["wfh_prev_workday"].unique()) == {"true", "false"}
    small = public.load("public-wfh", "small", tmp_path, echo=lambda _: None)
    months = small.group_by(pl.col("timestamp").dt.strftime("%Y-%m")).len()
    assert months.height == 8 and months["len"].max() == public.SMALL_ROWS  # 2019-01..08

    wheel.write_bytes(b"not the wheel")
    with pytest.raises(public.PublicDataError, match="sha256"):
        public.fetch_wheel(tmp_path, echo=lambda _: None)


def test_rows_and_bars_per_family() -> None:
    quality = benchmark_module("quality")
    families = ["mlp", "gbdt"]
    assert quality.row_name("periodic", "gbdt", families) == "periodic[gbdt]"
    assert quality.row_name("periodic", "mlp", ["mlp"]) == "periodic"

    def row(policy: str | None, family: str | None, mean: float, retrains: int) -> dict:
        return {
            "policy": policy,
            "family": family,
            "mean": mean,
            "retrains": retrains,
            "rejections": 0 if policy else None,
            "train_seconds_per_period": 1.0,
        }

    rows = {
        quality.row_name(p, f, families): row(p, f, q, k)
        for f, base in (("mlp", 0.80), ("gbdt", 0.82))
        for p, q, k in (("periodic", base, 20), ("triggered", base - 0.001, 4))
    }
    rows["gbm-retrained"] = row(None, None, 0.81, 19)
    res = {
        "scenario": "concept",
        "metric": "roc_auc",
        "higher_is_better": True,
        "drift": True,
        "families": families,
        "results": rows,
    }
    verdicts = {b["bar"]: b["verdict"] for b in quality.bars(res)}
    assert verdicts == {
        "best policy ROC-AUC >= retrained GBM - 0.002 [mlp]": "MISS",
        "triggered within 0.003 of periodic, <= 1/3 of its retrains [mlp]": "PASS",
        "best policy ROC-AUC >= retrained GBM - 0.002 [gbdt]": "PASS",
        "triggered within 0.003 of periodic, <= 1/3 of its retrains [gbdt]": "PASS",
    }
    summary = quality.family_table([res], families)
    assert "| concept | roc_auc | periodic 0.8000 | 0.8000 | 1.00 | periodic 0.8200 |" in summary


def test_alerts_from_better_challengers(tmp_path: Path) -> None:
    """A gate alert counts against the bar when its challenger was at least as good as
    production on the gate metric, oriented by the metric's direction."""
    quality = benchmark_module("quality")

    def period(day: str, ch: float | None, pr: float | None, alerts: list[str]) -> dict:
        return {"loop_day": day, "challenger_metric": ch, "production_metric": pr, "alerts": alerts}

    periods = [
        period("d1", 0.80, 0.79, ["gate"]),  # better, alerted: counted
        period("d2", 0.78, 0.79, ["gate"]),  # worse, alerted
        period("d3", 0.81, 0.79, []),  # better, no alert
        period("d4", 0.81, None, ["gate"]),  # a first model
        period("d5", 0.80, 0.80, ["gate", "broken_run"]),  # equal, alerted: counted
    ]
    replay = tmp_path / "replay.json"
    replay.write_text(
        json.dumps({"higher_is_better": True, "policies": {"periodic": {"periods": periods}}})
    )
    assert quality.alerts_from_better(replay) == {"periodic": ["d1 (+0.0100)", "d5 (+0.0000)"]}
    error = [period("d1", 3.0, 3.1, ["gate"]), period("d2", 3.2, 3.1, ["gate"])]
    replay.write_text(
        json.dumps({"higher_is_better": False, "policies": {"periodic": {"periods": error}}})
    )
    assert quality.alerts_from_better(replay) == {"periodic": ["d1 (+0.1000)"]}
    # A shadow gate's alert is judged by the shadow's Δ on its live rows, not by the day's
    # challenger (held behind it, however much better offline).
    shadow = [
        {**period("d1", 0.90, 0.70, ["gate"]), "decision": "PASS", "shadow_alerts": 1,
         "shadow_gate": {"decision": "FAIL", "delta": -0.001}},
        {**period("d2", 0.90, 0.70, ["gate"]), "decision": "PASS", "shadow_alerts": 1,
         "shadow_gate": {"decision": "FAIL", "delta": 0.002}},
        {**period("d3", 0.71, 0.70, ["gate", "gate"]), "decision": "FAIL", "shadow_alerts": 1,
         "shadow_gate": {"decision": "FAIL", "delta": -0.02}},
        # recorded before `shadow_alerts`: the offline gate alerts only on a FAIL
        {**period("d4", 0.90, 0.70, ["gate"]), "decision": "PASS",
         "shadow_gate": {"decision": "FAIL", "delta": -0.001}},
    ]  # fmt: skip
    replay.write_text(
        json.dumps({"higher_is_better": True, "policies": {"shadow": {"periods": shadow}}})
    )
    assert quality.alerts_from_better(replay) == {"shadow": ["d2 (+0.0020)", "d3 (+0.0100)"]}


def test_family_specs_carry_recipes_and_hyperparameters() -> None:
    quality = benchmark_module("quality")
    assert quality.family_training("gbdt") == {"model": {"family": "gbdt"}}
    training = quality.family_training("gbdt@holdout=0.2,lambda_l2=0,bagging_fraction=1")
    assert training == {
        "model": {"family": "gbdt", "lambda_l2": 0, "bagging_fraction": 1},
        "holdout_fraction": 0.2,
    }
    assert quality.family_training("mlp@epochs=12,calibration=platt") == {
        "model": {"family": "mlp"},
        "epochs": 12,
        "calibration": "platt",
    }
    assert quality.family_training("gbdt@seed=3") == {"model": {"family": "gbdt"}, "seed": 3}
    assert quality.family_training("gbdt@history=24") == {"model": {"family": "gbdt"}}
    assert quality.family_windows("gbdt@history=24,seed=3") == {"history_days": 24}
    assert quality.family_windows("gbdt@seed=3") == {}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        quality.family_training("gbdt@holdout")
    # a hyperparameter the family lacks is named before any replay starts
    with pytest.raises(SystemExit):
        quality.main(["--size", "small", "--family", "gbdt@nope=1", "--scenarios", "stable"])


def _small_stable_workdir(tmp_path: Path) -> Path:
    """A small `stable` scenario written as quality.py writes it; its folder."""
    quality = benchmark_module("quality")
    scenario = quality.SCENARIOS["stable"]
    root = tmp_path / "stable"
    root.mkdir()
    frame = scenario.rows("small", tmp_path, lambda _: None)
    frame.write_parquet(root / "data.parquet")
    config = quality._config(scenario, frame, "one", "gbdt")
    (root / "lifecycle-gbdt.yaml").write_text(quality.yaml.safe_dump(config))
    return root


def test_history_windows_scores_a_quality_workdir_and_reuses_it(tmp_path: Path, capsys) -> None:
    """`benchmarks/history_windows.py` on a small `stable` scenario written as quality.py
    writes it: per period, both candidates scored on the period and on the one before; the
    table's strategies; a rerun reads the scores it wrote instead of fitting again."""
    quality = benchmark_module("quality")
    windows = benchmark_module("history_windows")
    root = _small_stable_workdir(tmp_path)

    assert windows.main(["--workdir", str(tmp_path)]) == 0
    scores = json.loads((root / "history-windows.json").read_text())
    assert scores["metric"] == "roc_auc"
    periods = scores["periods"]
    assert len(periods) == quality.SIZES["small"][0] - windows.FIRST_SCORED
    for period in periods:
        for kind in ("test", "newest"):
            assert set(period[kind]) == {"recent", "history"}
            assert all(0.5 < v <= 1.0 for v in period[kind].values())
    row = next(line for line in capsys.readouterr().out.splitlines() if "| stable |" in line)
    assert len(row.strip("|").split("|")) == 3 + 2 + len(windows.THRESHOLDS) + 1

    # A rerun reuses the file: scores written there are what the table shows.
    for period in periods:
        period["test"] = {"recent": 0.25, "history": 0.75}
    (root / "history-windows.json").write_text(json.dumps(scores))
    assert windows.main(["--workdir", str(tmp_path), "--scenarios", "stable"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "| stable |" in line)
    assert "| 0.2500 | 0.7500 |" in row

    # The strategies, on four periods. On the period before each, the recent window wins on
    # even periods (0.9 vs 0.8) and loses on odd ones (0.6 vs 0.8). Judged on that period
    # alone, even periods take the recent window's test score (0.25), odd ones the
    # history's (0.75). Judged on two windows (0.9 and 0.6 averaged against 0.8), only the
    # first period, which has one window, takes the recent window.
    four = {
        "metric": "roc_auc",
        "periods": [
            {
                "test": {"recent": 0.25, "history": 0.75},
                "newest": {"recent": 0.9 if i % 2 == 0 else 0.6, "history": 0.8},
            }
            for i in range(4)
        ],
    }
    table = windows.summary(four)
    assert table["recent"] == 0.25 and table["history"] == 0.75
    assert table["choose@0.005"] == (0.25 + 0.75 + 0.25 + 0.75) / 4
    assert table["choose@0.005, 2 windows"] == (0.25 + 0.75 * 3) / 4


def test_a_label_that_misses_its_maturity_follows_the_scenarios_semantics() -> None:
    """Generated churn counts a label that missed its maturity window as no churn; the public
    sets' labels are measured properties, so a late one is dropped, by the loop (its config)
    and by the reference backtest (`matured_label`) alike."""
    import datetime as dt

    from lifecycle_assets.config import parse_config
    from lifecycle_assets.replay.source import LABEL, LABEL_TIME, PERIOD

    quality = benchmark_module("quality")
    frame = quality.SCENARIOS["stable"].rows("small", Path("."), lambda _: None)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    # period 0, maturity one period: due before loop day 2
    traffic = pl.DataFrame(
        {
            PERIOD: [0, 0, 0],
            LABEL: [1.0, 1.0, 1.0],
            LABEL_TIME: [start + dt.timedelta(hours=40), start + dt.timedelta(hours=50), None],
        }
    )
    seen = {}
    for name in ("stable", "regression", "public-housing", "public-wfh"):
        scenario = quality.SCENARIOS[name]
        # (_config reads only the rows per period off the frame's event times)
        rows = frame.rename({"event_time": scenario.problem.event_time})
        config = parse_config(quality._config(scenario, rows, "one", "gbdt"))
        seen[name] = config.labels.unlabeled_after_maturity
        labels = traffic.select(quality.matured_label(config, start.date()))[LABEL].to_list()
        missed = 0.0 if seen[name] == "negative" else None
        assert labels == [1.0, missed, missed]
    assert seen == {
        "stable": "negative",
        "regression": "drop",
        "public-housing": "drop",
        "public-wfh": "drop",
    }


def test_the_retrain_oracle_finds_the_best_schedule_of_k_retrains() -> None:
    """`best_schedules`' dynamic programme against every schedule of at most k retrains
    (from the candidates that serve a judged day), for a higher-is-better and a
    lower-is-better metric."""
    import itertools

    oracle = benchmark_module("retrain_oracle")
    rng = np.random.default_rng(3)
    days = 9
    q = {(i, j): float(rng.random()) for i in range(days) for j in range(i + 1, days)}
    first, judged = 0, list(range(1, days))
    for higher in (True, False):
        found = oracle.best_schedules(q, first, judged, 4, higher)
        for k in range(1, 5):
            means = {
                days_: oracle.schedule_mean(q, first, set(days_), judged)
                for size in range(k + 1)
                for days_ in itertools.combinations(range(1, days - 1), size)
            }
            pick = max(means, key=means.get) if higher else min(means, key=means.get)
            assert found[k][0] == pytest.approx(means[pick])
            assert means[tuple(found[k][1])] == pytest.approx(means[pick])


def test_successors_counts_worse_successors_per_variant_and_reuses_them(
    tmp_path: Path, capsys
) -> None:
    """`benchmarks/successors.py` on a small `stable` scenario: per variant, the first
    model, the mean served score, the successors worse than their predecessor; a rerun
    reads the figures it wrote; a hyperparameter the family lacks is refused by name."""
    successors = benchmark_module("successors")
    root = _small_stable_workdir(tmp_path)
    args = ["--workdir", str(tmp_path), "--variant", "leaves3:num_leaves=3,num_trees=20"]
    assert successors.main(args) == 0
    done = json.loads((root / "successors.json").read_text())
    (figures,) = done.values()
    assert figures["metric"] == "roc_auc"
    assert figures["successors"] == 6 - successors.FIRST_SCORED  # the small size's weeks
    assert 0.5 < figures["first"] <= 1.0 and 0.5 < figures["mean"] <= 1.0
    assert 0 <= figures["worse"] <= figures["successors"]
    row = next(line for line in capsys.readouterr().out.splitlines() if "| stable |" in line)
    assert "| leaves3 |" in row

    # A rerun shows the stored figures instead of fitting again.
    figures["worse"] = 2
    (root / "successors.json").write_text(json.dumps(done))
    assert successors.main(args) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "| stable |" in line)
    assert f"| 2 of {figures['successors']} |" in row

    with pytest.raises(SystemExit):
        successors.main(["--workdir", str(tmp_path), "--variant", "bad:num_leavs=3"])


def test_estimate_calibration_compares_the_calibrations_and_reuses_them(
    tmp_path: Path, capsys
) -> None:
    """`benchmarks/estimate_calibration.py` on a small `stable` scenario: one error per
    estimated period for each calibration; a rerun with the same folds reads them back."""
    calibration = benchmark_module("estimate_calibration")
    root = _small_stable_workdir(tmp_path)
    args = ["--workdir", str(tmp_path), "--scenarios", "stable", "--folds", "2"]
    assert calibration.main(args) == 0
    done = json.loads((root / "estimate-calibration.json").read_text())
    assert done["folds"] == 2 and set(done["errors"]) == set(calibration.KINDS)
    periods = 6 - calibration.FIRST_ESTIMATED  # the small size's weeks
    assert all(len(e) == periods and all(abs(x) < 0.5 for x in e) for e in done["errors"].values())
    done["errors"]["raw"] = [0.25] * periods
    (root / "estimate-calibration.json").write_text(json.dumps(done))
    capsys.readouterr()
    assert calibration.main(args) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "| stable |" in line)
    assert f"| stable | {periods} | 0.2500, +0.2500 |" in row


def test_estimate_floor_separates_chance_calibration_and_the_label_contract(
    tmp_path: Path, capsys
) -> None:
    """`benchmarks/estimate_floor.py` on a small `stable` scenario: one error per estimated
    period for each kind, the share of positives the loop counts negative; a rerun reads
    them back; a scenario without a known P(y | x) is refused by name."""
    floor = benchmark_module("estimate_floor")
    root = _small_stable_workdir(tmp_path)
    args = ["--workdir", str(tmp_path), "--scenarios", "stable"]
    assert floor.main(args) == 0
    done = json.loads((root / "estimate-floor.json").read_text())
    assert set(done["errors"]) == set(floor.KINDS)
    periods = 6 - floor.FIRST_ESTIMATED  # the small size's weeks
    assert all(len(e) == periods and all(abs(x) < 0.5 for x in e) for e in done["errors"].values())
    # the small scenario's labels arrive up to 9 days late against one week of maturity
    assert 0 < done["positives_counted_negative"] < 0.2
    done["errors"]["oracle"] = [0.25] * periods
    (root / "estimate-floor.json").write_text(json.dumps(done))
    capsys.readouterr()
    assert floor.main(args) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "| stable |" in line)
    assert "| 0.2500, +0.2500 |" in row
    with pytest.raises(SystemExit):
        floor.main(["--workdir", str(tmp_path), "--scenarios", "concept"])
    assert "no known P(y | x) for concept" in capsys.readouterr().err


def test_the_full_runs_wall_time_is_judged_only_on_a_whole_run_of_its_own() -> None:
    """The 30-minute bar: judged on a full-size run that replayed every scenario itself;
    not on the small size, a subset, or a run that reused a finished scenario."""
    quality = benchmark_module("quality")
    names = list(quality.SCENARIOS)
    fresh = [{"scenario": n} for n in names]
    bar = quality.wall_time_bar("full", names, fresh, 1_700.0, 2)
    assert (
        bar is not None and bar["verdict"] == "PASS" and "28.3 minutes, 2 job(s)" in bar["figures"]
    )
    assert quality.wall_time_bar("full", names, fresh, 1_900.0, 1)["verdict"] == "MISS"
    assert quality.wall_time_bar("small", names, fresh, 60.0, 2) is None
    assert quality.wall_time_bar("full", names[:2], fresh[:2], 60.0, 2) is None
    reused = [dict(r, reused=True) if r["scenario"] == "stable" else r for r in fresh]
    assert quality.wall_time_bar("full", names, reused, 60.0, 2) is None
