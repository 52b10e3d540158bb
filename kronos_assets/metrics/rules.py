"""Scoring rules on arrays (numpy only): the building blocks of the registered metrics (``registry``)."""

from __future__ import annotations

import numpy as np


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
