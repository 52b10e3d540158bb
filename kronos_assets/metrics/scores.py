"""Per-forecast scores of sample-path forecasts against the realised closes.

All probabilistic scores (CRPS, pinball, interval coverage and width, PIT) are computed on log returns
relative to the last observed close, ``log(close / last_close)``, so they are comparable across price levels.
Point errors (``abs_error``, ``sq_error``, ``ape``) are on the close itself, for the median path.

Conventions
-----------
* ``direction_hit`` compares the three-way signs (-1, 0, +1) of ``median - last_close`` and
  ``realised - last_close``: it is 1.0 when they are equal and 0.0 otherwise. An exactly flat forecast
  (median == last close, e.g. the random-walk baseline) therefore hits only an exactly flat realisation and
  misses every real move; a flat realisation is hit only by an exactly flat median. Comparisons are exact,
  with no tolerance.
* ``covered_*`` are 1.0/0.0; an interval is closed (``lo <= y <= hi``). Central intervals use the sample
  quantiles (numpy's default linear interpolation) at (0.25, 0.75), (0.1, 0.9) and (0.05, 0.95).
* ``pit`` counts samples equal to the realised value as half.
* ``p_up`` and ``brier_vol_amp`` follow ``kronos_assets.forecasting.summary`` (strict inequalities).
* ``ape`` is in percent: ``100 * |median - realised| / realised``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILE_LEVELS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
INTERVALS: dict[int, tuple[float, float]] = {50: (0.25, 0.75), 80: (0.1, 0.9), 90: (0.05, 0.95)}

ROW_KEYS: tuple[str, ...] = (
    "step",
    "median",
    "realised",
    "abs_error",
    "sq_error",
    "ape",
    "direction_hit",
    "crps",
    "pinball",
    "covered_50",
    "covered_80",
    "covered_90",
    "width_50",
    "width_80",
    "width_90",
    "pit",
    "p_up",
    "brier_up",
    "brier_vol_amp",
)


def crps_samples(samples: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Fair (unbiased) sample CRPS per column.

    ``samples`` is (m, k), ``observed`` is (k,). Returns (k,) with
    ``mean_i |X_i - y| - sum_{i,j} |X_i - X_j| / (2 m (m - 1))``; the second term is 0 when m == 1, so a single
    sample scores its absolute error.
    """
    x = np.asarray(samples, dtype=np.float64)
    y = np.asarray(observed, dtype=np.float64)
    m = x.shape[0]
    term1 = np.mean(np.abs(x - y[None, :]), axis=0)
    if m == 1:
        return term1
    # sum_{i<j} |X_i - X_j| = sum_k k (m - k) (x_(k+1) - x_(k)) over the gaps of the sorted samples; the ordered
    # double sum is twice that. Gaps are >= 0 and exactly 0 for equal samples, so no cancellation error.
    gaps = np.diff(np.sort(x, axis=0), axis=0)
    k = np.arange(1, m, dtype=np.float64)
    half_pair_sum = ((k * (m - k))[:, None] * gaps).sum(axis=0)
    # Mathematically term1 >= pair term (triangle inequality); the clip only removes rounding noise.
    return np.maximum(term1 - 2.0 * half_pair_sum / (2.0 * m * (m - 1)), 0.0)


def pinball_loss(quantiles: np.ndarray, levels: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Mean pinball loss over the levels per column: ``quantiles`` (L, k), ``levels`` (L,), ``observed`` (k,)."""
    tau = np.asarray(levels, dtype=np.float64)[:, None]
    diff = np.asarray(observed, dtype=np.float64)[None, :] - np.asarray(quantiles, dtype=np.float64)
    return np.mean(np.maximum(tau * diff, (tau - 1.0) * diff), axis=0)


def pit_values(samples: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Share of samples below the observed value per column, ties counted half."""
    x = np.asarray(samples, dtype=np.float64)
    y = np.asarray(observed, dtype=np.float64)[None, :]
    return np.mean(x < y, axis=0) + 0.5 * np.mean(x == y, axis=0)


def realised_path_volatility(realised_close: np.ndarray, last_close: float) -> float:
    """Sample std (ddof 1) of the H log returns of [last close, realised closes] (as ``summary.path_volatility``)."""
    full = np.concatenate([[float(last_close)], np.asarray(realised_close, dtype=np.float64)])
    return float(np.std(np.diff(np.log(full)), ddof=1))


def _validate(
    close_paths: Any,
    realised_close: Any,
    last_close: Any,
    quantile_levels: Any,
    p_vol_amp: float | None,
    recent_vol: float | None,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    paths = np.asarray(close_paths, dtype=np.float64)
    if paths.ndim != 2 or paths.shape[0] < 1 or paths.shape[1] < 1:
        raise ValueError(f"close_paths must be a non-empty 2-D array (n_paths, horizon), got shape {paths.shape}")
    realised = np.asarray(realised_close, dtype=np.float64)
    if realised.ndim != 1 or realised.shape[0] != paths.shape[1]:
        raise ValueError(
            f"realised_close must be 1-D with the horizon {paths.shape[1]} of close_paths, got shape {realised.shape}"
        )
    if not np.all(np.isfinite(paths)):
        raise ValueError("close_paths contains non-finite values")
    if not np.all(np.isfinite(realised)):
        raise ValueError("realised_close contains non-finite values")
    if np.any(paths <= 0):
        raise ValueError("close_paths must be strictly positive prices")
    if np.any(realised <= 0):
        raise ValueError("realised_close must be strictly positive prices")
    try:
        last = float(last_close)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"last_close must be a number, got {last_close!r}") from exc
    if not np.isfinite(last) or last <= 0:
        raise ValueError(f"last_close must be a finite positive price, got {last}")
    levels = np.asarray(quantile_levels, dtype=np.float64)
    if levels.ndim != 1 or levels.size == 0 or not np.all((levels > 0) & (levels < 1)):
        raise ValueError(f"quantile_levels must be a non-empty sequence of levels in (0, 1), got {quantile_levels!r}")
    if (p_vol_amp is None) != (recent_vol is None):
        raise ValueError("p_vol_amp and recent_vol must be given together (or both left None)")
    if p_vol_amp is not None and recent_vol is not None:
        if not np.isfinite(p_vol_amp) or not 0.0 <= p_vol_amp <= 1.0:
            raise ValueError(f"p_vol_amp must be a probability in [0, 1], got {p_vol_amp}")
        if not np.isfinite(recent_vol) or recent_vol < 0:
            raise ValueError(f"recent_vol must be finite and non-negative, got {recent_vol}")
        if paths.shape[1] < 2:
            raise ValueError("brier_vol_amp needs a horizon of at least 2 (sample std of the H log returns)")
    return paths, realised, last, levels


def score_paths(
    close_paths: np.ndarray,
    realised_close: np.ndarray,
    last_close: float,
    quantile_levels: tuple[float, ...] = QUANTILE_LEVELS,
    p_vol_amp: float | None = None,
    recent_vol: float | None = None,
) -> list[dict[str, Any]]:
    """Score one forecast: one row per horizon step 1..H with the keys of ``ROW_KEYS``.

    ``close_paths`` is (n_paths, H), ``realised_close`` is (H,). ``brier_vol_amp`` is set on the last step only
    and only when ``p_vol_amp`` and ``recent_vol`` are given; it is None elsewhere.
    """
    paths, realised, last, levels = _validate(
        close_paths, realised_close, last_close, quantile_levels, p_vol_amp, recent_vol
    )
    horizon = paths.shape[1]

    median = np.median(paths, axis=0)
    abs_error = np.abs(median - realised)
    ape = 100.0 * abs_error / realised
    direction_hit = (np.sign(median - last) == np.sign(realised - last)).astype(np.float64)

    x = np.log(paths / last)
    y = np.log(realised / last)
    crps = crps_samples(x, y)
    pinball = pinball_loss(np.quantile(x, levels, axis=0), levels, y)
    pit = pit_values(x, y)
    p_up = np.mean(paths > last, axis=0)
    up = (realised > last).astype(np.float64)
    brier_up = (p_up - up) ** 2

    intervals: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for name, (lo_level, hi_level) in INTERVALS.items():
        lo, hi = np.quantile(x, [lo_level, hi_level], axis=0)
        intervals[name] = (((lo <= y) & (y <= hi)).astype(np.float64), hi - lo)

    brier_vol: float | None = None
    if p_vol_amp is not None and recent_vol is not None:
        amplified = 1.0 if realised_path_volatility(realised, last) > recent_vol else 0.0
        brier_vol = (float(p_vol_amp) - amplified) ** 2

    rows: list[dict[str, Any]] = []
    for k in range(horizon):
        rows.append(
            {
                "step": k + 1,
                "median": float(median[k]),
                "realised": float(realised[k]),
                "abs_error": float(abs_error[k]),
                "sq_error": float(abs_error[k] ** 2),
                "ape": float(ape[k]),
                "direction_hit": float(direction_hit[k]),
                "crps": float(crps[k]),
                "pinball": float(pinball[k]),
                "covered_50": float(intervals[50][0][k]),
                "covered_80": float(intervals[80][0][k]),
                "covered_90": float(intervals[90][0][k]),
                "width_50": float(intervals[50][1][k]),
                "width_80": float(intervals[80][1][k]),
                "width_90": float(intervals[90][1][k]),
                "pit": float(pit[k]),
                "p_up": float(p_up[k]),
                "brier_up": float(brier_up[k]),
                "brier_vol_amp": brier_vol if k == horizon - 1 else None,
            }
        )
    return rows
