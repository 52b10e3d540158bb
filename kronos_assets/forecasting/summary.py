"""Summaries of sample paths: quantiles, mean and median paths, and the two probabilities of the live demo.

P(up) is the share of paths whose close at the horizon is strictly above the last observed close. P(volatility
amplification) is the share of paths whose volatility (sample std, ddof 1, of the H log returns of
[last close, H path closes]) exceeds the recent realised volatility (sample std of the log returns within the
last H observed closes). Both follow the Kronos live demo's definitions, generalised from 24 to any horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANTILE_LEVELS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


@dataclass(frozen=True)
class PathSummary:
    quantiles: np.ndarray  # (len(levels), horizon) of close
    levels: tuple[float, ...]
    mean_close: np.ndarray  # (horizon,)
    median_close: np.ndarray  # (horizon,)
    mean_volume: np.ndarray  # (horizon,)
    median_volume: np.ndarray  # (horizon,)
    p_up: float
    p_vol_amp: float
    recent_vol: float


def recent_volatility(history_close: np.ndarray, horizon: int) -> float:
    """Sample std of the log returns within the last ``horizon`` observed closes."""
    closes = np.asarray(history_close, dtype=np.float64)[-horizon:]
    if closes.size < 3:
        raise ValueError(f"need at least 3 observed closes for the recent volatility, got {closes.size}")
    return float(np.std(np.diff(np.log(closes)), ddof=1))


def path_volatility(close_paths: np.ndarray, last_close: float) -> np.ndarray:
    """Per path: sample std of the log returns of [last close, path closes]."""
    full = np.concatenate([np.full((close_paths.shape[0], 1), last_close), close_paths], axis=1)
    return np.std(np.diff(np.log(full), axis=1), axis=1, ddof=1)


def summarise(
    close_paths: np.ndarray,
    volume_paths: np.ndarray,
    history_close: np.ndarray,
    levels: tuple[float, ...] = QUANTILE_LEVELS,
) -> PathSummary:
    close_paths = np.asarray(close_paths, dtype=np.float64)
    horizon = close_paths.shape[1]
    last_close = float(history_close[-1])
    recent = recent_volatility(history_close, horizon)
    return PathSummary(
        quantiles=np.quantile(close_paths, levels, axis=0),
        levels=tuple(levels),
        mean_close=close_paths.mean(axis=0),
        median_close=np.median(close_paths, axis=0),
        mean_volume=np.asarray(volume_paths).mean(axis=0),
        median_volume=np.median(volume_paths, axis=0),
        p_up=float(np.mean(close_paths[:, -1] > last_close)),
        p_vol_amp=float(np.mean(path_volatility(close_paths, last_close) > recent)),
        recent_vol=recent,
    )
