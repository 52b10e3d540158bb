"""The asset factory: one family of assets, checks, jobs, a schedule and a sensor per configured timeframe."""

from __future__ import annotations

from typing import Any

import dagster as dg

from kronos_assets.configuration.settings import Settings, TimeframeSettings
from kronos_assets.defs.adhoc import build_adhoc
from kronos_assets.defs.automation import (
    bar_chain_condition,
    build_candles_schedule,
    build_chain_sensor,
    build_forecast_sensor,
)
from kronos_assets.defs.evaluate import build_evaluations, build_track_record
from kronos_assets.defs.forecast import build_forecasts, forecasts_key
from kronos_assets.defs.ingest import build_ingest, clean_candles_key
from kronos_assets.defs.maintenance import build_maintenance
from kronos_assets.defs.model import build_weights, weighted_models
from kronos_assets.defs.names import candles_job_name, forecast_job_name
from kronos_assets.defs.operations import (
    build_failure_sensor,
    build_forecast_checks,
    build_recovery_sensor,
    build_retention,
    freshness_policy,
)
from kronos_assets.defs.partitions import MARKETS, UPLOADS, Family
from kronos_assets.defs.publish import build_published, published_key
from kronos_assets.defs.resources import build_resources
from kronos_assets.defs.revisions import COMPARE_JOB, build_revision_comparison, build_revision_sensor
from kronos_assets.defs.training import build_training_assets
from kronos_assets.defs.uploads import build_uploads_sensor
from kronos_assets.orchestration.runs import in_process_bounded_pools


def build_timeframe(settings: Settings, tf: TimeframeSettings, family: Family = MARKETS) -> tuple[dg.Definitions, Any]:
    """One timeframe's family of assets, checks, jobs and automation; returns them and the candles job."""
    (raw, clean), checks = build_ingest(settings, tf, family)
    forecasts = build_forecasts(settings, tf, family)
    evaluations = build_evaluations(settings, tf, family)
    downstream = [forecasts, evaluations]
    if family is MARKETS:
        downstream.append(build_published(settings, tf))
    what = "uploaded markets'" if family is UPLOADS else ""
    candles_job = dg.define_asset_job(
        candles_job_name(tf.name, family),
        selection=dg.AssetSelection.assets(raw, clean),
        description=f"Fetch and clean {what} {tf.name} candles for a market and day (or a range of days).",
    )
    forecast_job = dg.define_asset_job(
        forecast_job_name(tf.name, family),
        selection=dg.AssetSelection.assets(*downstream),
        description=(
            f"Forecast, score and publish {what} {tf.name} bars; over a range of past bars it is a "
            "rolling-origin backtest run by the same code as live."
        ),
    )
    schedules = [build_candles_schedule(settings, tf, candles_job)] if family is MARKETS else []
    # The newest bar's forecast, scores and site: the assets' conditions, or the run-status sensor where no
    # condition names that bar (a replay clock's, an upload's: defs/automation.py).
    if bar_chain_condition(settings, family) is not None:
        chain = build_chain_sensor(tf, [a.key for a in downstream])
    else:
        chain = build_forecast_sensor(tf, candles_job, forecast_job, family)
    extra_assets = []
    if family is MARKETS:
        # the track record carries its own check (computed in its step, from the record it computed)
        extra_assets, checks = [build_track_record(settings, tf)], [*checks, *build_forecast_checks(settings, tf)]
    defs = dg.Definitions(
        assets=[raw, clean, *downstream, *extra_assets],
        asset_checks=checks,
        jobs=[candles_job, forecast_job],
        schedules=schedules,
        sensors=[chain],
    )
    return defs, candles_job


def build_definitions(settings: Settings, resources: dict[str, Any] | None = None) -> dg.Definitions:
    families = [build_timeframe(settings, tf, MARKETS)[0] for tf in settings.timeframes]
    uploads = {tf.name: build_timeframe(settings, tf, UPLOADS) for tf in settings.timeframes}
    comparison = build_revision_comparison(settings)
    compare_job = dg.define_asset_job(
        COMPARE_JOB, selection=[comparison], description="Score a candidate Kronos revision next to the pinned one."
    )
    adhoc, adhoc_job = build_adhoc(settings)  # launched by hand; never touches the warehouse
    defs = dg.Definitions.merge(
        *families,
        *(d for d, _ in uploads.values()),
        build_maintenance(settings.warehouse, settings.retention_paths_days),  # old paths; DuckLake compaction
        build_retention(settings),  # Dagster runs past retention.run_days pruned daily, partition status kept
        dg.Definitions(
            assets=[
                *(build_weights(m) for m in weighted_models(settings)),
                comparison,
                *build_training_assets(settings),
                adhoc,
            ],
            jobs=[compare_job, adhoc_job],
            sensors=[
                build_uploads_sensor(settings, {tf: job for tf, (_, job) in uploads.items()}),
                build_failure_sensor(settings),
                build_recovery_sensor(settings),
                build_revision_sensor(settings, compare_job),
            ],
            resources=resources if resources is not None else build_resources(settings),
            # Steps are short and share the model in memory: one process per run beats a process per step.
            # Waits for a pool slot are bounded (kronos/pool_wait_s tag or KRONOS_POOL_WAIT_S, 300 s).
            executor=in_process_bounded_pools,
        ),
    )
    for tf in settings.timeframes:  # what people watch: candles, forecasts and the published site stay fresh
        policy = freshness_policy(tf)
        watched = dg.AssetSelection.assets(clean_candles_key(tf.name), forecasts_key(tf.name), published_key(tf.name))
        defs = defs.map_resolved_asset_specs(
            func=lambda spec, p=policy: dg.apply_freshness_policy(spec, p), selection=watched
        )
    return defs
