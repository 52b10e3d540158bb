"""kronos_assets: hourly Kronos forecasts of crypto markets with an honest, public track record.

Libraries (``market``, ``forecasting``, ``kronos``, ``metrics``, ``publishing``, ``warehouse``) know nothing
of Dagster; ``defs`` is the thin Dagster wiring over them and ``definitions`` is the code location's entry.
"""

from kronos_assets import environment

__version__ = "0.1.0"

# Before torch loads OpenMP (kronos/ and training/ import it): idle OpenMP threads spin briefly, then sleep.
# Kronos generation runs thousands of small ops; with long spinning, 2 intra-op threads on 2 cores shared with
# other processes made a Kronos-mini request 10-30x slower, and sleeping at once doubled it on a quiet machine
# (environment.bound_openmp_spinning). Only a default: a policy or count set in the environment wins. It has no
# effect in a process that imported torch before this.
environment.bound_openmp_spinning()
