"""The main job: what the hourly schedule and sensor do, run once in this process for every series.

For each timeframe and symbol it refreshes the candle days a forecast needs, then forecasts, scores and publishes
the newest closed bar and the ``backfill_bars`` before it (a short rolling-origin backtest, so a fresh install
has a track record to show at once). Runs are recorded in a Dagster instance under the project home, so
``dagster dev`` shows them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import dagster as dg

from kronos_assets.defs.factory import build_definitions, candles_job_name, forecast_job_name
from kronos_assets.defs.partitions import RANGE_END, RANGE_START, bar_key, day_key
from kronos_assets.defs.resources import build_resources
from kronos_assets.market.timeframes import last_closed_bar_open, timeframe_delta
from kronos_assets.settings import Settings


@dataclass
class MainJobResult:
    dashboard: str  # a local path, or the bucket's URL of index.html
    runs: int


# One DuckDB writer and one publisher at a time: runs queue for a slot instead of fighting over the file lock.
LOCAL_INSTANCE_YAML = """\
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def instance_for(settings: Settings) -> dg.DagsterInstance:
    """$DAGSTER_HOME's instance when set, else one under the project home (``DAGSTER_HOME=<home>/dagster dg dev``
    shows its runs)."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    path = settings.home / "dagster"
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "dagster.yaml").exists():
        (path / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML)
    return dg.DagsterInstance.local_temp(tempdir=str(path))


def run_main_job(
    settings: Settings,
    backfill_bars: int = 48,
    now: datetime | None = None,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> MainJobResult:
    now = now or datetime.now(timezone.utc)
    resources = resources if resources is not None else build_resources(settings)
    defs = build_definitions(settings, resources)
    instance = instance or instance_for(settings)
    runs = 0
    for tf in settings.timeframes:
        step = timeframe_delta(tf.name)
        newest = last_closed_bar_open(now, tf.name)
        first = newest - (backfill_bars - 1) * step
        candles_from = first - tf.history_bars * step
        candles = defs.resolve_job_def(candles_job_name(tf.name))
        forecast = defs.resolve_job_def(forecast_job_name(tf.name))
        for symbol in settings.symbols:
            log(f"{symbol} {tf.name}: candles {candles_from:%Y-%m-%d}..{newest:%Y-%m-%d}")
            _run(candles, instance, day_key(symbol, candles_from), day_key(symbol, newest))
            log(f"{symbol} {tf.name}: forecast, score and publish {backfill_bars} bars up to {newest:%Y-%m-%d %H:%M}")
            _run(forecast, instance, bar_key(symbol, first), bar_key(symbol, newest))
            runs += 2
    return MainJobResult(dashboard=resources["store"].location("index.html"), runs=runs)


def _run(job: dg.JobDefinition, instance: dg.DagsterInstance, start: dg.MultiPartitionKey,
         end: dg.MultiPartitionKey) -> None:
    result = job.execute_in_process(instance=instance, tags={RANGE_START: str(start), RANGE_END: str(end)},
                                    raise_on_error=False)
    if not result.success:
        failures = [e.message for e in result.all_events if e.is_failure]
        raise RuntimeError(f"run {result.run_id} of {job.name} ({start}..{end}) failed: " + " | ".join(failures[:3]))
