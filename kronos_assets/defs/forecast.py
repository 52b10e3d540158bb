"""Forecast: per symbol and bar, every configured forecaster's full sample paths, summaries and provenance."""

import hashlib
import json
import time

import dagster as dg

from kronos_assets.configuration.settings import Settings, TimeframeSettings
from kronos_assets.defs.automation import bar_chain_condition
from kronos_assets.defs.ingest import clean_candles_key
from kronos_assets.defs.model import weighted_models, weights_key
from kronos_assets.defs.partitions import BAR_FMT, MARKETS, Family, bar_partitions, on_stride, times_by_symbol
from kronos_assets.evaluation.records import forecast_frames, store_forecasts
from kronos_assets.forecasting.interface import run_forecaster
from kronos_assets.forecasting.registry import ForecasterRegistry
from kronos_assets.forecasting.requests import HISTORY_COLUMNS, build_requests, history_span
from kronos_assets.forecasting.versions import VERSION_FIELD, forecast_versions
from kronos_assets.orchestration.incremental import forecasts_to_make
from kronos_assets.warehouse import WRITE_POOL, Warehouse

MODEL_BATCH = 64  # requests per forecaster call


def forecasts_key(tf: str, family: Family = MARKETS) -> dg.AssetKey:
    return family.asset_key("forecasts", tf)


def candles_mapping(start_offset: int) -> dg.MultiPartitionMapping:
    """symbol x bar -> symbol x day: the days holding bars [k + start_offset bars, k]."""
    return dg.MultiPartitionMapping(
        {
            "symbol": dg.DimensionPartitionMapping("symbol", dg.IdentityPartitionMapping()),
            "day": dg.DimensionPartitionMapping(
                "bar",
                dg.TimeWindowPartitionMapping(
                    start_offset=start_offset, end_offset=0, allow_nonexistent_upstream_partitions=True
                ),
            ),
        }
    )


def build_forecasts(settings: Settings, tf: TimeframeSettings, family: Family = MARKETS) -> dg.AssetsDefinition:
    step = tf.bar.delta
    sampling = settings.sampling_for(tf.name)
    versions = forecast_versions(settings.model_specs, list(settings.forecasters), sampling, tf.history_bars)

    @dg.asset(
        key=forecasts_key(tf.name, family),
        partitions_def=bar_partitions(settings, tf, family),
        deps=[
            dg.AssetDep(clean_candles_key(tf.name, family), partition_mapping=candles_mapping(-tf.history_bars)),
            *(weights_key(m.key) for m in weighted_models(settings)),
        ],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=168),
        automation_condition=bar_chain_condition(settings, family),
        group_name="forecast",
        # Dagster shows a changed model, sampling or forecasting code as a code-version change in the UI.
        code_version=hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:16],
        kinds={"pytorch", "duckdb"},
        pool=WRITE_POOL,
        owners=["team:ml"],
        description=(
            f"{tf.horizon}-bar forecasts made when each {tf.name} bar closes, by {', '.join(settings.forecasters)}: "
            f"{sampling.n_paths} sample paths each (OHLCV + amount, or the fields a model forecasts), quantiles, "
            "mean and median paths, P(up), P(volatility amplification) and provenance. A forecast sees only bars "
            "closed at or before its origin."
        ),
    )
    def forecasts(
        context: dg.AssetExecutionContext,
        warehouse: dg.ResourceParam[Warehouse],
        forecasters: dg.ResourceParam[ForecasterRegistry],
    ) -> dg.MaterializeResult:
        by_symbol = {
            symbol: on_stride(context.run.tags, bars, int(step.total_seconds()))
            for symbol, bars in times_by_symbol(context.partition_keys, "bar", BAR_FMT, family).items()
        }
        # Only what is not stored at its current version key (incremental.py): a run over stored bars computes
        # nothing; a changed model, sampling or code version recomputes exactly that model's forecasts.
        todo = {
            symbol: forecasts_to_make(warehouse, symbol, tf.name, step, bars, versions)
            for symbol, bars in by_symbol.items()
        }
        current = sum(len(bars) * len(versions) for bars in by_symbol.values()) - sum(
            len(b) for work in todo.values() for b in work.values()
        )
        # Read what every bar of the run needs, then release the warehouse before any model computes.
        candles = {
            symbol: warehouse.query(
                "SELECT * FROM clean_candles WHERE symbol = ? AND timeframe = ? AND ts >= ? AND ts < ? ORDER BY ts",
                [symbol, tf.name, *history_span(tf, sorted({b for bs in work.values() for b in bs}))],
            ).select(HISTORY_COLUMNS)
            for symbol, work in todo.items()
            if work
        }
        results: dict[tuple[str, str], list] = {}
        skipped_all: dict[str, str] = {}
        seconds: dict[str, float] = {}
        for name in settings.forecasters:
            requests = []
            for symbol, work in todo.items():
                if not work.get(name):
                    continue
                reqs, skipped = build_requests(candles[symbol], symbol, tf, work[name], name, sampling.seed)
                skipped_all.update({f"{symbol} {bar.strftime(BAR_FMT)}": why for bar, why in skipped.items()})
                requests += reqs
            if not requests:
                continue
            forecaster = forecasters.get(name)  # built once per process: a model loads once per run
            t0 = time.perf_counter()
            # Many series and origins per model call: batched inference is what makes backtests affordable.
            for i in range(0, len(requests), MODEL_BATCH):
                for fc in run_forecaster(forecaster, requests[i : i + MODEL_BATCH], sampling):
                    fc.provenance[VERSION_FIELD] = versions[name]
                    results.setdefault((fc.request.symbol, name), []).append(fc)
            seconds[name] = round(time.perf_counter() - t0, 3)
        written = 0
        for (symbol, name), made in results.items():
            frames = forecast_frames(made, sampling)
            store_forecasts(warehouse, frames, symbol, tf.name, name, [fc.request.origin for fc in made])
            written += frames["forecasts"].height
        if not written and not current and skipped_all:
            raise dg.Failure(
                description=f"no forecast could be made: {next(iter(skipped_all.values()))}",
                metadata={"skipped": dg.MetadataValue.json(skipped_all)},
            )
        return dg.MaterializeResult(
            metadata={
                "forecasts": written,  # computed by this run
                "forecasts_already_current": current,
                "models": ", ".join(settings.forecasters),
                "version_keys": dg.MetadataValue.json(versions),
                "n_paths": sampling.n_paths,
                "horizon": tf.horizon,
                "skipped": dg.MetadataValue.json(skipped_all) if skipped_all else "none",
                "model_seconds": dg.MetadataValue.json(seconds),
            }
        )

    return forecasts
