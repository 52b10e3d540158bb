"""The main job: what the hourly schedule and sensor do, run once in this process for every series.

Over the newest closed bar and the ``backfill_bars`` before it (a short rolling-origin backtest, so a fresh
install has a track record to show at once) it computes only what is missing or stale, read from the warehouse
(incremental.py): the candle days a forecast needs that are not stored whole, forecasts not stored at their
model's current version key (forecasting/versions.py), scores whose horizon has closed, a publish when what the
site is made of changed, the track record when the scores did. At most three runs per timeframe, each covering
every symbol; none when nothing is new, and then the asset modules are not even imported. Runs are recorded in
the profile's Dagster instance (``dagster dev`` shows them); their full event log goes to a file, the terminal
gets one line per run.

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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import dagster as dg

from kronos_assets.base import environment
from kronos_assets.configuration.settings import Settings
from kronos_assets.defs.clock import now_tag
from kronos_assets.defs.names import TRACK_RECORD_INPUTS, candles_job_name, forecast_job_name, track_record_key
from kronos_assets.defs.partitions import ONE_DAY, RANGE_END, RANGE_START, bar_key, day_key
from kronos_assets.defs.resources import build_resources, library
from kronos_assets.forecasting.versions import forecast_versions
from kronos_assets.market.schema import CandleError
from kronos_assets.market.timeframes import contiguous
from kronos_assets.orchestration.alerts import pending_alerts
from kronos_assets.orchestration.failures import alert_failed_runs, run_cause
from kronos_assets.orchestration.incremental import (
    bars_to_score,
    candle_days_to_refresh,
    forecasts_to_make,
    publish_inputs,
    scores_digest,
)
from kronos_assets.orchestration.local_instance import instance_for
from kronos_assets.orchestration.retention import RUN_ROUND_S, prune_instance
from kronos_assets.orchestration.runs import (
    DEFAULT_POOL_WAIT_S,
    bounded_pool_waits,
    held_slots,
    process_tags,
    reap_dead_runs,
    sigterm_kept,
)
from kronos_assets.publishing.manifest import read_manifest
from kronos_assets.publishing.store import LocalStore

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
        raise NowOutOfRange(
            f"--now {_utc_minute(now)} is after the replay data's end {_utc_minute(end)} (the newest "
            f"close common to its series: {ends}); choose an earlier time"
        )
    for tf in settings.timeframes:
        first = datetime(tf.start.year, tf.start.month, tf.start.day, tzinfo=timezone.utc)
        if tf.bar.last_closed_open(now) < first:
            raise NowOutOfRange(
                f"--now {_utc_minute(now)} is before the first {tf.name} bar closes (partitions "
                f"start {tf.start}, {settings.config_dir / 'markets.yaml'} timeframes.{tf.name}.start); "
                f"choose {_utc_minute(first + tf.bar.delta)} or later"
            )
    return now


@dataclass
class MainJobResult:
    dashboard: str  # a local path, or the bucket's URL of index.html
    runs: int
    forecasts_computed: int = 0  # (origin, model) forecasts made by this call's runs
    forecasts_scored: int = 0  # (origin, model) forecasts scored by this call's runs
    published: bool = False  # whether a run published
    track_records: int = 0  # track records computed


# The metadata each stage's materialisation reports its work in (defs/forecast.py, defs/evaluate.py).
_WORK_FIELDS = {
    "forecasts": ("forecasts_computed", "forecasts"),
    "evaluations": ("forecasts_scored", "forecasts_scored"),
}


@dataclass
class _Runner:
    settings: Settings
    instance: dg.DagsterInstance
    log: Callable[[str], None]
    now: datetime
    done: int = 0
    work: dict[str, int] = field(default_factory=dict)

    def run(
        self,
        job: dg.JobDefinition,
        what: str,
        start: dg.MultiPartitionKey | None = None,
        end: dg.MultiPartitionKey | None = None,
    ) -> None:
        self.done += 1
        self.log(f"[run {self.done}] {what}")
        t0 = time.perf_counter()
        with sigterm_kept():
            result = job.execute_in_process(
                instance=self.instance,
                run_config=QUIET,
                raise_on_error=False,
                tags={
                    **({RANGE_START: str(start), RANGE_END: str(end)} if start else {}),
                    **process_tags(),
                    **now_tag(self.now),
                },
            )
        if not result.success:
            outcome = alert_failed_runs(
                self.instance, [result.run_id], self.settings.profile_home, self.settings.profile
            )
            self.log(
                f"      failed after {time.perf_counter() - t0:.1f} s (run {result.run_id}); alert recorded, {outcome}"
            )
            raise MainJobFailed(f"{what}: {run_cause(self.instance, result.run_id)}")
        # A run over a range of partitions records one materialisation per partition, each with the step's metadata.
        seen: dict[str, dg.AssetMaterialization] = {}
        for event in result.get_asset_materialization_events():
            seen.setdefault(event.asset_key.path[-1], event.materialization)
        for stage, mat in seen.items():
            if stage in _WORK_FIELDS:
                name, counted = _WORK_FIELDS[stage]
                self.work[name] = self.work.get(name, 0) + int(mat.metadata[counted].value)
            elif stage in ("published", "track_record"):
                self.work[stage] = self.work.get(stage, 0) + 1
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
        log(
            f"retention: round failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "the next run resumes it"
        )


@dataclass
class _Jobs:
    """The code location's jobs, built when the first run needs them: a tick with nothing to do imports neither the
    asset modules (torch, scipy) nor builds the definitions."""

    settings: Settings
    resources: dict[str, Any]
    _defs: Any = None

    def get(self, name: str) -> dg.JobDefinition:
        if self._defs is None:
            from kronos_assets.defs.factory import build_definitions

            # Each timeframe's track record (scoreboards, verdicts, calibration), once its series are scored.
            records = [
                dg.define_asset_job(f"track_record_{tf.name}_job", selection=[track_record_key(tf.name)])
                for tf in self.settings.timeframes
            ]
            self._defs = dg.Definitions.merge(
                build_definitions(self.settings, self.resources), dg.Definitions(jobs=records)
            )
        return self._defs.resolve_job_def(name)


def _span(symbols: list[str], order: list[str]) -> tuple[str, str]:
    """The first and last of ``symbols`` in the partitions' order: a multi-partition range is the rectangle of
    each dimension's range, so one run covers these symbols (and any configured between them) at once."""
    ranked = sorted(symbols, key=order.index)
    return ranked[0], ranked[-1]


def _recorded(instance: dg.DagsterInstance, key: dg.AssetKey, field_name: str) -> str | None:
    """A metadata value of the asset's newest materialisation (retention keeps the newest: retention.py)."""
    event = instance.get_latest_materialization_event(key)
    entry = event.asset_materialization.metadata.get(field_name) if event and event.asset_materialization else None
    return None if entry is None else str(entry.value)


def run_main_job(
    settings: Settings,
    backfill_bars: int = 48,
    now: datetime | None = None,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    pool_wait_s: float = POOL_WAIT_S,
) -> MainJobResult:
    """One tick: per timeframe, only what is missing or stale (incremental.py) runs, in at most three runs that
    each cover every symbol: candle days not stored whole, then forecasts, scores and the publish over the bars
    with work, then the track record when the scores changed."""
    resources = resources if resources is not None else build_resources(settings)
    # before anything is created: a refused now leaves no run, no instance, no warehouse behind
    now = resolve_now(settings, now, library(resources["market"]) if settings.replay else None)
    instance = instance or instance_for(settings)
    store = library(resources["store"])
    warehouse = library(resources["warehouse"])
    recover(settings, instance, store, log)
    jobs = _Jobs(settings, resources)
    runner = _Runner(settings, instance, log, now=now)
    order = list(settings.symbols)
    public = settings.public_symbols
    with bounded_pool_waits(instance, pool_wait_s, on_reap=lambda m: log(f"recovered: {m}")):
        for tf in settings.timeframes:
            step = tf.bar.delta
            newest = tf.bar.last_closed_open(now)
            start = datetime(tf.start.year, tf.start.month, tf.start.day, tzinfo=timezone.utc)
            # Near the partitions' start there is less to backfill and less history: both begin at the first bar.
            first = max(newest - (backfill_bars - 1) * step, start)
            candles_from = max(first - tf.history_bars * step, start)
            window = [first + i * step for i in range((newest - first) // step + 1)]

            days = {s: candle_days_to_refresh(warehouse, s, tf.name, step, candles_from, newest) for s in order}
            # One run per block of consecutive days that some symbol lacks: a day stored whole between two blocks
            # (an older record's) is not fetched again, so a source that now answers otherwise cannot replace it.
            for lo, end in contiguous(sorted({d for ds in days.values() for d in ds}), ONE_DAY):
                need = {s: block for s, ds in days.items() if (block := [d for d in ds if lo <= d < end])}
                a, b = _span(list(need), order)
                runner.run(
                    jobs.get(candles_job_name(tf.name)),
                    f"{', '.join(need)} {tf.name}: candles {lo:%Y-%m-%d}..{end - ONE_DAY:%Y-%m-%d} "
                    f"({sum(map(len, need.values()))} symbol-days not stored whole)",
                    day_key(a, lo),
                    day_key(b, end - ONE_DAY),
                )

            sampling = settings.sampling_for(tf.name)
            versions = forecast_versions(settings.model_specs, list(settings.forecasters), sampling, tf.history_bars)
            work: dict[str, list[datetime]] = {}
            counts = [0, 0]
            for s in order:
                todo = forecasts_to_make(warehouse, s, tf.name, step, window, versions, only_with_candles=True)
                score = bars_to_score(warehouse, s, tf.name, step, tf.horizon, window)
                counts[0] += sum(map(len, todo.values()))
                counts[1] += len(score)
                bars = sorted({b for bs in todo.values() for b in bs} | set(score))
                if bars:
                    work[s] = bars
            # Read before this tick writes: a difference means data stored since the last complete publish (one cut
            # short, or another run's) that may lie anywhere in the window, so the whole window is published again.
            if publish_inputs(warehouse, tf.name, public) != _published_inputs(store, tf.name):
                work = {s: window for s in order}
            if work:
                lo, hi = min(b[0] for b in work.values()), max(b[-1] for b in work.values())
                a, b = _span(list(work), order)
                runner.run(
                    jobs.get(forecast_job_name(tf.name)),
                    f"{', '.join(work)} {tf.name}: forecast, score and publish bars {lo:%Y-%m-%d %H:%M}.."
                    f"{hi:%Y-%m-%d %H:%M} ({counts[0]} forecasts missing or stale, {counts[1]} bars with "
                    "stored forecasts to score)",
                    bar_key(a, lo),
                    bar_key(b, hi),
                )
            else:
                log(f"{tf.name}: forecasts, scores and publication up to {newest:%Y-%m-%d %H:%M} already stored")

            if scores_digest(warehouse, tf.name) != _recorded(instance, track_record_key(tf.name), TRACK_RECORD_INPUTS):
                runner.run(jobs.get(f"track_record_{tf.name}_job"), f"{tf.name}: track record and verdicts")
    prune_runs(settings, instance, log)
    w = runner.work
    return MainJobResult(
        dashboard=store.location("index.html"),
        runs=runner.done,
        forecasts_computed=w.get("forecasts_computed", 0),
        forecasts_scored=w.get("forecasts_scored", 0),
        published=bool(w.get("published")),
        track_records=w.get("track_record", 0),
    )


def _published_inputs(store: Any, timeframe: str) -> str | None:
    """The digest the last complete publish of ``timeframe`` recorded in the manifest (None: none recorded)."""
    manifest, _ = read_manifest(store)
    return manifest.get("inputs", {}).get(timeframe)
