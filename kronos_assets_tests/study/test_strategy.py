"""The study's strategy arithmetic and its Sharpe-difference test (kronos_assets/metrics/strategy.py)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_study import null_pair
from kronos_assets.metrics.strategy import (
    max_drawdown,
    net_returns,
    performance,
    sharpe,
    sharpe_difference,
    stationary_bootstrap_indices,
)


def test_net_returns_charge_each_position_change():
    r = np.array([0.01, -0.02, 0.03, 0.01])
    pos = np.array([1.0, 0.0, 1.0, 1.0])
    # entry (from flat), exit, entry again: three changes of 10 bp
    assert net_returns(pos, r, cost=0.001) == pytest.approx([0.01 - 0.001, -0.001, 0.03 - 0.001, 0.01])
    perf = performance(pos, r, cost=0.001)
    assert perf["position_changes"] == 3
    assert perf["total_return"] == pytest.approx(np.prod(1 + np.array([0.009, -0.001, 0.029, 0.01])) - 1)
    assert perf["time_in_market"] == 0.75


def test_max_drawdown_and_sharpe():
    assert max_drawdown(np.array([0.1, -0.5, 0.2])) == pytest.approx(0.5)
    assert max_drawdown(np.array([0.01, 0.02])) == 0.0
    r = np.array([0.001, 0.003, -0.001, 0.002])
    assert sharpe(r) == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(8760))
    assert sharpe(np.zeros(5)) == 0.0  # flat all the time: no risk, no return


def test_stationary_bootstrap_blocks_run_on_and_wrap():
    idx = stationary_bootstrap_indices(50, 400, mean_block=8, rng=np.random.default_rng(0))
    assert idx.shape == (400, 50) and idx.min() >= 0 and idx.max() < 50
    step = (np.diff(idx, axis=1)) % 50
    # inside a block the next index follows on (wrapping past the end); blocks start with probability 1/8
    assert 1 - np.mean(step == 1) == pytest.approx(1 / 8, abs=0.02)
    assert np.any((idx[:, :-1] == 49) & (idx[:, 1:] == 0))


def test_sharpe_difference_finds_a_real_difference():
    rng = np.random.default_rng(3)
    a = 0.002 + 0.01 * rng.standard_normal(4000)
    b = -0.002 + 0.01 * rng.standard_normal(4000)
    t = sharpe_difference(a, b, n_boot=299)
    assert t.difference > 0 and t.p_value < 0.01 and t.ci_low > 0


def test_sharpe_difference_size_under_the_null_fast_subset():
    """A small subset of benchmarks/bench_study.py size: equal true Sharpe ratios, volatility clustering and
    autocorrelation; the 5 % test must not reject far more often than 5 % (bound: 5 % + 3 standard errors)."""
    rng = np.random.default_rng(11)
    reps, rejections = 80, 0
    for i in range(reps):
        a, b = null_pair(rng, 2000, "returns" if i % 2 else "positions")
        rejections += sharpe_difference(a, b, n_boot=199, seed=i).p_value < 0.05
    assert rejections / reps <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)
