"""Dagster wiring, grouped by stage: ingest, forecast, evaluate, publish, and the automation that runs them.

Each module holds factories that build one timeframe's assets from the validated settings; ``factory`` puts a
timeframe's family together and ``kronos_assets.definitions`` assembles the code location.
"""
