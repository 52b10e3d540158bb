"""The kronos_assets code location: the settings of the chosen profile, validated, turned into definitions, and
whatever else the defs folder holds (``dg scaffold defs`` output: module-level assets, jobs, sensors, components)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from kronos_assets.configuration.settings import Settings, load_settings
from kronos_assets.defs.factory import build_definitions


def code_location(settings: Settings, resources: dict[str, Any] | None = None) -> dg.Definitions:
    """The timeframe families built from the settings, merged with the definitions found in the defs folder (the
    factories' modules define nothing at module level, so only added files contribute)."""
    return dg.Definitions.merge(
        build_definitions(settings, resources), dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    )


@dg.definitions
def defs() -> dg.Definitions:
    return code_location(load_settings())
