"""kronos_assets: hourly Kronos forecasts of crypto markets with an honest, public track record.

Libraries (``market``, ``forecasting``, ``kronos``, ``metrics``, ``publishing``, ``warehouse``) know nothing
of Dagster; ``defs`` is the thin Dagster wiring over them and ``definitions`` is the code location's entry.
"""

__version__ = "0.1.0"
