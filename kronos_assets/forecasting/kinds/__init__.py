"""Model kinds, registered here. A kind (one module) declares the schema of its models.yaml options, loads its
forecaster, says where it comes from and, if it has any, fetches its weights and names the revisions to watch
(see base.Kind).
A models.yaml entry names its ``kind:``; an entry without one is a Kronos checkpoint."""

from __future__ import annotations

from kronos_assets.forecasting.interface import Forecaster
from kronos_assets.forecasting.kinds import garch, kronos
from kronos_assets.forecasting.kinds.base import Kind, ModelSpec
from kronos_assets.forecasting.kinds.baselines import RANDOM_WALK, RANDOM_WALK_VOL

KINDS: dict[str, Kind] = {k.name: k for k in (RANDOM_WALK, RANDOM_WALK_VOL, kronos.KIND, garch.KIND)}
DEFAULT_KIND = "kronos"

# Forecasters a profile names without a models.yaml entry (their names are reserved).
BUILTIN: dict[str, ModelSpec] = {
    "random_walk": ModelSpec("random_walk", "random_walk", 24),
    "random_walk_vol": ModelSpec("random_walk_vol", "random_walk_vol", 168),
}


def kind_of(spec: ModelSpec) -> Kind:
    return KINDS[spec.kind]


def build(spec: ModelSpec) -> Forecaster:
    return kind_of(spec).build(spec.key, spec.options)


__all__ = ["BUILTIN", "DEFAULT_KIND", "KINDS", "Kind", "ModelSpec", "build", "kind_of"]
