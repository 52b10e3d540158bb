"""The real-data study: a rolling-origin backtest of every model of the demo profile on the replayed Binance candles
over 2024-07-01 .. 2025-06-30, run as the backfill it is, then its page and study.json.

The study is the demo profile moved to a home of its own (``<home>/study``: its own warehouse and publish folder,
so the demo's record is never touched; each run's Dagster events stay in memory) with partitions starting early
enough for 480 bars of history before the first origin. It runs the graph's own jobs and assets (candles, then
forecasts and evaluations in runs of up to 168 origins, as the backfill policy does), so every number is made by the
code that runs live.
The Kronos model is whichever the demo profile names as its primary model.

``stride`` K keeps every K-th origin (K divides the horizon): runs of 168 origins (168 x K bars), tagged so that the
forecast asset makes only the strided bars' forecasts (partitions.ORIGIN_STRIDE) and the evaluations find only those to
score. Dagster would launch a scattered selection as one run per partition, and its bookkeeping per run (about 2 s
of CPU) would then cost more than the forecasts.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import dagster as dg

from kronos_assets.base.locks import LockHeld, file_lock
from kronos_assets.cli.main_job import QUIET, MainJobFailed
from kronos_assets.configuration.settings import Settings
from kronos_assets.defs.clock import now_tag
from kronos_assets.defs.evaluate import evaluations_key
from kronos_assets.defs.factory import build_definitions, candles_job_name, forecast_job_name
from kronos_assets.defs.forecast import forecasts_key
from kronos_assets.defs.partitions import RANGE_END, RANGE_START, bar_key, day_key, stride_tag
from kronos_assets.defs.resources import build_resources, library
from kronos_assets.evaluation.study_record import StudyWindow, study_record
from kronos_assets.orchestration.failures import run_cause
from kronos_assets.orchestration.runs import bounded_pool_waits, process_tags, sigterm_kept
from kronos_assets.publishing.study_page import publish_study

UTC = timezone.utc
STUDY_PROFILE = "study"
FIRST_ORIGIN = datetime(2024, 7, 1, tzinfo=UTC)
END_ORIGIN = datetime(2025, 7, 1, tzinfo=UTC)  # exclusive: the last origin is 2025-06-30 23:00
RUN_BARS = 168  # partitions per run, as the assets' backfill policy


def study_settings(demo: Settings) -> Settings:
    """The demo profile with its own home and partitions starting 30 days before the study's first origin (480
    bars of history need 20)."""
    start = (FIRST_ORIGIN - timedelta(days=30)).date()
    return replace(
        demo,
        profile=STUDY_PROFILE,
        description=f"Real-data study ({demo.description})",
        timeframes=tuple(replace(tf, start=min(tf.start, start)) for tf in demo.timeframes if tf.name == "1h"),
    )


def study_window(months: int | None = None, stride: int = 1) -> StudyWindow:
    end = END_ORIGIN
    if months:  # the first N months of the study year
        y, m = FIRST_ORIGIN.year + (FIRST_ORIGIN.month - 1 + months) // 12, (FIRST_ORIGIN.month - 1 + months) % 12 + 1
        end = min(END_ORIGIN, datetime(y, m, 1, tzinfo=UTC))
    return StudyWindow(FIRST_ORIGIN, end, stride)


@dataclass
class StudyResult:
    page: str
    json_path: str
    record: dict[str, Any]
    seconds: dict[str, float]


def run_study(
    demo: Settings, window: StudyWindow, log: Callable[[str], None] = print, instance: dg.DagsterInstance | None = None
) -> StudyResult:
    settings = study_settings(demo)
    tf = settings.timeframe("1h")
    step = timedelta(hours=1)
    if window.stride < 1 or tf.horizon % window.stride:
        raise MainJobFailed(
            f"--stride {window.stride} must divide the horizon ({tf.horizon} bars): the evaluation of a "
            "strided origin is then itself a strided partition"
        )
    resources = build_resources(settings)
    market = library(resources["market"])
    # Origin o is the close of bar o - 1h; a forecast is scored at the close of its last horizon bar.
    first_bar, last_bar = window.first_origin - step, window.end_origin - 2 * step
    last_scored_bar = last_bar + tf.horizon * step
    now = last_scored_bar + step  # no run sees a bar closing later
    if now > market.data_end():
        raise MainJobFailed(
            f"the replay data ends {market.data_end():%Y-%m-%d %H:%M} UTC, before the study's last "
            f"horizon closes ({now:%Y-%m-%d %H:%M} UTC)"
        )
    defs = build_definitions(settings, resources)
    forecasts, evaluations = forecasts_key("1h"), evaluations_key("1h")
    extra = dg.Definitions(
        jobs=[
            dg.define_asset_job("study_1h", selection=[forecasts, evaluations]),
            dg.define_asset_job("study_scores_1h", selection=[evaluations]),
        ]
    )
    defs = dg.Definitions.merge(defs, extra)
    seconds: dict[str, float] = {}
    tags = {**process_tags(), **now_tag(now)}

    def run(job: str, what: str, start: Any, end: Any, extra: dict[str, str] | None = None) -> None:
        # Each run records its events in a Dagster instance of its own, in memory: a year is 35,000 partitions of
        # two assets, and writing their events to SQLite (a commit, and an fsync, each) took longer than the
        # forecasts on a busy disk. What the study made is in its warehouse, and a re-run continues from there.
        with contextlib.ExitStack() as stack:
            inst = instance or stack.enter_context(dg.DagsterInstance.ephemeral())
            with bounded_pool_waits(inst, 300.0), sigterm_kept():
                result = defs.resolve_job_def(job).execute_in_process(
                    instance=inst,
                    run_config=QUIET,
                    raise_on_error=False,
                    tags={RANGE_START: str(start), RANGE_END: str(end), **tags, **(extra or {})},
                )
            if not result.success:
                raise MainJobFailed(f"{what}: {run_cause(inst, result.run_id)}")

    with _study_lock(settings.profile_home):
        t0 = time.perf_counter()
        candles_from = first_bar - tf.history_bars * step
        for symbol in settings.symbols:
            log(f"{symbol}: candles {candles_from:%Y-%m-%d}..{last_scored_bar:%Y-%m-%d}")
            run(
                candles_job_name("1h"),
                f"{symbol} candles",
                day_key(symbol, candles_from),
                day_key(symbol, last_scored_bar),
            )
        seconds["candles"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ranges = _run_ranges(first_bar, last_bar, tf.horizon, window.stride)
        newest = first_bar + (last_bar - first_bar) // (window.stride * step) * window.stride * step
        # Range by range, every symbol in turn: a study stopped part-way has the same months for every symbol, and
        # a re-run continues from what the warehouse holds.
        for a, b, job in ranges:
            for symbol in settings.symbols:
                run(
                    job,
                    f"{symbol} {job} {a:%Y-%m-%d %H:%M}..{b:%Y-%m-%d %H:%M}",
                    bar_key(symbol, a),
                    bar_key(symbol, b),
                    stride_tag(window.stride, first_bar),
                )
            log(
                f"{a:%Y-%m-%d}..{b:%Y-%m-%d}: {'scored' if job == 'study_scores_1h' else 'forecast and scored'} "
                f"({time.perf_counter() - t0:.0f} s so far)"
            )
        seconds["forecast_and_score"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        # The study home's dashboard (the newest forecast bar of each series, again), linked to the study page.
        for symbol in settings.symbols:
            run(forecast_job_name("1h"), f"{symbol} dashboard", bar_key(symbol, newest), bar_key(symbol, newest))
        seconds["dashboard"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    wh = library(resources["warehouse"])
    record = study_record(wh, "1h", window, settings.primary_model, list(settings.forecasters))
    record["as_of_now"] = now.isoformat()
    record["load_average"] = round(os.getloadavg()[0], 1)
    seconds["study_page"] = time.perf_counter() - t0
    record["wall_seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    store = library(resources["store"])
    page = publish_study(store, record)
    return StudyResult(page=page, json_path=store.location("study.json"), record=record, seconds=seconds)


@contextlib.contextmanager
def _study_lock(home: Any) -> Iterator[None]:
    """One study at a time per home: a second one refuses at once instead of waiting on the warehouse's lock."""
    os.makedirs(home, exist_ok=True)
    path = os.path.join(home, "study.lock")
    try:
        with file_lock(path, 0.0, "the study lock"):
            yield
    except LockHeld as exc:
        raise MainJobFailed(
            f"another study is running in {home} (pid {exc.holder or 'unknown'}; lock {path})"
        ) from None


def _run_ranges(
    first_bar: datetime, last_bar: datetime, horizon: int, stride: int = 1
) -> list[tuple[datetime, datetime, str]]:
    """The runs of a study: forecast-and-score runs of up to RUN_BARS origins (RUN_BARS x stride bars), then one
    score-only run for the last horizon's bars (forecasts there are scored once their horizons close; no forecast
    is made past the study)."""
    step = timedelta(hours=1)
    out = []
    bar = first_bar
    while bar <= last_bar:
        end = min(bar + (RUN_BARS * stride - 1) * step, last_bar)
        out.append((bar, end, "study_1h"))
        bar = end + step
    out.append((last_bar + step, last_bar + horizon * step, "study_scores_1h"))
    return out


def headline_lines(record: dict[str, Any]) -> list[str]:
    """The headline table as text (the CLI's summary, the README's table)."""

    def f(x: float | None, spec: str) -> str:
        return "–" if x is None else format(x, spec)

    out = [
        "| symbol | model | CRPS vs RW+vol (p) | CRPS vs GARCH (p) | median vs last price (p) | Brier P(up) (p) "
        "| 80 % band | long/flat Sharpe (buy-and-hold; p) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in record["headline"]:
        out.append(
            f"| {r['symbol']} | {r['model']} | {f(r['crps_vs_rw_vol'], '+.1%')} ({f(r['p_rw_vol'], '.2g')}) "
            f"| {f(r['crps_vs_garch'], '+.1%')} ({f(r['p_garch'], '.2g')}) "
            f"| {f(r['point_error_vs_last'], '+.1%')} ({f(r['p_point'], '.2g')}) "
            f"| {f(r['brier_up'], '.4f')} ({f(r['p_brier'], '.2g')}) "
            f"| {f(r['coverage_80'], '.1%')} | {f(r['sharpe'], '.2f')} ({f(r['sharpe_buy_and_hold'], '.2f')}; "
            f"{f(r['p_sharpe'], '.2g')}) |"
        )
    return out


def main(demo: Settings, stride: int = 1, months: int | None = None) -> int:
    """``kronos-assets study``: run it, print the headline table, the page and the time taken; 1 on failure."""
    import sys

    if not demo.replay:
        print(
            f"study refused: profile {demo.profile} does not replay real candles (market: {demo.market}); "
            "run it with --profile demo",
            file=sys.stderr,
        )
        return 2
    window = study_window(months, stride)
    print(
        f"real-data study: {window.origins} origins per symbol from {window.first_origin:%Y-%m-%d} to before "
        f"{window.end_origin:%Y-%m-%d}, stride {stride}, models {', '.join(demo.forecasters)}; data in "
        f"{study_settings(demo).profile_home}",
        flush=True,
    )
    t0 = time.perf_counter()
    try:
        result = run_study(demo, window)
    except MainJobFailed as exc:
        sys.stdout.flush()
        print(f"study failed: {exc}", file=sys.stderr)
        return 1
    print("\n".join(headline_lines(result.record)))
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    print(f"study in {time.perf_counter() - t0:.0f} s ({parts}; load average {os.getloadavg()[0]:.1f})")
    print(f"study page: {result.page}\nstudy JSON: {result.json_path}")
    return 0
