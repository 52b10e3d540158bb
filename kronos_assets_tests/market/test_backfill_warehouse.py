"""A fetch that fails mid-backfill writes nothing (previous rows stay); the re-run completes the window."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from kronos_assets.market.ccxt_source import CcxtSource, FetchError
from kronos_assets.market.store import ingest_window
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.conftest import real_candles
from kronos_assets_tests.fakes.fake_exchange import FakeExchange, utc
from kronos_assets_tests.market import assert_same_candles, source_for, window


def ingest(
    source: CcxtSource, wh: Warehouse, symbol: str, timeframe: str, start: datetime, end: datetime, now: datetime
) -> int:
    """The raw_candles asset's path: fetch the window, then merge it in one transaction (nothing on error)."""
    return ingest_window(source, wh, symbol, timeframe, start, end, now).fetched


def stored(wh: Warehouse, symbol: str) -> pl.DataFrame:
    df = wh.query(
        "SELECT epoch_ms(ts) AS ms, open, high, low, close, volume, amount, exchange FROM raw_candles "
        "WHERE symbol = ? ORDER BY ts",
        [symbol],
    )
    return df.with_columns(pl.col("ms").cast(pl.Datetime("ms", "UTC")).dt.cast_time_unit("us").alias("ts"))


def test_failure_mid_backfill_keeps_previous_rows_and_rerun_completes(tmp_path):
    btc = real_candles("binance_BTCUSDT_1h_20220101_20251202.csv.gz")  # has the 2023-03-24 13:00 gap
    wh = Warehouse(tmp_path / "warehouse.duckdb", lock_timeout_s=5)
    now = utc(2023, 6, 1)
    start, end = utc(2023, 3, 1), utc(2023, 5, 1)
    with FakeExchange("binance", {"BTC/USDT": {"1h": btc}}, now) as fb:
        src = source_for(fb, page_limit=200, max_retries=2)
        # an earlier run stored the first ten days
        assert ingest(src, wh, "BTC/USDT", "1h", start, utc(2023, 3, 11), now) == 240
        before = stored(wh, "BTC/USDT")

        # the backfill of the whole window dies on its 4th page (500 for good)
        fb.add_fault(status=500, after=3, times=None)
        with pytest.raises(FetchError, match="no exchange could serve bars from 2023-03-26 00:00"):
            ingest(src, wh, "BTC/USDT", "1h", start, end, now)
        report = src.fetch_report()
        assert report.page_requests == 4 and report.retries == 2
        assert stored(wh, "BTC/USDT").equals(before)  # nothing half-written

        # the exchange recovers: the re-run completes the window exactly
        fb.clear_faults()
        assert ingest(src, wh, "BTC/USDT", "1h", start, end, now) == 1463
        assert [(g.start, g.end) for g in src.fetch_report().gaps] == [(utc(2023, 3, 24, 13), utc(2023, 3, 24, 14))]
        # and a second re-run is idempotent
        assert ingest(src, wh, "BTC/USDT", "1h", start, end, now) == 1463
    assert_same_candles(stored(wh, "BTC/USDT"), window(btc, start, end), exchange="binance")
    assert wh.query("SELECT count(*) AS n FROM raw_candles")["n"][0] == 1463
    assert datetime(2023, 3, 24, 13, tzinfo=timezone.utc) not in stored(wh, "BTC/USDT")["ts"].to_list()
