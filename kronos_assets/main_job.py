"""The main job: what the hourly schedule and sensor do, run once in this process for every series.

For each timeframe and symbol it refreshes the candle days a forecast needs, then forecasts, scores and publishes
the newest closed bar and the ``backfill_bars`` before it (a short rolling-origin backtest, so a fresh install
has a track record to show at once). Runs are recorded in the profile's Dagster instance (``dagster dev`` shows
them); their full event log goes to a file, the terminal gets one line per step of the job.

Unattended: runs left STARTED by a process that died are failed and their pool slots freed first; a wait for a
pool slot is bounded; every failed run is alerted once; a failure raises ``MainJobFailed`` whose message is
the cause in one line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import dagster as dg

from kronos_assets import environment
from kronos_assets.defs.evaluate import track_record_key
from kronos_assets.defs.factory import build_definitions, candles_job_name, forecast_job_name
from kronos_assets.defs.partitions import RANGE_END, RANGE_START, bar_key, day_key
from kronos_assets.defs.resources import build_resources, library
from kronos_assets.alerts import pending_alerts
from kronos_assets.failures import alert_failed_runs, run_cause
from kronos_assets.local_instance import instance_for
from kronos_assets.market.timeframes import last_closed_bar_open, timeframe_delta
from kronos_assets.publishing.store import LocalStore
from kronos_assets.runs import (DEFAULT_POOL_WAIT_S, bounded_pool_waits, held_slots, process_tags,
                                reap_dead_runs)
from kronos_assets.settings import Settings

__all__ = ["MainJobFailed", "MainJobResult", "instance_for", "run_main_job"]

POOL_WAIT_S = environment.pool_wait_s() or float(DEFAULT_POOL_WAIT_S)
# The terminal gets our progress lines; Dagster's event log goes to the instance's log file.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class MainJobFailed(RuntimeError):
    """A run of the main job failed; the message is what failed and why, in one line."""


@dataclass
class MainJobResult:
    dashboard: str  # a local path, or the bucket's URL of index.html
    runs: int


@dataclass
class _Runner:
    settings: Settings
    instance: dg.DagsterInstance
    log: Callable[[str], None]
    total: int
    done: int = 0

    def run(self, job: dg.JobDefinition, what: str, start: dg.MultiPartitionKey | None = None,
            end: dg.MultiPartitionKey | None = None) -> None:
        self.done += 1
        self.log(f"[{self.done}/{self.total}] {what}")
        t0 = time.perf_counter()
        result = job.execute_in_process(instance=self.instance, run_config=QUIET, raise_on_error=False,
                                        tags={**({RANGE_START: str(start), RANGE_END: str(end)} if start else {}),
                                              **process_tags()})
        if not result.success:
            outcome = alert_failed_runs(self.instance, [result.run_id], self.settings.profile_home,
                                        self.settings.profile)
            self.log(f"      failed after {time.perf_counter() - t0:.1f} s (run {result.run_id}); alert recorded, "
                     f"{outcome}")
            raise MainJobFailed(f"{what}: {run_cause(self.instance, result.run_id)}")
        self.log(f"      done in {time.perf_counter() - t0:.1f} s")


def recover(settings: Settings, instance: dg.DagsterInstance, store: Any, log: Callable[[str], None]) -> None:
    """Fails runs whose process died (and alerts them), frees their slots, retries alerts not yet delivered, and
    removes stray publish temporaries once no run holds the publish slot."""
    reaped = reap_dead_runs(instance)
    for message in reaped.values():
        log(f"recovered: {message}")
    if reaped or pending_alerts(settings.profile_home):  # also alerts whose webhook post failed last time
        log(f"alerts: {alert_failed_runs(instance, list(reaped), settings.profile_home, settings.profile)}")
    if isinstance(store, LocalStore) and "publish" not in held_slots(instance):
        stray = store.remove_stray_temporaries()
        if stray:
            log(f"recovered: removed {len(stray)} unfinished temporary file(s) from {store.root}")


def run_main_job(
    settings: Settings,
    backfill_bars: int = 48,
    now: datetime | None = None,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    pool_wait_s: float = POOL_WAIT_S,
) -> MainJobResult:
    now = now or datetime.now(timezone.utc)
    resources = resources if resources is not None else build_resources(settings)
    # Each timeframe's track record (scoreboards, verdicts, calibration) is materialised once its series are scored.
    records = {tf.name: dg.define_asset_job(f"track_record_{tf.name}_job",
                                            selection=[track_record_key(tf.name)]) for tf in settings.timeframes}
    defs = dg.Definitions.merge(build_definitions(settings, resources), dg.Definitions(jobs=list(records.values())))
    instance = instance or instance_for(settings)
    store = library(resources["store"])
    recover(settings, instance, store, log)
    runner = _Runner(settings, instance, log, total=(2 * len(settings.symbols) + 1) * len(settings.timeframes))
    with bounded_pool_waits(instance, pool_wait_s, on_reap=lambda m: log(f"recovered: {m}")):
        for tf in settings.timeframes:
            step = timeframe_delta(tf.name)
            newest = last_closed_bar_open(now, tf.name)
            first = newest - (backfill_bars - 1) * step
            candles_from = first - tf.history_bars * step
            candles = defs.resolve_job_def(candles_job_name(tf.name))
            forecast = defs.resolve_job_def(forecast_job_name(tf.name))
            for symbol in settings.symbols:
                runner.run(candles, f"{symbol} {tf.name}: candles {candles_from:%Y-%m-%d}..{newest:%Y-%m-%d}",
                           day_key(symbol, candles_from), day_key(symbol, newest))
                runner.run(forecast, f"{symbol} {tf.name}: forecast, score and publish {backfill_bars} bars up to "
                                     f"{newest:%Y-%m-%d %H:%M}", bar_key(symbol, first), bar_key(symbol, newest))
            runner.run(defs.resolve_job_def(records[tf.name].name), f"{tf.name}: track record and verdicts")
    return MainJobResult(dashboard=store.location("index.html"), runs=runner.done)
