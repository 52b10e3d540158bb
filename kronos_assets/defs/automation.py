"""Automation: per timeframe, a schedule that refreshes candles after each bar closes, and a sensor that then
forecasts, scores and publishes the newest bar. Two runs, because candles (symbol x day) and forecasts
(symbol x bar) are partitioned differently; the sensor orders them."""

from typing import Any, Iterator

import dagster as dg

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
        description=f"A few minutes after each {tf.name} bar closes: refresh the day holding it, per symbol.",
    )
    def candles_schedule(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
        bar = last_closed_bar_open(context.scheduled_execution_time, tf.name)
        for symbol in settings.symbols:
            yield dg.RunRequest(
                run_key=f"candles|{tf.name}|{symbol_key(symbol)}|{bar:%Y-%m-%dT%H:%M}",
                partition_key=day_key(symbol, bar),
                tags={BAR_TAG: bar.strftime(BAR_FMT), SYMBOL_TAG: symbol_key(symbol)},
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
