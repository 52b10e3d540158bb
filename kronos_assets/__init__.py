"""kronos_assets: hourly Kronos forecasts of crypto markets with an honest, public track record.

Libraries (``market``, ``forecasting``, ``kronos``, ``metrics``, ``publishing``, ``warehouse``) know nothing
of Dagster; ``defs`` is the thin Dagster wiring over them and ``definitions`` is the code location's entry.
"""

from kronos_assets import environment

__version__ = "0.1.0"

# Before torch loads OpenMP (kronos/ and training/ import it): idle OpenMP threads sleep instead of spinning. Kronos
# generation runs thousands of small ops; with spinning threads, 2 intra-op threads on 2 cores shared with other
# processes made a Kronos-mini request 10-30x slower (measured 5-19 s instead of 0.6-0.7 s at load 5.8). Only a
# default: a value set in the environment wins. It has no effect in a process that imported torch before this.
environment.prefer_passive_openmp()
