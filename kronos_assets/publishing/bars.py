"""Publishing the forecasts of given bars of one timeframe: each series' history, paths and latest snapshot read
from the warehouse, the dashboard's series and scoreboard, handed to ``publish_site`` (manifest written last).

The Dagster asset ``published_<tf>`` calls ``publish_bars`` with its partitions' bars and a ``PublishConfig`` it
builds from the profile (defs/publish.py, ``publish_config``); tests and the benchmarks call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kronos_assets.evaluation.track_record import DM_WINDOWS, VERDICT_WINDOW, verdicts
from kronos_assets.market.timeframes import timeframe_delta
from kronos_assets.publishing.latest import stored_snapshot
from kronos_assets.publishing.site import SeriesUpdate, publish_site
from kronos_assets.publishing.snapshots import forecast_records, path_matrices, scoreboard, series_snapshot
from kronos_assets.publishing.store import Store
from kronos_assets.warehouse import Warehouse


class NothingToPublish(Exception):
    pass


@dataclass(frozen=True)
class PublishConfig:
    """What a publication needs to know of the profile, as plain values."""

    profile: str
    symbols: tuple[str, ...]  # the configured markets: the dashboard shows each of them in every timeframe
    timeframes: tuple[str, ...]
    primary_model: str  # the model a series' latest snapshot shows
    synthetic: bool  # a synthetic market: the files say so
    replay_exchange: str | None  # market replay: who served the replayed candles ("Binance"); None otherwise
    public_symbols: tuple[str, ...] | None  # whose scores public files may show (None: every series stored)


def publish_bars(
    config: PublishConfig,
    warehouse: Warehouse,
    store: Store,
    bars_by_symbol: dict[str, list[datetime]],
    timeframe: str,
    log: Any = None,
    inputs: str | None = None,
):
    """Publish the forecasts of the given bars (origin = bar + 1 bar) of one timeframe; returns the report.

    Each series gets its history and paths for these origins; its latest files move to the newest origin unless
    a newer one is already published (a backfill of old bars never rolls ``latest`` back). ``inputs``: the
    digest of what is published (incremental.publish_inputs, taken before the reads), recorded in the manifest.
    """
    series = [(s, t) for t in config.timeframes for s in config.symbols]
    series += [(s, timeframe) for s in bars_by_symbol if (s, timeframe) not in series]
    stored = {key: stored_snapshot(store, *key, log) for key in series}  # before the warehouse is opened
    with warehouse.connect() as con:  # every read on one connection, closed before the uploads
        con = _Connection(con)
        updates, all_snaps, board = _gather(config, con, stored, bars_by_symbol, timeframe, log)
        judged = [
            v for t in config.timeframes for v in verdicts(con, t, DM_WINDOWS[VERDICT_WINDOW], symbols=_public(config))
        ]
    generated_at = datetime.fromisoformat(max(s["origin"] for s in all_snaps))
    return publish_site(
        store,
        updates,
        all_snaps,
        board,
        config.synthetic,
        config.profile,
        generated_at,
        judged,
        inputs={timeframe: inputs} if inputs else None,
    )


class _Connection:
    """The ``query`` of a Warehouse on a connection already open."""

    def __init__(self, con: Any):
        self.con = con

    def query(self, sql: str, params: Any = None) -> Any:
        return self.con.execute(sql, params or []).pl()


def _public(config: PublishConfig) -> list[str] | None:
    return None if config.public_symbols is None else list(config.public_symbols)


def _gather(
    config: PublishConfig,
    warehouse: Any,
    stored: dict[tuple[str, str], dict[str, Any] | None],
    bars_by_symbol: dict[str, list[datetime]],
    timeframe: str,
    log: Any,
) -> tuple[list[SeriesUpdate], list[dict[str, Any]], list[dict[str, Any]]]:
    step = timeframe_delta(timeframe)
    updates, current = [], {}
    public = _public(config)
    boards = {timeframe: scoreboard(warehouse, timeframe, public)}
    for symbol, bars in bars_by_symbol.items():
        origins = [b + step for b in bars]
        history = forecast_records(warehouse, symbol, timeframe, origins)
        if not history:
            raise NothingToPublish(f"{symbol} {timeframe}: no forecasts stored for these bars to publish")
        newest = max(h["origin"] for h in history)
        published = stored.get((symbol, timeframe))
        snap = None
        if published is None or published.get("origin", "") <= newest:
            snap = series_snapshot(
                warehouse,
                symbol,
                timeframe,
                datetime.fromisoformat(newest),
                step,
                config.primary_model,
                config.synthetic,
                config.replay_exchange,
            )
            if snap is None:
                raise NothingToPublish(f"{symbol} {timeframe}: no {config.primary_model} forecast at {newest}")
            current[(symbol, timeframe)] = snap
        elif log is not None:
            log.info(f"{symbol} {timeframe}: latest stays at {published['origin']} (newer than {newest})")
        paths = path_matrices(warehouse, symbol, timeframe, [datetime.fromisoformat(h["origin"]) for h in history])
        board = [r for r in boards[timeframe] if r["symbol"] == symbol]
        updates.append(SeriesUpdate(symbol, timeframe, history, paths, snap, board))
    # The dashboard shows every configured series: the ones published now and the latest of the others.
    all_snaps = []
    for t in config.timeframes:
        for symbol in config.symbols:
            snap = current.get((symbol, t)) or stored.get((symbol, t))
            if snap:
                all_snaps.append(snap)
    board = [row for t in config.timeframes for row in (boards[t] if t in boards else scoreboard(warehouse, t, public))]
    return updates, all_snaps, board
