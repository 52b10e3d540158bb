"""Forecast: per symbol and bar, every configured forecaster's full sample paths, summaries and provenance."""

import time
from datetime import datetime

import dagster as dg
import polars as pl

from kronos_assets.defs.ingest import clean_candles_key
from kronos_assets.defs.model import weighted_models, weights_key
from kronos_assets.defs.partitions import BAR_FMT, MARKETS, Family, bar_partitions, times_by_symbol
from kronos_assets.forecasting.interface import ForecastRequest, request_seed, run_forecaster
from kronos_assets.forecasting.registry import ForecasterRegistry
from kronos_assets.market.timeframes import timeframe_delta
from kronos_assets.records import forecast_frames
from kronos_assets.settings import Settings, TimeframeSettings
from kronos_assets.warehouse import Warehouse

FORECAST_TABLES = ("forecasts", "forecast_steps", "forecast_paths")
MODEL_BATCH = 64  # requests per forecaster call
HISTORY_COLUMNS = ["ts", "open", "high", "low", "close", "volume", "amount", "exchange"]


def forecasts_key(tf: str, family: Family = MARKETS) -> dg.AssetKey:
    return family.asset_key("forecasts", tf)


def candles_mapping(start_offset: int) -> dg.MultiPartitionMapping:
    """symbol x bar -> symbol x day: the days holding bars [k + start_offset bars, k]."""
    return dg.MultiPartitionMapping(
        {
            "symbol": dg.DimensionPartitionMapping("symbol", dg.IdentityPartitionMapping()),
            "day": dg.DimensionPartitionMapping(
                "bar",
                dg.TimeWindowPartitionMapping(start_offset=start_offset, end_offset=0,
                                              allow_nonexistent_upstream_partitions=True),
            ),
        }
    )


def build_requests(
    candles: pl.DataFrame, symbol: str, tf: TimeframeSettings, bars: list[datetime], model: str, base_seed: int
) -> tuple[list[ForecastRequest], dict[str, str]]:
    """One request per bar whose history is complete up to that bar; the others are returned with the reason."""
    step = timeframe_delta(tf.name)
    ts = candles["ts"]
    requests, skipped = [], {}
    min_bars = max(32, tf.horizon + 2)
    for bar in bars:
        origin = bar + step
        hi = ts.search_sorted(origin, side="left")  # bars opening before the origin: all closed at or before it
        lo = max(0, hi - tf.history_bars)
        history = candles.slice(lo, hi - lo)
        if history.height == 0 or history["ts"][-1] != bar:
            last = history["ts"][-1] if history.height else None
            skipped[bar.strftime(BAR_FMT)] = f"bar {bar} is not in clean candles (newest before it: {last})"
            continue
        if history.height < min_bars:
            skipped[bar.strftime(BAR_FMT)] = f"only {history.height} bars of history (< {min_bars})"
            continue
        requests.append(
            ForecastRequest(
                symbol=symbol,
                timeframe=tf.name,
                origin=origin,
                history=history,
                future_ts=[origin + i * step for i in range(tf.horizon)],
                seed=request_seed(base_seed, symbol, tf.name, origin, model),
            )
        )
    return requests, skipped


def build_forecasts(settings: Settings, tf: TimeframeSettings, family: Family = MARKETS) -> dg.AssetsDefinition:
    step = timeframe_delta(tf.name)
    sampling = settings.sampling_for(tf.name)

    @dg.asset(
        key=forecasts_key(tf.name, family),
        partitions_def=bar_partitions(settings, tf, family),
        ins={"clean": dg.AssetIn(clean_candles_key(tf.name, family), partition_mapping=candles_mapping(-tf.history_bars),
                                 dagster_type=dg.Nothing)},
        deps=[weights_key(m.key) for m in weighted_models(settings)],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=168),
        group_name="forecast",
        kinds={"pytorch", "duckdb"},
        pool="duckdb_write",
        owners=["team:ml"],
        description=(
            f"{tf.horizon}-bar forecasts made when each {tf.name} bar closes, by {', '.join(settings.forecasters)}: "
            f"{sampling.n_paths} sample paths each (OHLCV + amount, or the fields a model forecasts), quantiles, "
            "mean and median paths, P(up), P(volatility amplification) and provenance. A forecast sees only bars closed at or before its origin."
        ),
    )
    def forecasts(context: dg.AssetExecutionContext, warehouse: dg.ResourceParam[Warehouse],
                  forecasters: dg.ResourceParam[ForecasterRegistry]) -> dg.MaterializeResult:
        by_symbol = times_by_symbol(context.partition_keys, "bar", BAR_FMT, family)
        # Read what every bar of the run needs, then release the warehouse before any model computes.
        candles = {
            symbol: warehouse.query(
                "SELECT * FROM clean_candles WHERE symbol = ? AND timeframe = ? AND ts >= ? AND ts < ? ORDER BY ts",
                [symbol, tf.name, bars[0] - tf.history_bars * step, bars[-1] + step],
            ).select(HISTORY_COLUMNS)
            for symbol, bars in by_symbol.items()
        }
        results: dict[str, list] = {symbol: [] for symbol in by_symbol}
        skipped_all: dict[str, str] = {}
        seconds: dict[str, float] = {}
        for name in settings.forecasters:
            requests = []
            for symbol, bars in by_symbol.items():
                reqs, skipped = build_requests(candles[symbol], symbol, tf, bars, name, sampling.seed)
                skipped_all.update({f"{symbol} {k}": v for k, v in skipped.items()})
                requests += reqs
            forecaster = forecasters.get(name)  # built once per process: a model loads once per run
            t0 = time.perf_counter()
            # Many series and origins per model call: batched inference is what makes backtests affordable.
            for i in range(0, len(requests), MODEL_BATCH):
                for fc in run_forecaster(forecaster, requests[i : i + MODEL_BATCH], sampling):
                    results[fc.request.symbol].append(fc)
            seconds[name] = round(time.perf_counter() - t0, 3)
        written = 0
        for symbol, bars in by_symbol.items():
            frames = forecast_frames(results[symbol], sampling)
            warehouse.replace_many(
                {t: frames[t] for t in FORECAST_TABLES},
                "symbol = ? AND timeframe = ? AND origin IN (SELECT unnest(?::TIMESTAMPTZ[]))",
                [symbol, tf.name, [b + step for b in bars]],
            )
            written += frames["forecasts"].height
        if not written and skipped_all:
            raise dg.Failure(
                description=f"no forecast could be made: {next(iter(skipped_all.values()))}",
                metadata={"skipped": dg.MetadataValue.json(skipped_all)},
            )
        return dg.MaterializeResult(
            metadata={
                "forecasts": written,
                "models": ", ".join(settings.forecasters),
                "n_paths": sampling.n_paths,
                "horizon": tf.horizon,
                "skipped": dg.MetadataValue.json(skipped_all) if skipped_all else "none",
                "model_seconds": dg.MetadataValue.json(seconds),
            }
        )

    return forecasts
