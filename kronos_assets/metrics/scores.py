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
* ``winkler_80`` is the interval score of the 80 % band: width + (2 / 0.2) x the distance outside it.
* ``p_up_hit`` is 1.0 when P(up) > 0.5 and the close rose or P(up) < 0.5 and it did not; None at exactly 0.5.

Which scores there are, and how each is computed, is the metric registry's (``kronos_assets.metrics.registry``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kronos_assets.metrics.registry import INTERVALS, Inputs, metrics, row_keys
from kronos_assets.metrics.rules import crps_samples, pinball_loss, pit_values, realised_path_volatility

QUANTILE_LEVELS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
__all__ = [
    "INTERVALS",
    "QUANTILE_LEVELS",
    "ROW_KEYS",
    "crps_samples",
    "pinball_loss",
    "pit_values",
    "realised_path_volatility",
    "score_paths",
]

ROW_KEYS: tuple[str, ...] = row_keys()  # as registered at import; score_paths reads the registry at call time


def validate_inputs(
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


def finite_or_none(v: Any) -> float | None:
    """A score as stored: None for a missing or non-finite value."""
    return None if v is None or not np.isfinite(v) else float(v)


def score_paths(
    close_paths: np.ndarray,
    realised_close: np.ndarray,
    last_close: float,
    quantile_levels: tuple[float, ...] = QUANTILE_LEVELS,
    p_vol_amp: float | None = None,
    recent_vol: float | None = None,
) -> list[dict[str, Any]]:
    """Score one forecast: one row per horizon step 1..H with ``step`` and every registered metric.

    ``close_paths`` is (n_paths, H), ``realised_close`` is (H,). ``brier_vol_amp`` is set on the last step only
    and only when ``p_vol_amp`` and ``recent_vol`` are given; it is None elsewhere.
    """
    paths, realised, last, levels = validate_inputs(
        close_paths, realised_close, last_close, quantile_levels, p_vol_amp, recent_vol
    )
    horizon = paths.shape[1]
    inputs = Inputs(paths, realised, last, levels, p_vol_amp, recent_vol)
    rows: list[dict[str, Any]] = [{"step": k + 1} for k in range(horizon)]
    for m in metrics():
        if m.last_step_only:
            value = finite_or_none(m.compute(inputs))
            for k, row in enumerate(rows):
                row[m.name] = value if k == horizon - 1 else None
            continue
        values = np.asarray(m.compute(inputs), dtype=np.float64).tolist()  # Python floats, one call
        for row, v in zip(rows, values):
            row[m.name] = None if v != v else v  # NaN: no value at this step (p_up_hit without a call)
    return rows
