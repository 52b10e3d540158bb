"""Evaluate: score each forecast against the market once the last bar of its horizon has closed.

The evaluation partition of bar k scores the forecasts whose last horizon bar is k (made at origin
k - (horizon - 1) bars, i.e. the forecast partition k - horizon bars). So an evaluation partition only exists
once its horizon has closed, and it reads realised candles no later than k.
"""

import dagster as dg
import polars as pl

from kronos_assets.defs.forecast import candles_mapping, forecasts_key
from kronos_assets.defs.ingest import clean_candles_key
from kronos_assets.defs.partitions import BAR_FMT, MARKETS, Family, bar_partitions, times_by_symbol
from kronos_assets.market.timeframes import timeframe_delta
from kronos_assets.records import evaluation_rows, load_close_paths
from kronos_assets.settings import Settings, TimeframeSettings
from kronos_assets.warehouse import Warehouse

TS = pl.Datetime("us", "UTC")


def evaluations_key(tf: str, family: Family = MARKETS) -> dg.AssetKey:
    return family.asset_key("evaluations", tf)


def build_evaluations(settings: Settings, tf: TimeframeSettings, family: Family = MARKETS) -> dg.AssetsDefinition:
    step = timeframe_delta(tf.name)
    h = tf.horizon
    forecast_mapping = dg.MultiPartitionMapping(
        {
            "symbol": dg.DimensionPartitionMapping("symbol", dg.IdentityPartitionMapping()),
            "bar": dg.DimensionPartitionMapping(
                "bar", dg.TimeWindowPartitionMapping(start_offset=-h, end_offset=-h,
                                                     allow_nonexistent_upstream_partitions=True)
            ),
        }
    )

    @dg.asset(
        key=evaluations_key(tf.name, family),
        partitions_def=bar_partitions(settings, tf, family),
        ins={
            "forecasts": dg.AssetIn(forecasts_key(tf.name, family), partition_mapping=forecast_mapping,
                                    dagster_type=dg.Nothing),
            "realised": dg.AssetIn(clean_candles_key(tf.name, family), partition_mapping=candles_mapping(-(h - 1)),
                                   dagster_type=dg.Nothing),
        },
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=168),
        group_name="evaluate",
        kinds={"duckdb"},
        pool="duckdb_write",
        owners=["team:ml"],
        description=(
            f"Scores of every {tf.horizon}-bar {tf.name} forecast (each model and baseline) against the realised "
            "candles, per horizon step: errors of the median, direction, CRPS, pinball, 50/80/90 % coverage and "
            "width, PIT, Brier of P(up) and of P(volatility amplification). Partition k scores the forecasts whose "
            "last horizon bar is k."
        ),
    )
    def evaluations(context: dg.AssetExecutionContext, warehouse: dg.ResourceParam[Warehouse]) -> dg.MaterializeResult:
        scored, missing_forecasts = 0, []
        for symbol, bars in times_by_symbol(context.partition_keys, "bar", BAR_FMT, family).items():
            origins = [k - (h - 1) * step for k in bars]
            heads = load_close_paths(warehouse, symbol, tf.name, origins)
            realised = warehouse.query(
                "SELECT ts, close FROM clean_candles WHERE symbol = ? AND timeframe = ? AND ts >= ? AND ts <= ? "
                "ORDER BY ts",
                [symbol, tf.name, origins[0], bars[-1]],
            )
            if realised.height == 0 or realised["ts"][-1] < bars[-1]:
                raise dg.Failure(
                    description=f"{symbol} {tf.name}: bar {bars[-1]} has not closed or is not in clean candles yet; "
                    "an evaluation waits until every bar of its horizon has closed"
                )
            rows = []
            by_origin = {o: [] for o in origins}
            for head in heads.iter_rows(named=True):
                by_origin[head["origin"]].append(head)
            for k, origin in zip(bars, origins):
                if not by_origin[origin]:
                    missing_forecasts.append(f"{symbol} {origin:%Y-%m-%d %H:%M}")
                for head in by_origin[origin]:
                    rows += evaluation_rows(head, realised, symbol, tf.name, step, k)
            frame = pl.DataFrame(rows, schema_overrides={"origin": TS, "ts": TS, "scored_bar": TS,
                                                         "brier_vol_amp": pl.Float64}, infer_schema_length=None)
            warehouse.replace(
                "evaluations", frame,
                "symbol = ? AND timeframe = ? AND scored_bar IN (SELECT unnest(?::TIMESTAMPTZ[]))",
                [symbol, tf.name, bars],
            )
            scored += len({(r["origin"], r["model"]) for r in rows})
        if missing_forecasts:
            context.log.warning(f"{len(missing_forecasts)} origins had no stored forecast to score, "
                                f"e.g. {missing_forecasts[0]}")
        return dg.MaterializeResult(
            metadata={
                "forecasts_scored": scored,
                "origins_without_forecast": len(missing_forecasts),
            }
        )

    return evaluations
