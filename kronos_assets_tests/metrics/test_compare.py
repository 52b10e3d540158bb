"""Scoreboard aggregates: point errors, skill scores, Diebold–Mariano, reliability and PIT histograms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from kronos_assets.metrics import (
    diebold_mariano,
    mae,
    mape,
    mean_of,
    pit_histogram,
    reliability_table,
    rmse,
    score_paths,
    skill_score,
)


def test_mae_rmse_mape_from_rows() -> None:
    # single-path forecast: median = the path. Errors 1, 3 on realised 100, 100.
    rows = score_paths(np.array([[101.0, 97.0]]), np.array([100.0, 100.0]), 100.0)
    assert mae(rows) == pytest.approx(2.0)
    assert rmse(rows) == pytest.approx(math.sqrt(5.0))
    assert mape(rows) == pytest.approx(2.0)  # percent


def test_mean_of_skips_none_and_rejects_empty() -> None:
    assert mean_of([{"x": 1.0}, {"x": None}, {"x": 3.0}], "x") == 2.0
    with pytest.raises(ValueError, match="no rows"):
        mean_of([{"x": None}], "x")


def test_skill_score() -> None:
    assert skill_score(0.8, 1.0) == pytest.approx(0.2)
    assert skill_score(1.5, 1.0) == pytest.approx(-0.5)
    assert skill_score(0.0, 2.0) == 1.0
    assert math.isnan(skill_score(1.0, 0.0))
    with pytest.raises(ValueError):
        skill_score(float("nan"), 1.0)


def test_dm_horizon_one_by_hand() -> None:
    # d = 1..5, dbar = 3, gamma0 = (4+1+0+1+4)/5 = 2, DM = 3/sqrt(2/5); HLN factor sqrt((5+1-2)/5) = sqrt(.8)
    # -> 3 * sqrt(.8/.4) = 3 sqrt(2).
    stat, p = diebold_mariano([1, 2, 3, 4, 5], [0, 0, 0, 0, 0], horizon=1)
    assert stat == pytest.approx(3 * math.sqrt(2))
    assert p == pytest.approx(2 * stats.t.sf(3 * math.sqrt(2), df=4))
    stat_rev, p_rev = diebold_mariano([0, 0, 0, 0, 0], [1, 2, 3, 4, 5], horizon=1)
    assert stat_rev == pytest.approx(-stat) and p_rev == pytest.approx(p)


def test_dm_horizon_two_by_hand() -> None:
    # d = [1,2,4,5,3,3], n = 6, dbar = 3, e = [-2,-1,1,2,0,0]; gamma0 = 10/6,
    # gamma1 = (2 - 1 + 2 + 0 + 0)/6 = 0.5; V = 10/6 + 1 = 8/3; DM = 3/sqrt(8/3/6) = 4.5;
    # HLN: (6 + 1 - 4 + 2/6)/6 = 5/9 -> 4.5 * sqrt(5)/3 = 1.5 sqrt(5).
    loss_b = np.array([0.5, 1.0, 0.25, 2.0, 1.0, 0.0])
    stat, p = diebold_mariano(loss_b + np.array([1, 2, 4, 5, 3, 3]), loss_b, horizon=2)
    assert stat == pytest.approx(1.5 * math.sqrt(5))
    assert p == pytest.approx(2 * stats.t.sf(1.5 * math.sqrt(5), df=5))


def test_dm_negative_long_run_variance_falls_back_to_gamma0() -> None:
    # d = [2,0,2,0,2,0]: gamma0 = 1, gamma1 = -5/6, V = 1 - 5/3 < 0 -> V = gamma0 = 1;
    # DM = 1/sqrt(1/6) = sqrt(6); HLN factor sqrt(5/9) -> sqrt(30)/3.
    stat, _ = diebold_mariano([2, 0, 2, 0, 2, 0], [0] * 6, horizon=2)
    assert stat == pytest.approx(math.sqrt(30) / 3)


def test_dm_zero_variance() -> None:
    assert diebold_mariano([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == (0.0, 1.0)
    assert diebold_mariano([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]) == (math.inf, 0.0)
    assert diebold_mariano([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], horizon=2) == (-math.inf, 0.0)


def test_dm_bad_inputs() -> None:
    with pytest.raises(ValueError, match="equal length"):
        diebold_mariano([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="non-finite"):
        diebold_mariano([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="horizon"):
        diebold_mariano([1.0, 2.0, 3.0], [1.0, 2.0, 2.0], horizon=0)
    with pytest.raises(ValueError, match="at least 2"):
        diebold_mariano([1.0], [2.0])
    with pytest.raises(ValueError, match="HLN"):
        diebold_mariano([1.0, 2.0, 3.0], [0.0, 0.0, 1.0], horizon=3)


def test_dm_is_roughly_uniform_under_the_null() -> None:
    rng = np.random.default_rng(3)
    p_values = [diebold_mariano(rng.normal(size=60), rng.normal(size=60))[1] for _ in range(400)]
    assert 0.02 < np.mean(np.array(p_values) < 0.05) < 0.09


def test_reliability_table() -> None:
    p = [0.05, 0.15, 0.12, 0.95, 1.0, 0.55]
    o = [0, 1, 0, 1, 1, 0]
    table = reliability_table(p, o, n_bins=4)
    assert [r["count"] for r in table] == [3, 0, 1, 2]
    assert table[0]["mean_forecast"] == pytest.approx((0.05 + 0.15 + 0.12) / 3)
    assert table[0]["observed_frequency"] == pytest.approx(1 / 3)
    assert table[1]["mean_forecast"] is None and table[1]["observed_frequency"] is None
    assert table[3]["mean_forecast"] == pytest.approx(0.975) and table[3]["observed_frequency"] == 1.0
    assert (table[2]["lower"], table[2]["upper"]) == (0.5, 0.75)
    assert set(table[0]) == {"bin", "lower", "upper", "mean_forecast", "observed_frequency", "count"}
    with pytest.raises(ValueError, match="0/1"):
        reliability_table([0.5], [2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_table([1.5], [1])


def test_pit_histogram() -> None:
    counts = pit_histogram([0.0, 0.05, 0.1, 0.5, 0.99, 1.0], n_bins=10)
    assert counts.tolist() == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert counts.dtype == np.int64
    with pytest.raises(ValueError):
        pit_histogram([1.2])
    with pytest.raises(ValueError):
        pit_histogram([0.5], n_bins=0)
