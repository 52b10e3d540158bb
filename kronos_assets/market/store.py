"""Raw candles into the warehouse without ever losing a stored closed bar.

``ingest_window`` fetches one window of closed bars, then merges them into ``raw_candles`` by open time in one
transaction: a bar that came back replaces its stored copy, a stored bar that did not come back stays (an
exchange answer that is short, empty or cut never removes anything). A fetch that raises writes nothing.
What the stored window still lacks of the bars that should exist by now is reported, never invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from kronos_assets.market.gaps import Gap, dt_to_ms, find_gaps
from kronos_assets.market.schema import CandleError, validate_candles
from kronos_assets.market.source import CandleSource
from kronos_assets.market.timeframes import timeframe_seconds
from kronos_assets.warehouse import Warehouse

CANDLE_WHERE = "symbol = ? AND timeframe = ? AND ts >= ? AND ts < ?"
RAW_KEYS = ("symbol", "timeframe", "ts")


@dataclass
class StoredWindow:
    """One window after its merge: what was fetched, what is stored, which bars that should exist are missing."""

    symbol: str
    timeframe: str
    start: datetime
    end: datetime
    fetched: int
    stored_before: int
    stored_after: int
    expected: int  # bars of [start, end) that have closed by now
    missing: list[Gap] = field(default_factory=list)

    @property
    def missing_bars(self) -> int:
        return sum(g.bars for g in self.missing)

    def to_metadata(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched,
            "stored_before": self.stored_before,
            "stored_after": self.stored_after,
            "expected": self.expected,
            "missing_bars": self.missing_bars,
            "missing": [[g.start.isoformat(), g.end.isoformat(), g.bars] for g in self.missing],
        }


def closed_stop_ms(end: datetime, now: datetime, timeframe: str) -> int:
    """End (exclusive, ms) of the bars of a window ending at ``end`` that have closed by ``now``."""
    step = timeframe_seconds(timeframe) * 1000
    now_ms = dt_to_ms(now)
    return min(dt_to_ms(end), now_ms - now_ms % step)


def stored_open_times(warehouse: Warehouse, symbol: str, timeframe: str, start: datetime, end: datetime) -> list[int]:
    df = warehouse.query(
        f"SELECT epoch_ms(ts) AS ms FROM raw_candles WHERE {CANDLE_WHERE} ORDER BY ts", [symbol, timeframe, start, end]
    )
    return df["ms"].to_list()


def ingest_window(
    source: CandleSource,
    warehouse: Warehouse,
    symbol: str,
    timeframe: str,
    start: datetime,
    end: datetime,
    now: datetime,
) -> StoredWindow:
    """Fetch the closed bars of ``[start, end)`` and merge them into raw_candles (see the module docstring)."""
    name = f"{source.name} {symbol} {timeframe}"
    frame = validate_candles(source.fetch(symbol, timeframe, start, end, now), name)
    step = timeframe_seconds(timeframe) * 1000
    stop = closed_stop_ms(end, now, timeframe)
    if frame.height:  # a source that breaks its promise must not write outside the window or a forming bar
        first, last = dt_to_ms(frame["ts"][0]), dt_to_ms(frame["ts"][-1])
        if first < dt_to_ms(start) or last >= stop:
            raise CandleError(
                f"{name}: bars {frame['ts'][0]}..{frame['ts'][-1]} fall outside the closed bars of "
                f"[{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) at {now:%Y-%m-%d %H:%M}"
            )
    before = len(stored_open_times(warehouse, symbol, timeframe, start, end))
    rows = frame.with_columns(symbol=pl.lit(symbol), timeframe=pl.lit(timeframe))
    warehouse.merge("raw_candles", rows, RAW_KEYS)
    stored = stored_open_times(warehouse, symbol, timeframe, start, end)
    start_ms = -(-dt_to_ms(start) // step) * step
    stop = max(stop, start_ms)
    return StoredWindow(
        symbol,
        timeframe,
        start,
        end,
        frame.height,
        before,
        len(stored),
        (stop - start_ms) // step,
        find_gaps(stored, start_ms, stop, step),
    )
