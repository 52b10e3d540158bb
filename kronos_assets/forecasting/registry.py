"""Builds the forecasters a profile names, once per process, so a model is loaded once per run."""

from __future__ import annotations

from functools import partial
from typing import Callable, Mapping

from kronos_assets.forecasting import kinds
from kronos_assets.forecasting.interface import Forecaster


class ForecasterRegistry:
    """Name -> factory; the built-in baselines are always there, ``factories`` add to or replace them."""

    def __init__(self, factories: dict[str, Callable[[], Forecaster]] | None = None):
        self._factories = {name: partial(kinds.build, spec) for name, spec in kinds.BUILTIN.items()}
        self._factories |= dict(factories or {})
        self._built: dict[str, Forecaster] = {}

    @classmethod
    def from_specs(cls, specs: Mapping[str, kinds.ModelSpec]) -> ForecasterRegistry:
        """Every configured model, each loaded by its kind when a run first asks for it."""
        return cls({name: partial(kinds.build, spec) for name, spec in specs.items()})

    def get(self, name: str) -> Forecaster:
        if name not in self._built:
            if name not in self._factories:
                raise KeyError(f"no forecaster named {name!r}; known: {', '.join(sorted(self._factories))}")
            self._built[name] = self._factories[name]()
        return self._built[name]
