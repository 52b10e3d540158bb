"""Aggregates for scoreboards: point-error summaries, skill scores, the Diebold–Mariano test, a reliability table
for P(up) and a PIT histogram.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy import stats
from scipy.fft import dct


def mean_of(rows: Iterable[Mapping[str, Any]], key: str) -> float:
    """Mean of ``key`` over the rows, skipping None (e.g. ``brier_vol_amp`` off the last step)."""
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    if not values:
        raise ValueError(f"no rows with a value for {key!r}")
    return float(np.mean(values))


def mae(rows: Iterable[Mapping[str, Any]]) -> float:
    """Mean absolute error of the median close over per-step rows of ``score_paths``."""
    return mean_of(rows, "abs_error")


def rmse(rows: Iterable[Mapping[str, Any]]) -> float:
    """Root mean squared error of the median close over per-step rows of ``score_paths``."""
    return float(np.sqrt(mean_of(rows, "sq_error")))


def mape(rows: Iterable[Mapping[str, Any]]) -> float:
    """Mean absolute percentage error (in percent) of the median close over per-step rows of ``score_paths``."""
    return mean_of(rows, "ape")


def skill_score(score_model: float, score_reference: float) -> float:
    """``1 - score_model / score_reference`` for a negatively oriented score (lower is better).

    Positive means the model beats the reference. NaN when the reference score is 0 (undefined).
    """
    model, reference = float(score_model), float(score_reference)
    if not (np.isfinite(model) and np.isfinite(reference)):
        raise ValueError(f"scores must be finite, got model={model}, reference={reference}")
    if reference == 0.0:
        return float("nan")
    return 1.0 - model / reference


class TooFewHorizons(ValueError):
    """Fewer independent horizons than the test needs to hold its size: no p-value is given."""


class TooPersistent(TooFewHorizons):
    """The loss difference drifts more slowly than the sample's horizons can resolve (its lowest frequencies carry
    PERSISTENCE_LIMIT times the power of the rest): in effect too few independent horizons, so no p-value."""


MIN_INDEPENDENT_HORIZONS = 10  # below this the verdict is "too few independent horizons" (see diebold_mariano)
HORIZONS_PER_COSINE = 5  # independent horizons per cosine term of the variance estimate (at least MIN_COSINES)
MIN_COSINES = 2
PERSISTENCE_LIMIT = 1.25  # low-frequency excess beyond which no verdict is given (see persistence_index)
# Critical values are Student t's times this allowance for persistence, by independent horizons (linear in
# between, flat outside): the smallest factors that kept the rejection rate at nominal 5 % below 6.5 % under
# every null of benchmarks/bench_dm_size.py (AR(1) parts with half-lives up to 5.75 horizons included) in two
# runs of 1000 and one of 3000 replications, rounded up.
PERSISTENCE_ALLOWANCE = ((10, 2.26), (20, 1.8))
# Nulls under which the size was measured, and the worst rejection rate seen (the method note quotes them)
SIZE_NULLS = (
    "real loss differences under random signs per block of 24 and of 120 origins, two seeds of the "
    "random walk with volatility on real candles, GARCH-t shocks through an MA(23), a variance nine "
    "times larger from halfway, and each of these plus an AR(1) part with a half-life of 14 to 138 bars "
    "(autocorrelation 0.5 at lag 24)"
)
MEASURED_SIZE = "at most 8 %"


class DMResult(NamedTuple):
    statistic: float  # positive: forecast A has the larger mean loss (B is better)
    p_value: float  # two-sided, from Student t with ``df`` degrees of freedom and the persistence allowance
    df: int  # cosine terms in the long-run variance estimate
    n: int  # loss pairs
    n_independent: int  # non-overlapping horizons they span (n // horizon)
    persistence: float = 1.0  # persistence_index of d (1: no excess power at the lowest frequencies)


def cosine_terms(n_independent: int) -> int:
    """Cosine terms of the variance estimate: one per HORIZONS_PER_COSINE independent horizons, at least 2."""
    return max(MIN_COSINES, n_independent // HORIZONS_PER_COSINE)


def persistence_allowance(n_independent: int) -> float:
    xs, ys = zip(*PERSISTENCE_ALLOWANCE, strict=True)
    return float(np.interp(n_independent, xs, ys))


def _cosines(n: int, terms: int) -> np.ndarray:
    """(terms, n): sqrt(2/n) cos(pi j (t + 1/2) / n), j = 1..terms (the type-II DCT basis, orthonormal)."""
    return np.sqrt(2.0 / n) * np.cos(np.pi * np.arange(1, terms + 1)[:, None] * (np.arange(n) + 0.5) / n)


def cosine_projections(x: np.ndarray, terms: int) -> np.ndarray:
    """(rows, terms): each row of ``x`` (n values) projected on sqrt(2/n) cos(pi j (t + 1/2) / n), j = 1..terms
    (the orthonormal type-II DCT basis), by the FFT: O(n log n), where the basis matrix costs terms x n (a year of
    hourly origins with a term per 12 of them: 6 million cosines per series and model, every tick). Equal to
    ``x @ _cosines(n, terms).T`` to 1e-12; the all-time coverage test uses it, the DM test's 30-day window the
    matrix (its published statistics stay bit-identical)."""
    n = x.shape[-1]
    y = dct(x, type=2, axis=-1)[..., 1 : terms + 1]  # 2 sum_t x_t cos(pi j (2t + 1) / 2n)
    if y.shape[-1] < terms:  # more terms than the DCT has frequencies (j >= n): the basis matrix, as before
        return x @ _cosines(n, terms).T
    return np.sqrt(2.0 / n) * y / 2.0


def _overlap_gain(n: int, terms: int, horizon: int) -> np.ndarray:
    """Power of an h-bar moving sum at the cosine frequencies relative to frequency 0: the spectrum that
    overlapping h-step forecasts alone give d, which the persistence index divides out."""
    w = np.pi * np.arange(1, terms + 1) / n
    return (np.sin(horizon * w / 2) / (horizon * np.sin(w / 2))) ** 2


def dm_batch(d: np.ndarray, horizon: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The test on each row of ``d`` (rows: loss differences at n origins one bar apart): statistic, p-value
    and persistence index per row; p is NaN where the index exceeds PERSISTENCE_LIMIT (no verdict).
    Vectorised for the benchmarks; ``diebold_mariano`` is the one-series interface."""
    d = np.atleast_2d(np.asarray(d, dtype=np.float64))
    n, h = d.shape[1], int(horizon)
    k = n // h
    q = cosine_terms(k)
    lam = (d - d.mean(axis=1, keepdims=True)) @ _cosines(n, max(k, q)).T  # a 30-day window: a small matrix
    omega = np.mean(lam[:, :q] ** 2, axis=1)
    power = lam**2 / _overlap_gain(n, lam.shape[1], h)
    weights = 1.0 / np.arange(1, lam.shape[1] + 1) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        persistence = (power @ weights / weights.sum()) / power.mean(axis=1)
        statistic = d.mean(axis=1) / np.sqrt(omega / n)
    p = 2.0 * stats.t.sf(np.abs(statistic) / persistence_allowance(k), df=q)
    p = np.where(persistence > PERSISTENCE_LIMIT, np.nan, p)
    return statistic, p, persistence


def diebold_mariano(
    loss_a: Sequence[float] | np.ndarray,
    loss_b: Sequence[float] | np.ndarray,
    horizon: int = 1,
    min_independent: int = MIN_INDEPENDENT_HORIZONS,
) -> DMResult:
    """Diebold–Mariano test of equal predictive accuracy for overlapping h-step forecasts whose size holds in
    small samples and when the loss difference is persistent (volatility regimes).

    The losses are one per origin, in origin order, one bar apart; forecasts ``horizon`` bars ahead share most
    of their future, so ``d_t = loss_a[t] - loss_b[t]`` is MA(h-1) at least, and volatility regimes add slow
    drifts. The textbook version (Newey-West, HLN correction, t(n-1)) rejects a true null 20-25 % of the time
    at 30-72 origins; an equal-weighted cosine (EWC) estimate with one term per two horizons held 5 % for
    MA(h-1) differences but rejected 10-58 % when d has an AR(1) part with a half-life of 14-138 bars
    (benchmarks/bench_dm_size.py). So:

    * the long-run variance is the EWC estimate ``(1/q) sum_j Lambda_j^2``, ``Lambda_j = sqrt(2/n) sum_t
      (d_t - dbar) cos(pi j (t - 1/2) / n)``, j = 1..q (Lazarus, Lewis, Stock and Watson 2018), with few terms,
      q = max(2, k // 5) for k = n // h independent horizons, the lowest frequencies only;
    * a persistence index compares the power of d at the lowest of k cosine frequencies (weights 1/j^2) with
      its average, after dividing out what overlap alone gives (an h-bar moving sum); above PERSISTENCE_LIMIT
      the difference drifts too slowly for k horizons to tell a drift from a mean, and ``TooPersistent`` is
      raised instead of giving a p-value;
    * ``DM = dbar / sqrt(omega / n)`` is referred to Student t with q degrees of freedom after dividing by a
      persistence allowance (2.26 at 10 horizons, 1.8 from 20), measured as the smallest that
      keeps the size at or below 6.5 % under every null of the benchmark; the measured size is at most 8 %
      from 10 horizons on (most nulls 0-4 %), which is paid for in power;
    * fewer than ``min_independent`` non-overlapping horizons raise ``TooFewHorizons``.

    A constant ``d`` (zero variance) gives ``statistic`` 0 and p 1 if the losses are identical, else ±inf and 0.
    """
    a = np.asarray(loss_a, dtype=np.float64)
    b = np.asarray(loss_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"loss series must be 1-D and of equal length, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("loss series contain non-finite values")
    h = int(horizon)
    if h != horizon or h < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    n = a.size
    k = n // h
    if k < max(int(min_independent), 2 * MIN_COSINES):
        raise TooFewHorizons(
            f"too few independent horizons: {n} paired losses at horizon {h} span {k}, the test needs {min_independent}"
        )
    q = cosine_terms(k)
    d = a - b
    dbar = float(d.mean())
    if np.ptp(d) == 0.0:
        return DMResult(0.0 if dbar == 0.0 else float(np.copysign(np.inf, dbar)), 1.0 if dbar == 0.0 else 0.0, q, n, k)
    statistic, p, persistence = (float(x[0]) for x in dm_batch(d, h))
    if not np.isfinite(persistence):  # d varies but has no component at these frequencies: no evidence
        return DMResult(0.0, 1.0, q, n, k)
    if persistence > PERSISTENCE_LIMIT:
        raise TooPersistent(
            f"loss difference too persistent for {k} independent horizons: its lowest "
            f"frequencies carry {persistence:.2f} times its average power (limit "
            f"{PERSISTENCE_LIMIT}), so a drift cannot be told from a difference in accuracy"
        )
    if not np.isfinite(statistic):  # no power at the q lowest frequencies: no evidence either way
        return DMResult(0.0, 1.0, q, n, k, persistence)
    return DMResult(statistic, p, q, n, k, persistence)


def reliability_table(
    p_forecast: Sequence[float] | np.ndarray,
    outcome: Sequence[float] | np.ndarray,
    n_bins: int = 10,
) -> list[dict[str, Any]]:
    """Reliability table of probability forecasts (e.g. P(up)) against binary outcomes.

    Equal-width bins on [0, 1]: bin i holds ``lower <= p < upper``, the last bin also holds p == 1. Every bin
    is returned; ``mean_forecast`` and ``observed_frequency`` are None for an empty one.
    Row keys: ``bin``, ``lower``, ``upper``, ``mean_forecast``, ``observed_frequency``, ``count``.
    """
    p = np.asarray(p_forecast, dtype=np.float64)
    o = np.asarray(outcome, dtype=np.float64)
    if p.ndim != 1 or p.shape != o.shape:
        raise ValueError(f"forecasts and outcomes must be 1-D and of equal length, got {p.shape} and {o.shape}")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("forecast probabilities must lie in [0, 1]")
    if not np.all((o == 0) | (o == 1)):
        raise ValueError("outcomes must be 0/1 (or booleans)")
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    index = np.minimum(np.floor(p * n_bins).astype(np.int64), int(n_bins) - 1)
    rows: list[dict[str, Any]] = []
    for i in range(int(n_bins)):
        mask = index == i
        count = int(mask.sum())
        rows.append(
            {
                "bin": i,
                "lower": float(edges[i]),
                "upper": float(edges[i + 1]),
                "mean_forecast": float(p[mask].mean()) if count else None,
                "observed_frequency": float(o[mask].mean()) if count else None,
                "count": count,
            }
        )
    return rows


def pit_histogram(pit: Sequence[float] | np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Counts of PIT values in equal-width bins on [0, 1] (bin i: ``i/n <= u < (i+1)/n``; u == 1 in the last)."""
    u = np.asarray(pit, dtype=np.float64)
    if u.ndim != 1:
        raise ValueError(f"PIT values must be 1-D, got shape {u.shape}")
    if not np.all(np.isfinite(u)) or np.any((u < 0) | (u > 1)):
        raise ValueError("PIT values must lie in [0, 1]")
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    index = np.minimum(np.floor(u * n_bins).astype(np.int64), int(n_bins) - 1)
    return np.bincount(index, minlength=int(n_bins)).astype(np.int64)
