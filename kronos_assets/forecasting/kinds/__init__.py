"""Model kinds. A kind (one module) declares the schema of its models.yaml options and the type it validates them
to, loads its forecaster, says where it comes from and, if it has any, fetches its weights and names the revisions
to watch (see base.Kind); it registers itself in ``KINDS`` when imported. Importing this package imports the
built-in kinds, so the registry is full for whoever reads it (configuration/settings.py names no kind).
A models.yaml entry names its ``kind:``; an entry without one is of ``DEFAULT_KIND``."""

from __future__ import annotations

from kronos_assets.forecasting.interface import Forecaster

# The built-in kinds, each registering itself; this order is the order errors list the known kinds in.
from kronos_assets.forecasting.kinds import (
    baselines,  # noqa: F401, I001
    garch,  # noqa: F401
    kronos,  # noqa: F401
)
from kronos_assets.forecasting.kinds.base import KINDS, Kind, ModelSpec, register

DEFAULT_KIND = "kronos"

# Forecasters a profile names without a models.yaml entry (their names are reserved).
BUILTIN: dict[str, ModelSpec] = {
    "random_walk": ModelSpec("random_walk", "random_walk", 24),
    "random_walk_vol": ModelSpec("random_walk_vol", "random_walk_vol", 168),
}
BASELINES = tuple(BUILTIN)  # the reference forecasters every record is scored against


def kind_of(spec: ModelSpec) -> Kind:
    return KINDS[spec.kind]


def build(spec: ModelSpec) -> Forecaster:
    return kind_of(spec).build(spec.key, spec.options)


__all__ = ["BASELINES", "BUILTIN", "DEFAULT_KIND", "KINDS", "Kind", "ModelSpec", "build", "kind_of", "register"]
