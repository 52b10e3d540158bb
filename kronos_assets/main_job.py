"""The main job: what the hourly schedule and sensor do, run once in this process for every series.

For each timeframe and symbol it refreshes the candle days a forecast needs, then forecasts, scores and publishes
the newest closed bar and the ``backfill_bars`` before it (a short rolling-origin backtest, so a fresh install
has a track record to show at once). Runs are recorded in the profile's Dagster instance (``dagster dev`` shows
them); their full event log goes to a file, the terminal gets one line per step of the job.

``now`` (``--now``) is the time the job works at: every run is tagged with it (defs/clock.py), so no bar that
closes after it is fetched and the same command stores the same candles whatever the hour. It defaults to the wall
clock, or for a replay market to the end of its data (the newest close common to its series). A ``now`` outside
the partitions (before their start, after the wall clock or the replay data) is refused before anything is
created.

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
from kronos_assets.defs.clock import now_tag
from kronos_assets.defs.evaluate import track_record_key
from kronos_assets.defs.factory import build_definitions, candles_job_name, forecast_job_name
from kronos_assets.defs.partitions import RANGE_END, RANGE_START, bar_key, day_key
from kronos_assets.defs.resources import build_resources, library
from kronos_assets.alerts import pending_alerts
from kronos_assets.failures import alert_failed_runs, run_cause
from kronos_assets.local_instance import instance_for
from kronos_assets.market.schema import CandleError
from kronos_assets.market.timeframes import last_closed_bar_open, timeframe_delta
from kronos_assets.publishing.store import LocalStore
from kronos_assets.retention import RUN_ROUND_S, prune_instance
from kronos_assets.runs import (DEFAULT_POOL_WAIT_S, bounded_pool_waits, held_slots, process_tags,
                                reap_dead_runs)
from kronos_assets.settings import Settings

__all__ = ["MainJobFailed", "MainJobResult", "instance_for", "run_main_job"]

POOL_WAIT_S = environment.pool_wait_s() or float(DEFAULT_POOL_WAIT_S)
# The terminal gets our progress lines; Dagster's event log goes to the instance's log file.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class MainJobFailed(RuntimeError):
    """A run of the main job failed; the message is what failed and why, in one line."""


class NowOutOfRange(MainJobFailed):
    """``now`` lies outside what the partitions (or the replay data) hold; nothing was started."""


def _utc_minute(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M} UTC"


def resolve_now(settings: Settings, now: datetime | None, market: Any) -> datetime:
    """The time the main job works at: ``now``, else the replay data's end or the wall clock; refused (one line,
    ``NowOutOfRange``) when no partition or no replayed bar could hold it."""
    wall = datetime.now(timezone.utc)
    try:
        end = market.data_end() if settings.replay else None
    except (CandleError, OSError, KeyError) as exc:  # a refused replay file: one line naming file and row
        raise MainJobFailed(f"replay data refused: {exc}") from None
    if now is None:
        return end or wall
    now = now.astimezone(timezone.utc)
    if now > wall:
        raise NowOutOfRange(f"--now {_utc_minute(now)} is in the future (it is {_utc_minute(wall)})")
    if end is not None and now > end:
        ends = ", ".join(f"{s} {t} {_utc_minute(market.series_end(s, t))}" for s, t, _ in settings.replay_files)
        raise NowOutOfRange(f"--now {_utc_minute(now)} is after the replay data's end {_utc_minute(end)} (the newest "
                            f"close common to its series: {ends}); choose an earlier time")
    for tf in settings.timeframes:
        first = datetime(tf.start.year, tf.start.month, tf.start.day, tzinfo=timezone.utc)
        if last_closed_bar_open(now, tf.name) < first:
            raise NowOutOfRange(f"--now {_utc_minute(now)} is before the first {tf.name} bar closes (partitions "
                                f"start {tf.start}, {settings.config_dir / 'markets.yaml'} timeframes.{tf.name}.start); "
                                f"choose {_utc_minute(first + timeframe_delta(tf.name))} or later")
    return now


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

    now: datetime
    done: int = 0

    def run(self, job: dg.JobDefinition, what: str, start: dg.MultiPartitionKey | None = None,
            end: dg.MultiPartitionKey | None = None) -> None:
        self.done += 1
        self.log(f"[{self.done}/{self.total}] {what}")
        t0 = time.perf_counter()
        result = job.execute_in_process(instance=self.instance, run_config=QUIET, raise_on_error=False,
                                        tags={**({RANGE_START: str(start), RANGE_END: str(end)} if start else {}),
                                              **process_tags(), **now_tag(self.now)})
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


def prune_runs(settings: Settings, instance: dg.DagsterInstance, log: Callable[[str], None]) -> None:
    """Runs older than the profile's retention go, partition and check status kept (retention.py), within a
    bounded round; a failed round costs the tick nothing (the work is stored) and the next one resumes it."""
    try:
        prune_instance(instance, settings.retention_run_days, RUN_ROUND_S, log=log)
    except Exception as exc:  # noqa: BLE001 -- e.g. the instance locked by another writer for too long
        log(f"retention: round failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "the next run resumes it")


def run_main_job(
    settings: Settings,
    backfill_bars: int = 48,
    now: datetime | None = None,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    pool_wait_s: float = POOL_WAIT_S,
) -> MainJobResult:
    resources = resources if resources is not None else build_resources(settings)
    # before anything is created: a refused now leaves no run, no instance, no warehouse behind
    now = resolve_now(settings, now, library(resources["market"]) if settings.replay else None)
    # Each timeframe's track record (scoreboards, verdicts, calibration) is materialised once its series are scored.
    records = {tf.name: dg.define_asset_job(f"track_record_{tf.name}_job",
                                            selection=[track_record_key(tf.name)]) for tf in settings.timeframes}
    defs = dg.Definitions.merge(build_definitions(settings, resources), dg.Definitions(jobs=list(records.values())))
    instance = instance or instance_for(settings)
    store = library(resources["store"])
    recover(settings, instance, store, log)
    runner = _Runner(settings, instance, log, total=(2 * len(settings.symbols) + 1) * len(settings.timeframes),
                     now=now)
    with bounded_pool_waits(instance, pool_wait_s, on_reap=lambda m: log(f"recovered: {m}")):
        for tf in settings.timeframes:
            step = timeframe_delta(tf.name)
            newest = last_closed_bar_open(now, tf.name)
            start = datetime(tf.start.year, tf.start.month, tf.start.day, tzinfo=timezone.utc)
            # Near the partitions' start there is less to backfill and less history: both begin at the first bar.
            first = max(newest - (backfill_bars - 1) * step, start)
            candles_from = max(first - tf.history_bars * step, start)
            bars = min(backfill_bars, (newest - first) // step + 1)
            candles = defs.resolve_job_def(candles_job_name(tf.name))
            forecast = defs.resolve_job_def(forecast_job_name(tf.name))
            for symbol in settings.symbols:
                runner.run(candles, f"{symbol} {tf.name}: candles {candles_from:%Y-%m-%d}..{newest:%Y-%m-%d}",
                           day_key(symbol, candles_from), day_key(symbol, newest))
                runner.run(forecast, f"{symbol} {tf.name}: forecast, score and publish {bars} bars up to "
                                     f"{newest:%Y-%m-%d %H:%M}", bar_key(symbol, first), bar_key(symbol, newest))
            runner.run(defs.resolve_job_def(records[tf.name].name), f"{tf.name}: track record and verdicts")
    prune_runs(settings, instance, log)
    return MainJobResult(dashboard=store.location("index.html"), runs=runner.done)
