"""Automation: per timeframe, a schedule that refreshes candles after each bar closes, then the forecast, score and
publish steps of the newest bar.

The schedule stays a schedule: it works at its market's time (the scheduled time, or for a replay market the
replay clock's reading at it; market/replay.py: replay time moves with the wall clock through the data's last
days and stops at its end, where the ticks' run keys repeat and Dagster skips them), tags the candles run with
that time (defs/clock.py) so it stores no bar that closes after it, and at 00:05 refreshes the day that just
ended. A condition sees only Dagster's clock and its newest daily partition (today), and its sensor gives every
run the same tags.

Downstream, Dagster's declarative automation (``bar_chain_condition``): when a series' clean candles are updated,
the forecasts, evaluations and published partitions of its newest closed bar are requested, in one run per
series and bar, as the run-status sensor did before. A replay market keeps that sensor (``build_forecast_sensor``):
its newest bar is the replay clock's, which Dagster's newest time partition (the wall clock's) is not; uploaded
markets keep it too (their newest bar is the uploaded file's).
"""

from typing import Any, Iterator

import dagster as dg

from kronos_assets.base import environment
from kronos_assets.configuration.settings import Settings, TimeframeSettings, symbol_key
from kronos_assets.defs.clock import market_now, now_tag
from kronos_assets.defs.partitions import BAR_FMT, MARKETS, Family, day_key, parse_time

BAR_TAG = "kronos/bar"
SYMBOL_TAG = "kronos/symbol"


def build_candles_schedule(settings: Settings, tf: TimeframeSettings, candles_job: Any) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"candles_{tf.name}_schedule",
        cron_schedule=tf.bar.cron(),
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
        bar = tf.bar.last_closed_open(now)
        for symbol in settings.symbols:
            yield dg.RunRequest(
                run_key=f"candles|{tf.name}|{symbol_key(symbol)}|{bar:%Y-%m-%dT%H:%M}",
                partition_key=day_key(symbol, bar),
                tags={BAR_TAG: bar.strftime(BAR_FMT), SYMBOL_TAG: symbol_key(symbol), **now_tag(now)},
            )

    return candles_schedule


def build_forecast_sensor(
    tf: TimeframeSettings, candles_job: Any, forecast_job: Any, family: Family = MARKETS
) -> dg.SensorDefinition:
    # Hand-written where no condition names the bar: the replay clock's and the uploaded file's newest bar travel
    # in the candles run's tags (see the module docstring).
    @dg.run_status_sensor(
        name=f"forecast{family.suffix}_{tf.name}_after_candles",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[candles_job],
        request_job=forecast_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"When a scheduled (or upload) {tf.name} candles run succeeds, forecast, score and publish its newest bar."
        ),
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


def bar_chain_condition(settings: Settings, family: Family = MARKETS) -> dg.AutomationCondition | None:
    """The forecasts, evaluations and published assets' condition: their newest bar partition, once any upstream
    partition of it was updated (the schedule's candles run; in the same tick, the step before it) and nothing
    upstream or itself is in progress, once per update. ``eager()`` without two of its parts: "newly missing"
    would forecast at the top of the hour, before the candles run, and "no upstream partition missing" would stop
    a new deployment whose first evaluations have no forecast to score yet. Model weights are left out, as the
    sensor left them: a candidate revision is scored by its own job (defs/revisions.py). None (no condition) where
    the forecast sensor stays."""
    if family is not MARKETS or settings.replay:
        return None
    return (
        dg.AutomationCondition.in_latest_time_window()
        & dg.AutomationCondition.any_deps_updated().ignore(dg.AssetSelection.groups("model")).since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("newest bar, after its candles")


def build_chain_sensor(tf: TimeframeSettings, keys: list[dg.AssetKey]) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        name=f"forecast_{tf.name}_automation",
        target=dg.AssetSelection.assets(*keys),
        default_status=dg.DefaultSensorStatus.RUNNING,  # as the schedule and the sensor it replaces
        minimum_interval_seconds=environment.sensor_interval_s(30),  # Dagster's default interval
        emit_backfills=False,  # plain runs, one per series and bar: the dagster/backfill run limit is for backtests
        description=(
            f"Forecasts, scores and publishes each series' newest {tf.name} bar once its candles run has "
            "updated them (the assets' automation conditions)."
        ),
    )
