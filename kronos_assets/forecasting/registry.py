"""Builds the forecasters a profile names, once per process, so a model is loaded once per run."""

from __future__ import annotations

from typing import Callable

from kronos_assets.forecasting.baselines import RandomWalk, RandomWalkVol
from kronos_assets.forecasting.interface import Forecaster

BASELINE_FACTORIES: dict[str, Callable[[], Forecaster]] = {
    "random_walk": RandomWalk,
    "random_walk_vol": RandomWalkVol,
}


class ForecasterRegistry:
    def __init__(self, factories: dict[str, Callable[[], Forecaster]] | None = None):
        self._factories = dict(BASELINE_FACTORIES) | dict(factories or {})
        self._built: dict[str, Forecaster] = {}

    def get(self, name: str) -> Forecaster:
        if name not in self._built:
            if name not in self._factories:
                raise KeyError(f"no forecaster named {name!r}; known: {', '.join(sorted(self._factories))}")
            self._built[name] = self._factories[name]()
        return self._built[name]
