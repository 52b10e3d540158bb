"""Is a forecaster's central band too narrow or too wide? A test of its coverage that holds its size when
forecasts overlap and still sees a 10-point shortfall at 10 independent horizons.

Forecasts made every bar with an h-bar horizon share most of their future, so their hits at the last step are
worth about n / h observations; two standard errors over those (the old rule) flagged a calibrated model 0-0.45 %
of the time and missed shortfalls of 11-17 points (issue 26). Every step of the path is scored, though, and a
correctly specified forecaster's step-1 hits are independent (each is a fresh one-bar outcome), while step s of
consecutive forecasts overlaps s-fold. So the test pools the steps of each forecast with weights 1/s^2 (within a
few % of the generalised-least-squares weights measured under a random walk, which put 58 % on step 1) into one
hit rate per origin, and compares its mean with what a calibrated band of N sample paths covers,
``level * (N - 1) / (N + 1)`` at every step, by a t statistic whose long-run variance is the equal-weighted
cosine estimate (as the Diebold-Mariano test's, kronos_assets.metrics.compare) with 2 terms per independent
horizon, rescaled to the calibrated coverage's Bernoulli variance, and referred to Student t with that many
degrees of freedom. benchmarks/bench_coverage_flags.py measures
it: false flags 3.7-6.5 % under a correctly specified random walk, a 10-point miss either way flagged 94-100 % of
the time from 240 origins of 24-bar forecasts (the same test on the last step alone: 33-38 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

from kronos_assets.metrics.compare import MIN_INDEPENDENT_HORIZONS, cosine_projections

SIGNIFICANCE = 0.05  # two-sided: a calibrated band is flagged about this often
COSINES_PER_HORIZON = 2  # cosine terms of the variance estimate per independent horizon (measured, see module doc)


def step_weights(horizon: int) -> np.ndarray:
    """Weights of steps 1..horizon in a forecast's pooled hit rate: 1/s^2, summing to 1 (dbt_free_sql/
    coverage_path.sql applies the same)."""
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    w = 1.0 / np.arange(1, int(horizon) + 1) ** 2
    return w / w.sum()


def path_hits(hits: np.ndarray) -> np.ndarray:
    """Per-origin pooled hit rate from hits shaped (..., origins, steps) (1/0 or booleans)."""
    h = np.asarray(hits, dtype=np.float64)
    return h @ step_weights(h.shape[-1])


def cosine_terms(n: int, horizon: int) -> int:
    return max(2, COSINES_PER_HORIZON * (n // horizon))


def coverage_batch(x: np.ndarray, expected: float | np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Statistic and two-sided p-value for each row of ``x`` (pooled hits at n origins one bar apart) against the
    calibrated coverage ``expected`` (a number, or one per origin). Vectorised for the benchmark."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    e = np.broadcast_to(np.asarray(expected, dtype=np.float64), x.shape[-1:]).mean()
    d = x - expected
    n = d.shape[1]
    q = cosine_terms(n, horizon)
    lam = cosine_projections(d - d.mean(axis=1, keepdims=True), q)
    # Hits vary as p(1 - p): rescaled to the calibrated coverage's variance (the null's), so that a band that
    # happens to cover more is not judged on a smaller standard error (false flags split evenly both ways).
    m = x.mean(axis=1)
    spread = m * (1 - m)
    with np.errstate(divide="ignore", invalid="ignore"):
        null_scale = np.where(spread > 0, e * (1 - e) / spread, 1.0)
    se = np.sqrt(np.mean(lam**2, axis=1) * null_scale / n)
    mean = d.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = np.where(se > 0, mean / se, np.where(mean == 0, 0.0, np.sign(mean) * np.inf))
    return statistic, 2.0 * stats.t.sf(np.abs(statistic), df=q)


class CoverageTest(NamedTuple):
    observed: float  # pooled coverage over the path (step weights 1/s^2)
    expected: float  # what a calibrated band with the stored path count covers
    statistic: float  # negative: the band covers too little
    p_value: float
    n: int  # forecasts (origins)
    n_independent: int  # non-overlapping horizons they span (n // horizon)
    judgement: str | None  # 'too narrow', 'too wide', or None (within noise, or too few horizons to judge)


def coverage_test(
    path_hit: Sequence[float] | np.ndarray,
    expected: float | Sequence[float] | np.ndarray,
    horizon: int,
    min_independent: int = MIN_INDEPENDENT_HORIZONS,
    significance: float = SIGNIFICANCE,
) -> CoverageTest:
    """Judge a band from its pooled hits per origin (``path_hits``; in origin order, one bar apart) and the
    calibrated coverage (one number, or one per origin when the path count changed). Below ``min_independent``
    non-overlapping horizons no judgement is given."""
    x = np.asarray(path_hit, dtype=np.float64)
    e = np.broadcast_to(np.asarray(expected, dtype=np.float64), x.shape)
    if x.ndim != 1:
        raise ValueError(f"path hits must be 1-D (one per origin), got shape {x.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(e))):
        raise ValueError("path hits or expected coverage contain non-finite values")
    k = x.size // int(horizon)
    if k < max(int(min_independent), 1):
        return CoverageTest(
            float(x.mean()) if x.size else float("nan"),
            float(e.mean()) if e.size else float("nan"),
            float("nan"),
            float("nan"),
            x.size,
            k,
            None,
        )
    statistic, p = (float(v[0]) for v in coverage_batch(x, e, horizon))
    judgement = None
    if p < significance:
        judgement = "too narrow" if statistic < 0 else "too wide"
    return CoverageTest(float(x.mean()), float(e.mean()), statistic, p, x.size, k, judgement)
