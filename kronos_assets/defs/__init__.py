"""Dagster wiring, grouped by stage: ingest, forecast, evaluate, publish, and the automation that runs them.

Each module holds factories that build one timeframe's assets from the validated settings; ``factory`` puts a
timeframe's family together and ``kronos_assets.definitions`` assembles the code location.
"""

import warnings

import dagster as dg

# The graph relies on a few beta/preview APIs on purpose: backfill policies (many partitions per run), the
# multi-partition and time-window mappings that tie symbol x bar assets to symbol x day candles, and
# map_resolved_asset_specs to attach freshness policies. Their warnings would repeat on every load without
# telling a user anything actionable.
for _beta in (
    r"Parameter `backfill_policy`",
    r"Class `MultiPartitionMapping`",
    r"Parameter `allow_nonexistent_upstream_partitions`",
):
    warnings.filterwarnings("ignore", message=_beta, category=dg.BetaWarning)
warnings.filterwarnings(
    "ignore", message=r"Function `Definitions.map_resolved_asset_specs`", category=dg.PreviewWarning
)
