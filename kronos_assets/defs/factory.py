"""The asset factory: one family of assets, checks, jobs, a schedule and a sensor per configured timeframe."""

from __future__ import annotations

from typing import Any

import dagster as dg

from kronos_assets.defs.automation import build_automation
from kronos_assets.defs.evaluate import build_evaluations
from kronos_assets.defs.forecast import build_forecasts
from kronos_assets.defs.ingest import build_ingest
from kronos_assets.defs.partitions import bar_partitions
from kronos_assets.defs.publish import build_published
from kronos_assets.defs.resources import build_resources
from kronos_assets.settings import Settings, TimeframeSettings


def candles_job_name(tf: str) -> str:
    return f"candles_{tf}"


def forecast_job_name(tf: str) -> str:
    return f"forecast_{tf}"


def build_timeframe(settings: Settings, tf: TimeframeSettings) -> dg.Definitions:
    (raw, clean), checks = build_ingest(settings, tf)
    forecasts = build_forecasts(settings, tf)
    evaluations = build_evaluations(settings, tf)
    published = build_published(settings, tf)
    candles_job = dg.define_asset_job(
        candles_job_name(tf.name),
        selection=dg.AssetSelection.assets(raw, clean),
        description=f"Fetch and clean {tf.name} candles for a symbol and day (or a range of days).",
    )
    forecast_job = dg.define_asset_job(
        forecast_job_name(tf.name),
        selection=dg.AssetSelection.assets(forecasts, evaluations, published),
        description=(f"Forecast, score and publish {tf.name} bars; over a range of past bars it is a rolling-origin "
                     "backtest run by the same code as live."),
    )
    schedule, sensor = build_automation(settings, tf, candles_job, forecast_job)
    return dg.Definitions(
        assets=[raw, clean, forecasts, evaluations, published],
        asset_checks=checks,
        jobs=[candles_job, forecast_job],
        schedules=[schedule],
        sensors=[sensor],
    )


def build_definitions(settings: Settings, resources: dict[str, Any] | None = None) -> dg.Definitions:
    families = [build_timeframe(settings, tf) for tf in settings.timeframes]
    return dg.Definitions.merge(
        *families,
        dg.Definitions(
            resources=resources if resources is not None else build_resources(settings),
            # Steps are short and share the model in memory: one process per run beats a process per step.
            executor=dg.in_process_executor,
        ),
    )
