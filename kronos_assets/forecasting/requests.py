"""Forecast requests for bars of a candle series: what the scheduled forecasts, backtests and revision comparisons
ask a forecaster for. Each request sees only bars closed at or before its origin (the bar's close), at most the
timeframe's history window of them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, Sequence

import polars as pl

from kronos_assets.forecasting.interface import ForecastRequest, request_seed
from kronos_assets.market.timeframes import Timeframe

MIN_HISTORY = 32  # bars a request needs at least (and horizon + 2): fewer give no usable normalisation
HISTORY_COLUMNS = ["ts", "open", "high", "low", "close", "volume", "amount", "exchange"]


class Window(Protocol):
    """The timeframe settings a request needs (settings.TimeframeSettings has them)."""

    @property
    def name(self) -> str: ...
    @property
    def bar(self) -> Timeframe: ...
    @property
    def horizon(self) -> int: ...
    @property
    def history_bars(self) -> int: ...


def history_span(tf: Window, bars: Sequence[datetime]) -> tuple[datetime, datetime]:
    """[start, end) of the candles the requests of ``bars`` (sorted) can read: each bar's history window."""
    step = tf.bar.delta
    return bars[0] - tf.history_bars * step, bars[-1] + step


def build_requests(
    candles: pl.DataFrame, symbol: str, tf: Window, bars: Sequence[datetime], model: str, base_seed: int
) -> tuple[list[ForecastRequest], dict[datetime, str]]:
    """One request per bar whose history (``candles`` sorted by ts) is complete up to that bar; the other bars are
    returned with the reason."""
    step = tf.bar.delta
    ts = candles["ts"]
    requests, skipped = [], {}
    min_bars = max(MIN_HISTORY, tf.horizon + 2)
    for bar in bars:
        origin = bar + step
        hi = ts.search_sorted(origin, side="left")  # bars opening before the origin: all closed at or before it
        lo = max(0, hi - tf.history_bars)
        history = candles.slice(lo, hi - lo)
        if history.height == 0 or history["ts"][-1] != bar:
            last = history["ts"][-1] if history.height else None
            skipped[bar] = f"bar {bar} is not in clean candles (newest before it: {last})"
            continue
        if history.height < min_bars:
            skipped[bar] = f"only {history.height} bars of history (< {min_bars})"
            continue
        requests.append(
            ForecastRequest(
                symbol=symbol,
                timeframe=tf.name,
                origin=origin,
                history=history,
                future_ts=[origin + i * step for i in range(tf.horizon)],
                seed=request_seed(base_seed, symbol, tf.name, origin, model),
            )
        )
    return requests, skipped
