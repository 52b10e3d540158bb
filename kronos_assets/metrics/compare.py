"""Aggregates for scoreboards: point-error summaries, skill scores, the Diebold–Mariano test, a reliability table
for P(up) and a PIT histogram.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats


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


def diebold_mariano(
    loss_a: Sequence[float] | np.ndarray,
    loss_b: Sequence[float] | np.ndarray,
    horizon: int = 1,
) -> tuple[float, float]:
    """Diebold–Mariano test of equal predictive accuracy with the Harvey–Leybourne–Newbold correction.

    ``d_t = loss_a[t] - loss_b[t]``; a positive statistic means forecast A has the larger mean loss (B is better).
    The long-run variance of ``d`` is ``gamma_0 + 2 * sum_{k=1}^{h-1} gamma_k`` with the autocovariances
    ``gamma_k = (1/n) sum_{t>k} (d_t - dbar)(d_{t-k} - dbar)`` (the MA(h-1) dependence of overlapping
    h-step forecasts). ``DM = dbar / sqrt(V / n)``, scaled by ``sqrt((n + 1 - 2h + h(h-1)/n) / n)``; the
    two-sided p-value is from Student t with n-1 degrees of freedom.

    Degenerate cases, handled explicitly:
    * ``d`` constant (zero variance): ``(0.0, 1.0)`` if the losses are identical, else ``(±inf, 0.0)``.
    * a non-positive long-run variance (possible with h > 1, the rectangular window is not guaranteed
      positive): it falls back to ``gamma_0`` alone.
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
    if n < 2:
        raise ValueError(f"need at least 2 paired losses, got {n}")
    hln = (n + 1 - 2 * h + h * (h - 1) / n) / n
    if hln <= 0:
        raise ValueError(f"too few losses ({n}) for horizon {h}: the HLN correction is not positive")

    d = a - b
    dbar = float(d.mean())
    if np.ptp(d) == 0.0:
        if dbar == 0.0:
            return 0.0, 1.0
        return float(np.copysign(np.inf, dbar)), 0.0

    e = d - dbar
    gamma = [float(np.dot(e[k:], e[: n - k]) / n) for k in range(min(h, n))]
    variance = gamma[0] + 2.0 * sum(gamma[1:])
    if variance <= 0.0:
        variance = gamma[0]
    dm = dbar / np.sqrt(variance / n)
    statistic = float(dm * np.sqrt(hln))
    p_value = float(2.0 * stats.t.sf(abs(statistic), df=n - 1))
    return statistic, p_value


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
