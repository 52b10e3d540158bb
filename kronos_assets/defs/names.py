"""Names of the jobs and the track record asset, apart from the modules that build them, so that the main job can
look at what is stored without importing the asset modules (and torch, scipy) on a tick with nothing to do."""

from __future__ import annotations

import dagster as dg

from kronos_assets.defs.partitions import MARKETS, Family

TRACK_RECORD_INPUTS = "evaluations_digest"  # track record metadata: the scores it was computed from


def candles_job_name(tf: str, family: Family = MARKETS) -> str:
    return f"candles{family.suffix}_{tf}"


def forecast_job_name(tf: str, family: Family = MARKETS) -> str:
    return f"forecast{family.suffix}_{tf}"


def track_record_key(tf: str) -> dg.AssetKey:
    return dg.AssetKey([tf, "track_record"])
