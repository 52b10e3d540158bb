"""The forecaster interface every model (baselines, Kronos) implements.

A forecaster turns candle histories into sample paths of the fields it forecasts (``fields``: all of PATH_FIELDS
unless it says otherwise; close always, since scores need it). Everything downstream (summaries, storage, scores,
charts) works from the paths alone, so a new model plugs in by implementing ``forecast_batch`` (and is made
configurable by a kind: forecasting/kinds/).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, Sequence

import numpy as np
import polars as pl

# Order of the last axis of a path array.
PATH_FIELDS = ("open", "high", "low", "close", "volume", "amount")
CLOSE = PATH_FIELDS.index("close")
VOLUME = PATH_FIELDS.index("volume")


MAX_PATHS = 1000  # sample paths a forecast may draw (profiles, training's evaluation, the ad-hoc launchpad)


@dataclass(frozen=True)
class SamplingOptions:
    """How a profile samples, whatever the horizon (models.yaml ``sampling``); a timeframe's horizon makes it a
    ``Sampling``. Holding no horizon, it cannot carry a wrong one."""

    n_paths: int = 30
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 0
    seed: int = 0

    def for_horizon(self, horizon: int) -> Sampling:
        return Sampling(self.n_paths, horizon, self.temperature, self.top_p, self.top_k, self.seed)


@dataclass(frozen=True)
class Sampling:
    """How many paths, how far, and how to sample them. ``seed`` is the profile's base seed."""

    n_paths: int = 30
    horizon: int = 24
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 0
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_paths": self.n_paths,
            "horizon": self.horizon,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class ForecastRequest:
    """One series to forecast at one origin.

    ``history`` is a candle frame (see market.schema) whose bars all closed at or before ``origin``;
    ``future_ts`` holds the open times of the ``horizon`` bars to forecast. ``seed`` is this request's own
    seed: a forecaster must make the paths of a request depend only on the request and its seed, never on
    which other requests share the batch, so that live runs and batched backtests agree.
    """

    symbol: str
    timeframe: str
    origin: datetime
    history: pl.DataFrame
    future_ts: Sequence[datetime]
    seed: int


@dataclass
class Forecast:
    request: ForecastRequest
    model: str
    paths: np.ndarray  # float64, shape (n_paths, horizon, len(PATH_FIELDS))
    provenance: dict[str, Any] = field(default_factory=dict)


class Forecaster(Protocol):
    """Optionally also ``fields`` (the PATH_FIELDS it forecasts; the others are stored as NaN) and
    ``request_provenance(request)`` (what is particular to one request, e.g. a fit's outcome)."""

    name: str

    def forecast_batch(self, requests: Sequence[ForecastRequest], sampling: Sampling) -> list[np.ndarray]:
        """Sample paths for each request: one array of shape (n_paths, horizon, 6) per request, in order."""
        ...

    def provenance(self) -> dict[str, Any]:
        """Model identity recorded with every forecast (repo, revision, checkpoint sha256, ...)."""
        ...


def request_seed(base_seed: int, symbol: str, timeframe: str, origin: datetime, model: str) -> int:
    """A stable 63-bit seed per (series, origin, model): the same inputs always give the same paths."""
    key = f"{base_seed}|{symbol}|{timeframe}|{origin.isoformat()}|{model}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


def run_forecaster(forecaster: Forecaster, requests: Sequence[ForecastRequest], sampling: Sampling) -> list[Forecast]:
    """Run a forecaster and check what it returns, so a faulty model fails loudly instead of storing junk."""
    if not requests:
        return []
    arrays = forecaster.forecast_batch(requests, sampling)
    if len(arrays) != len(requests):
        raise ValueError(f"{forecaster.name}: returned {len(arrays)} results for {len(requests)} requests")
    fields = tuple(getattr(forecaster, "fields", PATH_FIELDS))
    if "close" not in fields or not set(fields) <= set(PATH_FIELDS):
        raise ValueError(f"{forecaster.name}: forecasts {fields}; it must forecast close, within {PATH_FIELDS}")
    prices = [i for i, f in enumerate(PATH_FIELDS[:4]) if f in fields]
    absent = [i for i, f in enumerate(PATH_FIELDS) if f not in fields]
    per_request = getattr(forecaster, "request_provenance", None)
    out = []
    expected = (sampling.n_paths, sampling.horizon, len(PATH_FIELDS))
    for req, arr in zip(requests, arrays):
        arr = np.asarray(arr, dtype=np.float64)
        if arr.shape != expected:
            raise ValueError(f"{forecaster.name}: paths for {req.symbol} have shape {arr.shape}, want {expected}")
        if not np.isfinite(arr[..., prices]).all():
            raise ValueError(f"{forecaster.name}: non-finite prices in the paths for {req.symbol} @ {req.origin}")
        if absent:  # a field the model does not forecast is never a made-up number
            arr = arr.copy()
            arr[..., absent] = np.nan
        provenance = forecaster.provenance() | (per_request(req) if per_request else {})
        out.append(Forecast(request=req, model=forecaster.name, paths=arr, provenance=provenance))
    return out
