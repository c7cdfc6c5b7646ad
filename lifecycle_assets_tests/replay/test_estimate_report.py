"""The replay's record of the label-free estimate: per period estimated − realised and
whether the interval covers, per policy the median |error| and coverage, and its plot."""

from __future__ import annotations

import pytest

from lifecycle_assets.replay.report import render
from lifecycle_assets.replay.runner import period_estimate, summarise_estimate
from lifecycle_assets_tests.replay.test_report import PLOTS, summary


def test_a_period_estimate_against_the_realised_quality() -> None:
    young = {"estimated_quality": 0.82, "estimated_low": 0.80, "estimated_high": 0.84}
    est = period_estimate(young, {"quality": 0.81})
    assert est["estimate_error"] == pytest.approx(0.01)
    assert est["estimate_covers"] is True
    assert period_estimate(young, {"quality": 0.75})["estimate_covers"] is False
    # cold start: no model scored the period, nothing to estimate
    empty = period_estimate({}, {"quality": None})
    assert empty["estimate_error"] is None and empty["estimate_covers"] is None


def test_the_estimate_summary_over_periods() -> None:
    periods = [
        {"estimate_error": e, "estimate_covers": c}
        for e, c in [(0.01, True), (-0.02, False), (0.005, True), (None, None)]
    ]
    out = summarise_estimate(periods)
    assert out["periods"] == 3
    assert out["median_abs_error"] == pytest.approx(0.01)
    assert out["coverage"] == pytest.approx(2 / 3)
    assert summarise_estimate([])["median_abs_error"] is None


def test_the_report_plots_the_estimate_error_when_there_is_one() -> None:
    s = summary()
    for res in s["policies"].values():
        for p in res["periods"]:
            p["estimate_error"] = None if p["quality"] is None else 0.004
            p["estimate_covers"] = None if p["quality"] is None else True
        res["estimate"] = summarise_estimate(res["periods"])
    page = render(s)
    assert 'data-plot="estimate_error"' in page
    assert "median |error| 0.0040, interval covers 100% of 3 periods" in page
    # without estimates (a regression replay) the plot is left out
    assert 'data-plot="estimate_error"' not in render(summary())
    assert all(f'data-plot="{p}"' in page for p in PLOTS)


@pytest.mark.parametrize(
    ("scenario", "error", "coverage", "verdict"),
    [
        ("stable", 0.006, 0.9, "PASS"),
        ("covariate", 0.006, 0.7, "MISS"),
        ("covariate", 0.02, 0.9, "MISS"),
        ("concept", 0.08, 0.1, "n/a"),  # shown, not judged: the estimate's known limit
    ],
)
def test_the_benchmark_judges_the_estimate_where_it_is_meant_to_hold(
    scenario: str, error: float, coverage: float, verdict: str
) -> None:
    from lifecycle_assets_tests.conftest import benchmark_module

    quality = benchmark_module("quality")
    estimate = {
        "periods": 10,
        "median_abs_error": error,
        "mean_error": error,
        "max_abs_error": 2 * error,
        "coverage": coverage,
    }
    rows = {
        "periodic": {
            "policy": "periodic",
            "family": "gbdt",
            "mean": 0.8,
            "retrains": 10,
            "rejections": 0,
            "estimate": estimate,
        },
        "gbm-retrained": {"policy": None, "family": None, "mean": 0.8, "retrains": 10},
    }
    res = {
        "scenario": scenario,
        "higher_is_better": True,
        "drift": False,
        "families": ["gbdt"],
        "results": rows,
    }
    bars = [b for b in quality.bars(res) if b["bar"].startswith("estimate")]
    assert [b["verdict"] for b in bars] == [verdict]
    assert f"median |error| {error:.4f}" in bars[0]["figures"]
