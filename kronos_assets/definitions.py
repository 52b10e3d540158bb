"""The kronos_assets code location: the settings of the chosen profile, validated, turned into definitions."""

import dagster as dg

from kronos_assets.defs.factory import build_definitions
from kronos_assets.settings import load_settings


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_settings())
