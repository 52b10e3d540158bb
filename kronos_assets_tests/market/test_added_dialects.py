"""Exchanges added after Binance and OKX, driven by the real ccxt client through their loopback fake dialect: the
same pagination, forming-bar cut, payload checks, gap refills and fallback as the first two.

Adding an exchange to these tests is one entry in ``ADDED`` (its malformed answers) once the fake speaks it."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pytest

from kronos_assets.market.ccxt_source import FetchError
from kronos_assets_tests.conftest import real_candles
from kronos_assets_tests.fakes.fake_exchange import FakeExchange, utc
from kronos_assets_tests.market import FAST, assert_same_candles, fakes, min_requests, source_for, window

H = timedelta(hours=1)
NOW = utc(2025, 1, 1)

# dialect -> malformed kline answers: each must be a fault of that exchange, handed to the next one
ADDED: dict[str, dict[str, str]] = {
    "bybit": {
        "envelope": '{"retCode":0,"retMsg":"OK","result":{"list":null}}',
        "short_row": json.dumps(
            {"retCode": 0, "retMsg": "OK", "result": {"list": [["1719792000000", "2", "3", "1", "2", "10"]]}}
        ),
        "number_time": json.dumps(
            {"retCode": 0, "retMsg": "OK", "result": {"list": [[1719792000000, "2", "3", "1", "2", "10", "15"]]}}
        ),
        "high_below_low": json.dumps(
            {"retCode": 0, "retMsg": "OK", "result": {"list": [["1719792000000", "2", "1", "3", "2", "10", "15"]]}}
        ),
        "html": "<html><body>maintenance</body></html>",
    },
    "kucoin": {
        "envelope": '{"code":"200000","data":{"items":[]}}',
        "short_row": json.dumps({"code": "200000", "data": [["1719792000", "2", "2", "3", "1", "10"]]}),
        "number_time": json.dumps({"code": "200000", "data": [[1719792000, "2", "2", "3", "1", "10", "15"]]}),
        "high_below_low": json.dumps({"code": "200000", "data": [["1719792000", "2", "2", "1", "3", "10", "15"]]}),
        "off_grid": json.dumps({"code": "200000", "data": [["1719792001", "2", "2", "3", "1", "10", "15"]]}),
        "html": "<html><body>maintenance</body></html>",
    },
}
NOT_JSON = {"html"}


@pytest.fixture(scope="module")
def eth24() -> pl.DataFrame:
    return real_candles("binance_ETHUSDT_1h_20240101_20260331.csv.gz")


@pytest.fixture(scope="module")
def btc20() -> pl.DataFrame:  # real maintenance gaps
    return real_candles("binance_BTCUSDT_1h_20200920_20250919.csv.gz")


@pytest.mark.parametrize("dialect", sorted(ADDED))
def test_paginates_exactly_and_never_returns_the_forming_bar(eth24, dialect):
    start, end = utc(2024, 5, 1), utc(2024, 6, 5)
    now = utc(2024, 6, 3, 10, 30)  # the 10:00 bar is forming; the fake serves it
    with FakeExchange(dialect, {"ETH/USDT": {"1h": eth24}}, now, extra_bars=3) as fake:
        res = source_for(fake, page_limit=50).fetch_result("ETH/USDT", "1h", start, end, now)
    assert_same_candles(res.candles, window(eth24, start, utc(2024, 6, 3, 10)), exchange=dialect)
    assert res.report.page_requests == min_requests(start, utc(2024, 6, 3, 10), H, 50) == len(fake.kline_requests())
    assert res.report.gaps == [] and res.report.requests == len(fake.requests)  # pages + market loading
    assert all(r[2] == 200 for r in fake.requests)
    assert not any("until" in q for _, q, _ in fake.kline_requests())  # only parameters the exchange knows
    assert res.candles["amount"].null_count() == 0  # the quote volume of the raw row is kept


@pytest.mark.parametrize("dialect", sorted(ADDED))
def test_repeated_rows_are_deduplicated(eth24, dialect):
    start, end = utc(2024, 3, 1), utc(2024, 3, 10)
    with FakeExchange(dialect, {"ETH/USDT": {"1h": eth24}}, NOW, repeat_rows=True) as fake:
        res = source_for(fake, page_limit=40).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end), exchange=dialect)


@pytest.mark.parametrize("dialect,kind", [(d, k) for d in sorted(ADDED) for k in sorted(ADDED[d])])
def test_malformed_answer_is_a_fault_of_that_exchange(eth24, dialect, kind):
    start, end = utc(2024, 7, 1), utc(2024, 7, 2)
    with fakes({"ETH/USDT": eth24}, NOW, dialects=(dialect, "binance")) as (fd, fb):
        fd.add_fault(action="body", body=ADDED[dialect][kind], times=None)
        res = source_for(fd, fb).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end), exchange="binance")
    assert len(fd.kline_requests()) == (1 + FAST["max_retries"] if kind in NOT_JSON else 1)
    (event,) = [e for e in res.report.events if f"{dialect} failed this window" in e]
    assert f"{dialect}: malformed payload for GET" in event


@pytest.mark.parametrize("dialect", sorted(ADDED))
def test_alone_it_fails_naming_the_cause(eth24, dialect):
    with FakeExchange(dialect, {"ETH/USDT": {"1h": eth24}}, NOW) as fake:
        fake.add_fault(action="body", body=ADDED[dialect]["short_row"], times=None)
        with pytest.raises(
            FetchError,
            match=rf"^ETH/USDT 1h: no exchange could serve bars from 2024-07-01 00:00 "
            rf"UTC: {dialect}: malformed payload for GET .*kline row 1 has",
        ):
            source_for(fake).fetch_result("ETH/USDT", "1h", utc(2024, 7, 1), utc(2024, 7, 2), NOW)


@pytest.mark.parametrize("dialect", sorted(ADDED))
def test_serves_what_a_geo_blocked_first_exchange_cannot(eth24, dialect):
    start, end = utc(2024, 10, 1), utc(2024, 10, 8)
    with fakes({"ETH/USDT": eth24}, NOW, dialects=("binance", dialect)) as (fb, fd):
        fb.add_fault(endpoint="*", status=451, times=None)
        res = source_for(fb, fd).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end), exchange=dialect)
    assert res.report.rows_by_exchange == {"binance": 0, dialect: res.candles.height}


@pytest.mark.parametrize("dialect", sorted(ADDED))
def test_its_gaps_are_refilled_from_the_next_exchange(eth24, dialect):
    start, end = utc(2024, 8, 1), utc(2024, 8, 5)
    hole = (utc(2024, 8, 2, 3), utc(2024, 8, 2, 7))
    with fakes({"ETH/USDT": eth24}, NOW, dialects=(dialect, "okx")) as (fd, fo):
        fd.add_fault(action="gap", gap=hole, times=None)
        res = source_for(fd, fo).fetch_result("ETH/USDT", "1h", start, end, NOW)
    hours = [hole[0] + k * H for k in range(4)]
    assert_same_candles(res.candles, window(eth24, start, end), exchange={**{t: "okx" for t in hours}, "*": dialect})
    assert res.report.gaps == [] and res.report.gaps_refilled == 4


@pytest.mark.parametrize("dialect", sorted(ADDED))
def test_pagination_that_does_not_advance_is_handed_on(eth24, dialect):
    start, end = utc(2024, 7, 1), utc(2024, 7, 3)
    with fakes({"ETH/USDT": eth24}, NOW, dialects=(dialect, "okx")) as (fd, fo):
        fd.add_fault(action="stuck", times=None)  # the newest bars whatever the window asked for
        res = source_for(fd, fo).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end), exchange="okx")
    assert any(f"{dialect}: malformed payload" in e and "pagination does not advance" in e for e in res.report.events)


@pytest.mark.parametrize("dialect", sorted(ADDED))
def test_default_page_limit_loses_no_bar_and_costs_the_minimum(eth24, dialect):
    from kronos_assets.market.dialects import dialect_for

    start, end = utc(2024, 1, 1), utc(2024, 6, 1)  # several full pages at the dialect's own page limit
    with FakeExchange(dialect, {"ETH/USDT": {"1h": eth24}}, NOW) as fake:
        res = source_for(fake).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end), exchange=dialect)
    assert res.report.page_requests == min_requests(start, end, H, dialect_for(dialect).page_limit)
    assert res.report.gap_requests == 0 and res.report.gaps_refilled == 0  # no page dropped its first bar
