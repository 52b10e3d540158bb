"""Automation: per timeframe, a schedule that refreshes candles after each bar closes, and a sensor that then
forecasts, scores and publishes the newest bar. Two runs, because candles (symbol x day) and forecasts
(symbol x bar) are partitioned differently; the sensor orders them.

A tick works at its market's time: the scheduled time, or for a replay market the replay clock's reading at it
(market/replay.py: replay time moves with the wall clock through the data's last days and stops at its end, where
the ticks' run keys repeat and Dagster skips them). The candles run is tagged with that time (defs/clock.py), so
it stores no bar that closes after it."""

from typing import Any, Iterator

import dagster as dg

from kronos_assets.defs.clock import market_now, now_tag
from kronos_assets.defs.partitions import BAR_FMT, MARKETS, Family, day_key, parse_time
from kronos_assets.market.timeframes import cron_for, last_closed_bar_open
from kronos_assets.settings import Settings, TimeframeSettings, symbol_key

BAR_TAG = "kronos/bar"
SYMBOL_TAG = "kronos/symbol"


def build_candles_schedule(settings: Settings, tf: TimeframeSettings, candles_job: Any) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"candles_{tf.name}_schedule",
        cron_schedule=cron_for(tf.name),
        job=candles_job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        # Only a replay needs the market at tick time (its clock); ccxt would cost an import on every tick.
        required_resource_keys={"market"} if settings.replay else set(),
        description=f"A few minutes after each {tf.name} bar closes: refresh the day holding it, per symbol"
                    + (" (at the replay clock's time)." if settings.replay else "."),
    )
    def candles_schedule(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
        now = context.scheduled_execution_time
        if settings.replay:
            now = market_now(context.resources.market, now)
        bar = last_closed_bar_open(now, tf.name)
        for symbol in settings.symbols:
            yield dg.RunRequest(
                run_key=f"candles|{tf.name}|{symbol_key(symbol)}|{bar:%Y-%m-%dT%H:%M}",
                partition_key=day_key(symbol, bar),
                tags={BAR_TAG: bar.strftime(BAR_FMT), SYMBOL_TAG: symbol_key(symbol), **now_tag(now)},
            )

    return candles_schedule


def build_forecast_sensor(tf: TimeframeSettings, candles_job: Any, forecast_job: Any,
                          family: Family = MARKETS) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        name=f"forecast{family.suffix}_{tf.name}_after_candles",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[candles_job],
        request_job=forecast_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(f"When a scheduled (or upload) {tf.name} candles run succeeds, forecast, score and publish its "
                     "newest bar."),
    )
    def forecast_after_candles(context: dg.RunStatusSensorContext):
        tags = context.dagster_run.tags
        if BAR_TAG not in tags or SYMBOL_TAG not in tags:
            return dg.SkipReason("not a scheduled candles run (a backfill or a manual run)")
        bar = parse_time(tags[BAR_TAG], BAR_FMT)  # validates the tag
        return dg.RunRequest(
            run_key=f"forecast{family.suffix}|{tf.name}|{tags[SYMBOL_TAG]}|{bar:%Y-%m-%dT%H:%M}",
            partition_key=dg.MultiPartitionKey({"symbol": tags[SYMBOL_TAG], "bar": tags[BAR_TAG]}),
            tags={BAR_TAG: tags[BAR_TAG], SYMBOL_TAG: tags[SYMBOL_TAG]},
        )

    return forecast_after_candles
