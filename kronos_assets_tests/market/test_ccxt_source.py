"""CcxtSource driving the real ccxt client against loopback fakes that serve real Binance candles."""

from __future__ import annotations

import json
from datetime import timedelta

import ccxt
import polars as pl
import pytest

from kronos_assets.market.ccxt_source import (
    CcxtSource,
    CcxtSourceConfig,
    FetchError,
)
from kronos_assets.market.gaps import Gap
from kronos_assets_tests.conftest import real_candles
from kronos_assets_tests.fakes.fake_exchange import FakeExchange, utc
from kronos_assets_tests.market import (
    FAST,
    SleepRecorder,
    assert_same_candles,
    fakes,
    min_requests,
    source_for,
    window,
)

H = timedelta(hours=1)
NOW = utc(2025, 1, 1)


@pytest.fixture(scope="module")
def eth24() -> pl.DataFrame:  # no gaps
    return real_candles("binance_ETHUSDT_1h_20240101_20260331.csv.gz")


@pytest.fixture(scope="module")
def btc20() -> pl.DataFrame:  # ten real maintenance gaps, 2020-11 .. 2023-03
    return real_candles("binance_BTCUSDT_1h_20200920_20250919.csv.gz")


# ------------------------------------------------------------------------------------------------ pagination


@pytest.mark.parametrize("dialect,limit", [("binance", 50), ("okx", None)])
def test_paginates_many_pages_exactly(eth24, dialect, limit):
    start, end = utc(2024, 1, 1), utc(2024, 3, 1)
    with FakeExchange(dialect, {"ETH/USDT": {"1h": eth24}}, NOW) as fake:
        src = source_for(fake, page_limit=limit)
        res = src.fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end), exchange=dialect)
    page = limit or 100
    assert res.report.page_requests == min_requests(start, end, H, page) == len(fake.kline_requests())
    assert res.report.gaps == [] and res.report.gap_requests == 0
    assert res.report.requests == len(fake.requests) == res.report.page_requests + 1  # + markets
    assert res.report.rows_by_exchange == {dialect: res.candles.height}
    if dialect == "binance":  # windows are contiguous and never overlap
        starts = [int(q["startTime"]) for _, q, _ in fake.kline_requests()]
        ends = [int(q["endTime"]) for _, q, _ in fake.kline_requests()]
        assert starts[0] == int(start.timestamp() * 1000)
        assert all(s == e + 1 for s, e in zip(starts[1:], ends[:-1]))


def test_unaligned_window_and_fetch_api(eth24):
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth24}}, NOW) as fake:
        src = source_for(fake)
        df = src.fetch("ETH/USDT", "1h", utc(2024, 2, 1, 0, 30), utc(2024, 2, 2, 5, 10), NOW)
        report = src.fetch_report()
    assert_same_candles(df, window(eth24, utc(2024, 2, 1, 1), utc(2024, 2, 2, 6)), exchange="binance")
    assert report is not None and report.rows == df.height == 29


def test_forming_candle_never_returned(eth24):
    now = utc(2024, 6, 3, 10, 30)  # the 10:00 bar is forming
    start, end = utc(2024, 6, 1), utc(2024, 6, 5)
    # extra_bars: the fake ignores endTime and sends bars past it, the forming one included
    with fakes({"ETH/USDT": eth24}, now, extra_bars=5) as (fb, fo):
        for fake in (fb, fo):
            src = source_for(fake)
            res = src.fetch_result("ETH/USDT", "1h", start, end, now)
            assert_same_candles(res.candles, window(eth24, start, utc(2024, 6, 3, 10)), exchange=fake.dialect)
            assert res.report.end == utc(2024, 6, 3, 10) and res.report.gaps == []
    # the fakes did serve the forming bar: close == open, a quarter of the volume (OKX: confirm "0")
    assert fb.binance("/api/v3/klines", {"symbol": "ETHUSDT", "interval": "1h", "limit": "2"})[1][-1][0] == int(
        utc(2024, 6, 3, 10).timestamp() * 1000
    )
    assert fo.okx("/api/v5/market/candles", {"instId": "ETH-USDT", "bar": "1H", "limit": "1"})[1]["data"][0][-1] == "0"


def test_overlapping_pages_cost_no_extra_requests(eth24):
    start, end = utc(2024, 3, 1), utc(2024, 3, 20)
    with fakes({"ETH/USDT": eth24}, NOW, extra_bars=7) as (fb, fo):  # every page runs 7 bars into the next
        for fake in (fb, fo):
            res = source_for(fake, page_limit=40).fetch_result("ETH/USDT", "1h", start, end, NOW)
            assert_same_candles(res.candles, window(eth24, start, end), exchange=fake.dialect)
            assert res.report.page_requests == min_requests(start, end, H, 40)


def test_repeated_rows_are_deduplicated(eth24):
    # every row twice: ccxt cuts the page at `limit` rows (half the window), the source continues after the
    # last bar it got, so nothing is lost and nothing is doubled
    start, end = utc(2024, 3, 1), utc(2024, 3, 20)
    with fakes({"ETH/USDT": eth24}, NOW, repeat_rows=True) as (fb, fo):
        for fake in (fb, fo):
            res = source_for(fake, page_limit=40).fetch_result("ETH/USDT", "1h", start, end, NOW)
            assert_same_candles(res.candles, window(eth24, start, end), exchange=fake.dialect)
            assert res.report.gaps == []


# ------------------------------------------------------------------------------------------------ gaps


BTC_GAPS_2020_2021 = [  # SOURCES.md: the real Binance maintenance gaps
    (utc(2020, 11, 30, 6), utc(2020, 11, 30, 7), 1),
    (utc(2020, 12, 21, 14), utc(2020, 12, 21, 18), 4),
    (utc(2020, 12, 25, 2), utc(2020, 12, 25, 3), 1),
    (utc(2021, 2, 11, 4), utc(2021, 2, 11, 5), 1),
    (utc(2021, 3, 6, 2), utc(2021, 3, 6, 3), 1),
    (utc(2021, 4, 20, 2), utc(2021, 4, 20, 4), 2),
    (utc(2021, 4, 25, 5), utc(2021, 4, 25, 8), 3),
    (utc(2021, 8, 13, 2), utc(2021, 8, 13, 6), 4),
    (utc(2021, 9, 29, 7), utc(2021, 9, 29, 9), 2),
]


def test_maintenance_gaps_rerequested_then_recorded_never_filled(btc20):
    start, end = utc(2020, 11, 1), utc(2021, 10, 1)
    with fakes({"BTC/USDT": btc20}, NOW) as (fb, fo):
        res = source_for(fb, fo, max_gap_requests=100).fetch_result("BTC/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(btc20, start, end), exchange="binance")
    assert [(g.start, g.end, g.bars) for g in res.report.gaps] == BTC_GAPS_2020_2021
    assert res.report.missing_bars == 19 and not res.report.complete
    assert res.report.gap_requests == 2 * len(BTC_GAPS_2020_2021)  # each gap asked of binance, then okx
    assert res.report.gaps_refilled == 0
    first = fb.kline_requests()[-len(BTC_GAPS_2020_2021)]  # gap re-requests follow the main pass
    assert int(first[1]["startTime"]) == int(utc(2020, 11, 30, 6).timestamp() * 1000)
    assert int(first[1]["endTime"]) == int(utc(2020, 11, 30, 7).timestamp() * 1000) - 1
    # zero-volume bars are real bars and are kept
    assert res.candles.filter(pl.col("ts") == utc(2021, 2, 11, 3))["volume"].to_list() == [0.0]


def test_gap_rerequests_are_bounded(btc20):
    start, end = utc(2020, 11, 1), utc(2021, 10, 1)
    with fakes({"BTC/USDT": btc20}, NOW, dialects=("binance",)) as (fb,):
        res = source_for(fb, max_gap_requests=3).fetch_result("BTC/USDT", "1h", start, end, NOW)
    assert res.report.gap_requests == 3
    assert [(g.start, g.end, g.bars) for g in res.report.gaps] == BTC_GAPS_2020_2021
    assert_same_candles(res.candles, window(btc20, start, end), exchange="binance")


def test_gap_on_first_exchange_refilled_from_second(eth24):
    start, end = utc(2024, 5, 1), utc(2024, 5, 10)
    outage = (pl.col("ts") >= utc(2024, 5, 4, 3)) & (pl.col("ts") < utc(2024, 5, 4, 6))
    with (
        FakeExchange("binance", {"ETH/USDT": {"1h": eth24.filter(~outage)}}, NOW) as fb,
        FakeExchange("okx", {"ETH/USDT": {"1h": eth24}}, NOW) as fo,
    ):
        res = source_for(fb, fo).fetch_result("ETH/USDT", "1h", start, end, NOW)
    refilled = {t: "okx" for t in (utc(2024, 5, 4, 3), utc(2024, 5, 4, 4), utc(2024, 5, 4, 5))}
    assert_same_candles(res.candles, window(eth24, start, end), exchange={"*": "binance", **refilled})
    assert res.report.gaps == [] and res.report.gaps_refilled == 3 and res.report.gap_requests == 2
    assert res.report.rows_by_exchange == {"binance": 213, "okx": 3}


def test_gap_at_the_start_before_listing(eth24):
    start, end = utc(2023, 12, 31, 20), utc(2024, 1, 1, 6)  # the file starts 2024-01-01 00:00
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth24}}, NOW) as fb:
        res = source_for(fb).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end))
    assert res.report.gaps == [Gap(utc(2023, 12, 31, 20), utc(2024, 1, 1), 4)]


# ------------------------------------------------------------------------------------------------ faults


def test_429_waits_retry_after_then_retries(eth24):
    start, end = utc(2024, 7, 1), utc(2024, 7, 10)
    sleep = SleepRecorder()
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth24}}, NOW) as fb:
        fb.add_fault(
            status=429,
            headers={"Retry-After": "3"},
            times=2,
            after=1,
            body=json.dumps({"code": -1003, "msg": "Too much request weight used"}),
        )
        res = source_for(fb, page_limit=100, sleep=sleep).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert sleep.waits == [3.0, 3.0]
    assert res.report.retries == 2 and res.report.page_requests == 3
    assert [s for _, _, s in fb.kline_requests()] == [200, 429, 429, 200, 200]
    assert_same_candles(res.candles, window(eth24, start, end), exchange="binance")


def test_418_short_ban_is_waited_out(eth24):
    sleep = SleepRecorder()
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth24}}, NOW) as fb:
        fb.add_fault(status=418, headers={"Retry-After": "2"}, times=1)
        res = source_for(fb, sleep=sleep).fetch_result("ETH/USDT", "1h", utc(2024, 7, 1), utc(2024, 7, 2), NOW)
    assert sleep.waits == [2.0] and res.candles.height == 24


def test_418_long_ban_moves_to_next_exchange(eth24):
    start, end = utc(2024, 7, 1), utc(2024, 7, 20)
    sleep = SleepRecorder()
    with fakes({"ETH/USDT": eth24}, NOW) as (fb, fo):
        fb.add_fault(status=418, headers={"Retry-After": "7200"}, times=None)
        res = source_for(fb, fo, sleep=sleep, max_retry_after_s=60).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert sleep.waits == [] and len(fb.kline_requests()) == 1  # given up for the rest of the fetch
    assert_same_candles(res.candles, window(eth24, start, end), exchange="okx")
    assert any("Retry-After 7200s" in e for e in res.report.events)


def test_5xx_burst_retried_with_exponential_backoff(eth24):
    start, end = utc(2024, 8, 1), utc(2024, 8, 5)
    sleep = SleepRecorder()
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth24}}, NOW) as fb:
        fb.add_fault(status=503, times=3, body="<html>503 Service Unavailable</html>")
        res = source_for(fb, sleep=sleep, backoff_s=0.5, backoff_max_s=1.5).fetch_result(
            "ETH/USDT", "1h", start, end, NOW
        )
    assert sleep.waits == [0.5, 1.0, 1.5]
    assert_same_candles(res.candles, window(eth24, start, end), exchange="binance")


def test_5xx_burst_longer_than_retries_falls_back_for_that_window_only(eth24):
    start, end = utc(2024, 8, 1), utc(2024, 8, 20)
    with fakes({"ETH/USDT": eth24}, NOW) as (fb, fo):
        fb.add_fault(status=502, after=2, times=4)  # the 3rd window: 1 try + 3 retries, all 502
        res = source_for(fb, fo, page_limit={"binance": 100, "okx": 60}).fetch_result("ETH/USDT", "1h", start, end, NOW)
    okx_bars = {start + (200 + i) * H: "okx" for i in range(60)}
    assert_same_candles(res.candles, window(eth24, start, end), exchange={"*": "binance", **okx_bars})
    assert res.report.rows_by_exchange == {"binance": 456 - 60, "okx": 60}
    assert res.report.retries == 3
    assert any("still failing after 3 retries" in e for e in res.report.events)


def test_timeout_is_retried(eth24):
    start, end = utc(2024, 9, 1), utc(2024, 9, 3)
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth24}}, NOW) as fb:
        fb.add_fault(action="delay", delay_s=1.0, times=1)
        res = source_for(fb, timeout_ms=250).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert res.report.retries == 1 and any("RequestTimeout" in e for e in res.report.events)
    assert_same_candles(res.candles, window(eth24, start, end), exchange="binance")


def test_connection_reset_is_retried(eth24):
    start, end = utc(2024, 9, 1), utc(2024, 9, 3)
    with FakeExchange("okx", {"ETH/USDT": {"1h": eth24}}, NOW) as fo:
        fo.add_fault(action="reset", times=2)
        res = source_for(fo).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert res.report.retries == 2 and any("NetworkError" in e for e in res.report.events)
    assert_same_candles(res.candles, window(eth24, start, end), exchange="okx")


MALFORMED = {
    "html": "<html><body>maintenance</body></html>",
    "truncated": '[[1719792000000,"3433.2',
    "object": '{"unexpected": true}',
    "short_row": '[[1719792000000, "1.0"]]',
    "not_a_number": json.dumps([[1719792000000, "abc", "2", "1", "1.5", "10", 1719795599999, "15", 1, "0", "0", "0"]]),
    "high_below_low": json.dumps([[1719792000000, "2", "1", "3", "2", "10", 1719795599999, "15", 1, "0", "0", "0"]]),
    "off_grid": json.dumps([[1719792000123, "2", "3", "1", "2", "10", 1719795599999, "15", 1, "0", "0", "0"]]),
    "empty": "",
}


NOT_JSON = {"html", "truncated", "empty"}  # worth a retry (a cut connection, a proxy page); the rest is not


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_payload_is_a_fault_of_that_exchange(eth24, kind):
    start, end = utc(2024, 7, 1), utc(2024, 7, 2)
    with fakes({"ETH/USDT": eth24}, NOW) as (fb, fo):
        fb.add_fault(action="body", body=MALFORMED[kind], times=None)
        res = source_for(fb, fo).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end), exchange="okx")
    assert len(fb.kline_requests()) == (1 + FAST["max_retries"] if kind in NOT_JSON else 1)
    (event,) = [e for e in res.report.events if "binance failed this window" in e]
    assert "binance: malformed payload for GET" in event and "startTime=1719792000000" in event


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_payload_everywhere_fails_naming_each_exchange(eth24, kind):
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth24}}, NOW) as fb:
        fb.add_fault(action="body", body=MALFORMED[kind], times=None)
        src = source_for(fb)
        with pytest.raises(FetchError) as info:
            src.fetch_result("ETH/USDT", "1h", utc(2024, 7, 1), utc(2024, 7, 2), NOW)
    msg = str(info.value)
    assert msg.startswith("ETH/USDT 1h: no exchange could serve bars from 2024-07-01 00:00 UTC: binance: ")
    assert ("not JSON" if kind in NOT_JSON else "malformed payload for GET") in msg
    assert src.fetch_report() is info.value.report


def test_malformed_okx_envelope(eth24):
    with FakeExchange("okx", {"ETH/USDT": {"1h": eth24}}, NOW) as fo:
        fo.add_fault(action="body", body='{"code":"0","msg":"","data":null}', times=1)
        with pytest.raises(
            FetchError,
            match=r"okx: malformed payload for GET .*history-candles.*'data' array, "
            r"got '\{\"code\":\"0\",\"msg\":\"\",\"data\":null\}'",
        ):
            source_for(fo).fetch_result("ETH/USDT", "1h", utc(2024, 7, 1), utc(2024, 7, 2), NOW)


def test_451_on_first_exchange_falls_back_to_second(eth24):
    start, end = utc(2024, 10, 1), utc(2024, 10, 15)
    with fakes({"ETH/USDT": eth24}, NOW) as (fb, fo):
        fb.add_fault(
            endpoint="*",
            status=451,
            times=None,
            body='{"code":0,"msg":"Service unavailable from a restricted location."}',
        )
        res = source_for(fb, fo).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end), exchange="okx")
    assert len(fb.requests) == 1 and fb.requests[0][0] == "markets"  # never asked again in this fetch
    assert res.report.requests_by_exchange == {"binance": 1, "okx": 1 + min_requests(start, end, H, 100)}
    assert any("HTTP 451" in e and "gave binance up" in e for e in res.report.events)


def test_451_on_klines_only(eth24):
    start, end = utc(2024, 10, 1), utc(2024, 10, 3)
    with fakes({"ETH/USDT": eth24}, NOW) as (fb, fo):
        fb.add_fault(status=451, times=None)
        res = source_for(fb, fo).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end), exchange="okx")
    assert len(fb.kline_requests()) == 1 and res.report.retries == 0


def test_bad_symbol_moves_to_next_exchange(eth24):
    start, end = utc(2024, 10, 1), utc(2024, 10, 3)
    with (
        FakeExchange("binance", {}, NOW, extra_symbols=("BTC/USDT",)) as fb,
        FakeExchange("okx", {"ETH/USDT": {"1h": eth24}}, NOW) as fo,
    ):
        res = source_for(fb, fo).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end), exchange="okx")
    assert fb.kline_requests() == [] and any("no spot market 'ETH/USDT'" in e for e in res.report.events)


def test_exchange_rejecting_symbol_on_klines(eth24):
    start, end = utc(2024, 10, 1), utc(2024, 10, 3)
    with fakes({"ETH/USDT": eth24}, NOW) as (fb, fo):
        fb.add_fault(status=400, body='{"code":-1121,"msg":"Invalid symbol."}', times=None)
        res = source_for(fb, fo).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end), exchange="okx")
    assert any("BadSymbol" in e for e in res.report.events)


def test_every_exchange_failing_raises_with_report(eth24):
    with fakes({"ETH/USDT": eth24}, NOW) as (fb, fo):
        fb.add_fault(endpoint="*", status=451, times=None)
        fo.add_fault(status=500, times=None)
        src = source_for(fb, fo, max_retries=1)
        with pytest.raises(FetchError, match="no exchange could serve") as info:
            src.fetch_result("ETH/USDT", "1h", utc(2024, 7, 1), utc(2024, 7, 2), NOW)
    assert info.value.report is src.fetch_report() and info.value.report.requests_by_exchange["okx"] == 3


# ------------------------------------------------------------------------------------------------ config


def test_config_passthrough_and_base_url(eth24):
    cfg = {
        "exchanges": [
            {
                "id": "binance",
                "base_url": "http://127.0.0.1:9/prefix",
                "options": {"recvWindow": 1234},
                "config": {"rateLimit": 7},
            },
            "okx",
        ],
        "timeout_ms": 4321,
    }
    src = CcxtSource(cfg)
    binance, okx = (e.client for e in src._exchanges)
    assert binance.options["recvWindow"] == 1234 and binance.options["fetchMarkets"]["types"] == ["spot"]
    assert binance.rateLimit == 7 and binance.timeout == 4321 and binance.enableRateLimit is True
    assert binance.urls["api"]["public"] == "http://127.0.0.1:9/prefix/api/v3"
    assert binance.urls["api"]["fapiPublic"] == "http://127.0.0.1:9/prefix/fapi/v1"
    assert okx.urls["api"]["rest"] == "https://{hostname}"  # untouched without base_url
    assert okx.options["fetchMarkets"]["types"] == ["spot"]
    with pytest.raises(ValueError, match="unknown keys"):
        CcxtSourceConfig.from_mapping({"exchanges": ["binance"], "retries": 3})
    with pytest.raises(ValueError, match="unknown ccxt exchange"):
        CcxtSourceConfig.from_mapping({"exchanges": ["nope"]})


def test_ccxt_sees_the_fake_as_binance(eth24):
    """The fake answers ccxt exactly as the doc describes Binance (guards the fake itself)."""
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth24}}, NOW) as fb:
        ex = ccxt.binance({"enableRateLimit": False, "options": {"fetchMarkets": ["spot"]}})
        ex.urls["api"]["public"] = fb.url + "/api/v3"
        ex.load_markets()
        rows = ex.fetch_ohlcv("ETH/USDT", "1h", since=int(utc(2024, 1, 1).timestamp() * 1000), limit=3)
        with pytest.raises(ccxt.BadSymbol):
            ex.fetch_ohlcv("DOGE/USDT", "1h")
    assert ex.markets["ETH/USDT"]["spot"] and [r[4] for r in rows] == eth24["close"].to_list()[:3]
    assert [r[0] for r in fb.requests] == ["markets", "klines"]


def test_dead_primary_is_given_up_after_two_exhausted_windows(eth24):
    start, end = utc(2024, 11, 1), utc(2024, 11, 20)
    sleep = SleepRecorder()
    with fakes({"ETH/USDT": eth24}, NOW) as (fb, fo):
        fb.add_fault(status=503, times=None)
        res = source_for(fb, fo, sleep=sleep, max_retries=2).fetch_result("ETH/USDT", "1h", start, end, NOW)
    assert_same_candles(res.candles, window(eth24, start, end), exchange="okx")
    assert len(fb.kline_requests()) == 2 * 3  # two windows x (1 try + 2 retries), then never again
    assert len(sleep.waits) == 4
    assert any("2 windows in a row" in e and "gave binance up" in e for e in res.report.events)


def test_unreachable_exchange_falls_back(eth24):
    with FakeExchange("binance", {}, NOW) as closed:
        dead_url = closed.url  # nothing listens there once closed
    with FakeExchange("okx", {"ETH/USDT": {"1h": eth24}}, NOW) as fo:
        src = CcxtSource(
            {**FAST_NO_RETRY, "exchanges": [{"id": "binance", "base_url": dead_url}, {"id": "okx", "base_url": fo.url}]}
        )
        res = src.fetch_result("ETH/USDT", "1h", utc(2024, 7, 1), utc(2024, 7, 3), NOW)
    assert_same_candles(res.candles, window(eth24, utc(2024, 7, 1), utc(2024, 7, 3)), exchange="okx")
    assert res.report.requests_by_exchange["binance"] == 1  # markets: connection refused, no retries configured


FAST_NO_RETRY = {"enable_rate_limit": False, "timeout_ms": 1000, "max_retries": 0}


def test_from_settings_and_empty_window(eth24):
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class Entry:  # the shape of the project's settings.ExchangeSettings
        id: str
        base_url: str | None = None
        options: dict = field(default_factory=dict)

    with FakeExchange("binance", {"ETH/USDT": {"1h": eth24}}, NOW) as fb:
        src = CcxtSource.from_settings(
            [Entry("binance", fb.url, {"recvWindow": 5000})], enable_rate_limit=False, max_retries=1
        )
        assert src.config.max_retries == 1 and src.exchange_ids == ["binance"]
        res = src.fetch_result("ETH/USDT", "1h", utc(2024, 7, 1), utc(2024, 7, 1), NOW)
        assert res.candles.height == 0 and res.candles.columns == [
            "ts",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "amount",
            "exchange",
        ]
        assert res.report.requests == 0 and res.report.gaps == []
        df = src.fetch("ETH/USDT", "1h", utc(2024, 7, 1), utc(2024, 7, 2), utc(2024, 7, 1, 5, 59))
        assert df["ts"].to_list()[-1] == utc(2024, 7, 1, 4)  # the 05:00 bar closes at 06:00
