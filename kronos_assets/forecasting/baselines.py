"""Baseline forecasters every model is scored against.

* ``random_walk``: tomorrow looks like today. Every path stays at the last close (a point forecast; its CRPS is
  its absolute error), volume at its recent mean.
* ``random_walk_vol``: a driftless random walk whose Gaussian log returns have the rolling historical volatility
  of the last ``vol_window`` bars; it gives honest sample paths that a model has to beat to claim skill.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from kronos_assets.forecasting.interface import PATH_FIELDS, ForecastRequest, Sampling


def _recent(request: ForecastRequest, column: str, n: int) -> np.ndarray:
    values = request.history[column].to_numpy().astype(np.float64)
    if values.size == 0:
        raise ValueError(f"{request.symbol} @ {request.origin}: empty history")
    return values[-n:]


class RandomWalk:
    name = "random_walk"

    def __init__(self, volume_window: int = 24, name: str = name):
        self.volume_window = volume_window
        self.name = name

    def provenance(self) -> dict[str, Any]:
        return {"model": self.name, "kind": "baseline", "volume_window": self.volume_window}

    def forecast_batch(self, requests: Sequence[ForecastRequest], sampling: Sampling) -> list[np.ndarray]:
        out = []
        for req in requests:
            last = _recent(req, "close", 1)[-1]
            vol = float(np.nanmean(_recent(req, "volume", self.volume_window)))
            paths = np.empty((sampling.n_paths, sampling.horizon, len(PATH_FIELDS)))
            paths[..., :4] = last
            paths[..., 4] = vol
            paths[..., 5] = vol * last
            out.append(paths)
        return out


class RandomWalkVol:
    name = "random_walk_vol"

    def __init__(self, vol_window: int = 168, name: str = name):
        self.vol_window = vol_window
        self.name = name

    def provenance(self) -> dict[str, Any]:
        return {"model": self.name, "kind": "baseline", "vol_window": self.vol_window}

    def forecast_batch(self, requests: Sequence[ForecastRequest], sampling: Sampling) -> list[np.ndarray]:
        out = []
        n, h = sampling.n_paths, sampling.horizon
        for req in requests:
            closes = _recent(req, "close", self.vol_window + 1)
            if closes.size < 3:
                raise ValueError(f"{req.symbol} @ {req.origin}: random_walk_vol needs >= 3 closes, got {closes.size}")
            sigma = float(np.std(np.diff(np.log(closes)), ddof=1))
            volumes = _recent(req, "volume", self.vol_window)
            rng = np.random.default_rng(req.seed)
            steps = rng.standard_normal((n, h)) * sigma
            close = closes[-1] * np.exp(np.cumsum(steps, axis=1))
            open_ = np.concatenate([np.full((n, 1), closes[-1]), close[:, :-1]], axis=1)
            wick = np.abs(rng.standard_normal((2, n, h))) * sigma * 0.5
            volume = rng.choice(volumes, size=(n, h), replace=True)
            paths = np.stack(
                [
                    open_,
                    np.maximum(open_, close) * np.exp(wick[0]),
                    np.minimum(open_, close) * np.exp(-wick[1]),
                    close,
                    volume,
                    volume * (open_ + close) / 2,
                ],
                axis=-1,
            )
            out.append(paths)
        return out
