"""The economic value of a forecast: a long/flat strategy against buy-and-hold, and a test of their Sharpe
difference that respects autocorrelation (the stationary block bootstrap of Politis and Romano, 1994).

Returns are simple per-bar returns; positions are 0 (flat) or 1 (long) over each bar, decided before it opens.
A change of position costs ``cost`` (10 bp: 0.001) of equity. Sharpe ratios are annualised from hourly bars
(sqrt(8760)), without a risk-free rate.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

HOURS_PER_YEAR = 24 * 365
COST = 0.001  # 10 bp per position change
MEAN_BLOCK = 24  # bars: the bootstrap's mean block length (one day of hourly bars; see sharpe_difference)
N_BOOT = 2000


def net_returns(
    positions: np.ndarray, returns: np.ndarray, cost: float = COST, start_position: float = 0.0
) -> np.ndarray:
    """Per-bar returns of holding ``positions[t]`` over bar t, less ``cost`` at every change (the first bar's
    change is counted from ``start_position``)."""
    pos = np.asarray(positions, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    if pos.shape != r.shape or pos.ndim != 1:
        raise ValueError(f"positions and returns must be 1-D and of equal length, got {pos.shape} and {r.shape}")
    changes = np.abs(np.diff(pos, prepend=start_position))
    return pos * r - cost * changes


def sharpe(returns: np.ndarray, periods_per_year: int = HOURS_PER_YEAR) -> float:
    r = np.asarray(returns, dtype=np.float64)
    sd = r.std(ddof=1) if r.size > 1 else 0.0
    return float(r.mean() / sd * np.sqrt(periods_per_year)) if sd > 0 else 0.0


def max_drawdown(returns: np.ndarray) -> float:
    """The largest fall of the equity curve from a previous peak, as a positive fraction."""
    equity = np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return float(np.max(1.0 - equity / peak)) if equity.size else 0.0


def performance(positions: np.ndarray, returns: np.ndarray, cost: float = COST) -> dict[str, Any]:
    """Total return, annualised Sharpe, max drawdown, position changes (turnover) and time in the market."""
    pos = np.asarray(positions, dtype=np.float64)
    net = net_returns(pos, returns, cost)
    changes = int(np.abs(np.diff(pos, prepend=0.0)).sum())
    years = pos.size / HOURS_PER_YEAR
    return {
        "bars": int(pos.size),
        "total_return": float(np.prod(1.0 + net) - 1.0),
        "sharpe": sharpe(net),
        "max_drawdown": max_drawdown(net),
        "position_changes": changes,
        "turnover_per_year": changes / years if years else None,
        "time_in_market": float(pos.mean()),
        "costs": float(cost * changes),
    }


def stationary_bootstrap_indices(n: int, n_boot: int, mean_block: float, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` x ``n`` resampling indices of the stationary bootstrap: blocks start at uniform positions, have
    geometric lengths of mean ``mean_block`` and wrap around the end of the sample."""
    if n < 2 or mean_block < 1:
        raise ValueError(f"need at least 2 observations and a mean block of at least 1 (got n={n}, {mean_block})")
    t = np.arange(n)
    new = rng.random((n_boot, n)) < 1.0 / mean_block
    new[:, 0] = True
    starts = rng.integers(0, n, size=(n_boot, n))
    last = np.maximum.accumulate(np.where(new, t, 0), axis=1)  # where the current block began
    return (np.take_along_axis(starts, last, axis=1) + (t - last)) % n


class SharpeTest(NamedTuple):
    difference: float  # Sharpe(a) - Sharpe(b), annualised
    p_value: float  # two-sided, from the centred bootstrap distribution
    ci_low: float  # 95 % percentile interval of the difference
    ci_high: float
    mean_block: float
    n_boot: int


def sharpe_difference(
    a: np.ndarray,
    b: np.ndarray,
    mean_block: float = MEAN_BLOCK,
    n_boot: int = N_BOOT,
    seed: int = 0,
    periods_per_year: int = HOURS_PER_YEAR,
) -> SharpeTest:
    """Is Sharpe(a) different from Sharpe(b)? The pairs (a_t, b_t) are resampled together by the stationary
    bootstrap, which keeps their correlation and (within blocks) their autocorrelation; the p-value is the share
    of centred resampled differences at least as far from 0 as the observed one (Ledoit and Wolf, 2008, in its
    simple percentile form).

    Block length: a mean of 24 hourly bars (one day). Hourly crypto returns have little autocorrelation in their
    level but strong, slowly decaying autocorrelation in their size (volatility clustering), and a position held
    over consecutive bars makes a strategy's returns depend on each other for as long as it holds; a day covers
    both the horizon of the forecasts (24 bars) and the typical holding spell. Under the null the test's size at
    5 % is checked by simulation in benchmarks/bench_study.py (and a small subset in kronos_assets_tests/study).
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"return series must be 1-D and of equal length, got {x.shape} and {y.shape}")
    observed = sharpe(x, periods_per_year) - sharpe(y, periods_per_year)
    rng = np.random.default_rng(seed)
    diffs = []
    for lo in range(0, n_boot, 200):  # bounded memory: 200 resamples at a time
        idx = stationary_bootstrap_indices(x.size, min(200, n_boot - lo), mean_block, rng)
        diffs.append(_sharpes(x[idx], periods_per_year) - _sharpes(y[idx], periods_per_year))
    d = np.concatenate(diffs)
    p = (1 + np.sum(np.abs(d - observed) >= abs(observed))) / (d.size + 1)
    lo, hi = np.quantile(d, [0.025, 0.975])
    return SharpeTest(float(observed), float(p), float(lo), float(hi), float(mean_block), int(d.size))


def _sharpes(rows: np.ndarray, periods_per_year: int) -> np.ndarray:
    sd = rows.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, rows.mean(axis=1) / sd * np.sqrt(periods_per_year), 0.0)
