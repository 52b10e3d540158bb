"""Market tests; shared helpers: loopback fakes, tiny-backoff configs, exact comparisons."""

from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any, Iterator

import polars as pl

from kronos_assets.market.ccxt_source import CcxtSource
from kronos_assets_tests.fakes.fake_exchange import FakeExchange, quote_volume

FAST = {"enable_rate_limit": False, "timeout_ms": 2000, "max_retries": 3, "backoff_s": 0.001, "backoff_max_s": 0.01}


class SleepRecorder:
    """Stands in for time.sleep: records the waits asked for, sleeps none of them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def window(frame: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    return frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))


def assert_same_candles(got: pl.DataFrame, source: pl.DataFrame, exchange: str | dict | None = None) -> None:
    """``got`` holds exactly the bars of ``source`` (bit-equal OHLCV, quote volume as the fake serves it)."""
    want = source.select("ts", "open", "high", "low", "close", "volume").with_columns(quote_volume(source))
    assert got["ts"].to_list() == want["ts"].to_list()
    for col in ("open", "high", "low", "close", "volume", "amount"):
        assert got[col].to_list() == want[col].to_list(), col
    if isinstance(exchange, str):
        assert set(got["exchange"].to_list()) == {exchange}
    elif isinstance(exchange, dict):  # {ts: exchange} for exceptions, "*" for the rest
        default = exchange.get("*")
        for ts, ex in zip(got["ts"].to_list(), got["exchange"].to_list()):
            assert ex == exchange.get(ts, default), (ts, ex)


def source_for(
    *fakes: FakeExchange, page_limit: int | dict[str, int] | None = None, sleep=None, **overrides: Any
) -> CcxtSource:
    exchanges = []
    for fake in fakes:
        entry: dict[str, Any] = {"id": fake.dialect, "base_url": fake.url}
        limit = page_limit.get(fake.dialect) if isinstance(page_limit, dict) else page_limit
        if limit:
            entry["page_limit"] = limit
        exchanges.append(entry)
    cfg = {**FAST, **overrides, "exchanges": exchanges}
    return CcxtSource(cfg, sleep=sleep) if sleep is not None else CcxtSource(cfg)


@contextmanager
def fakes(
    frame_by_symbol: dict[str, pl.DataFrame],
    now: datetime | None,
    dialects=("binance", "okx"),
    timeframe: str = "1h",
    **kw: Any,
) -> Iterator[list[FakeExchange]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(FakeExchange(d, {s: {timeframe: f} for s, f in frame_by_symbol.items()}, now, **kw))
            for d in dialects
        ]


def min_requests(start: datetime, end: datetime, step: timedelta, limit: int) -> int:
    return math.ceil((end - start) / step / limit)
