"""Scoring stored forecasts once their horizon has closed: for the bars k of one series, the forecasts whose last
horizon bar is k (made at origin k - (horizon - 1) bars) against the realised clean candles, written to the
evaluations table in place of any earlier scores of those bars (idempotent)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from kronos_assets.evaluation.records import evaluation_rows, load_close_paths
from kronos_assets.metrics.registry import metrics
from kronos_assets.warehouse import Warehouse, score_sums
from kronos_assets.warehouse.paths_retention import KEEP_SCORES_OF_PRUNED, pruned

TS = pl.Datetime("us", "UTC")


class HorizonNotClosed(Exception):
    """The last bar to score is not in clean candles yet: the evaluation must wait."""


@dataclass
class Scored:
    forecasts: int = 0  # (origin, model) pairs scored
    missing: list[str] = field(default_factory=list)  # 'SYMBOL YYYY-MM-DD HH:MM' origins that should have a forecast


def _not_closed(symbol: str, timeframe: str, bar: datetime) -> str:
    return (
        f"{symbol} {timeframe}: bar {bar} has not closed or is not in clean candles yet; an evaluation waits "
        "until every bar of its horizon has closed"
    )


def require_closed(warehouse: Warehouse, symbol: str, timeframe: str, bar: datetime) -> None:
    """Raises HorizonNotClosed unless ``bar`` is in clean candles (every bar before it is then closed too)."""
    found = warehouse.query(
        "SELECT count(*) AS n FROM clean_candles WHERE symbol = ? AND timeframe = ? AND ts = ?",
        [symbol, timeframe, bar],
    )["n"][0]
    if not found:
        raise HorizonNotClosed(_not_closed(symbol, timeframe, bar))


def score_bars(
    warehouse: Warehouse,
    symbol: str,
    timeframe: str,
    step: timedelta,
    horizon: int,
    bars: list[datetime],
    into: Scored,
    models: list[str] | None = None,
) -> None:
    """Score the forecasts ending at each of ``bars`` (sorted) of one series; counts and gaps go to ``into``.
    ``models``: score (and replace the scores of) only these models' forecasts (None: every model's)."""
    origins = [k - (horizon - 1) * step for k in bars]
    heads = load_close_paths(warehouse, symbol, timeframe, origins)
    gone = pruned(warehouse, symbol, timeframe, origins)  # paths pruned past retention: their scores stay as stored
    if models is not None and heads.height:
        heads = heads.filter(pl.col("model").is_in(models))
    realised = warehouse.query(
        "SELECT ts, close FROM clean_candles WHERE symbol = ? AND timeframe = ? AND ts >= ? AND ts <= ? ORDER BY ts",
        [symbol, timeframe, origins[0], bars[-1]],
    )
    if realised.height == 0 or realised["ts"][-1] < bars[-1]:
        raise HorizonNotClosed(_not_closed(symbol, timeframe, bars[-1]))
    rows = []
    by_origin = {o: [] for o in origins}
    for head in heads.iter_rows(named=True):
        by_origin[head["origin"]].append(head)
    # Origins before the first stored forecast were never forecast (the series' backtest starts later): nothing is
    # missing there. A hole after it is a forecast that should exist, worth a warning.
    first = warehouse.query(
        "SELECT min(origin) AS o FROM forecasts WHERE symbol = ? AND timeframe = ?", [symbol, timeframe]
    )["o"][0]
    for k, origin in zip(bars, origins):
        if not by_origin[origin] and (first is None or origin >= first) and not any(o == origin for o, _ in gone):
            into.missing.append(f"{symbol} {origin:%Y-%m-%d %H:%M}")
        for head in by_origin[origin]:
            rows += evaluation_rows(head, realised, symbol, timeframe, step, k)
    types = {"origin": TS, "ts": TS, "scored_bar": TS} | {m.name: pl.Float64 for m in metrics()}  # NULLs typed
    frame = pl.DataFrame(rows, schema_overrides=types, infer_schema_length=None)
    only = "" if models is None else " AND model IN (SELECT unnest(?::VARCHAR[]))"
    only += f" AND {KEEP_SCORES_OF_PRUNED}" if gone else ""
    where = "symbol = ? AND timeframe = ? AND scored_bar IN (SELECT unnest(?::TIMESTAMPTZ[]))" + only
    params = [symbol, timeframe, bars] + ([list(models)] if models is not None else [])

    def write(con: Any) -> None:
        # The scores replaced and the running aggregates of their origins' days in one transaction: a kill -9
        # never leaves the track record's sums apart from the scores.
        incoming = Warehouse._arrow_for(con, "evaluations", frame) if frame.height else None
        con.execute(f"DELETE FROM evaluations WHERE {where}", params)
        if incoming is not None:
            con.register("_incoming", incoming)
            con.execute("INSERT INTO evaluations SELECT * FROM _incoming")
            con.unregister("_incoming")
        score_sums.refresh(con, symbol, timeframe, score_sums.origin_days(origins))

    warehouse.transact(f"scoring {symbol} {timeframe} bars {bars[0]} .. {bars[-1]}", write)
    into.forecasts += len({(r["origin"], r["model"]) for r in rows})
