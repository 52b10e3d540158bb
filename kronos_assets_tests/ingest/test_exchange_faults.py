"""Fault injection: the real ccxt client against the loopback exchange misbehaving, into a real warehouse.

Each test stores a good day first, makes the exchange misbehave, runs the ingest of that day and asserts the
outcome, the message and the stored rows before and after: nothing already stored is ever removed or
replaced by an answer that lacks it.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import polars as pl
import pytest

from kronos_assets.market.ccxt_source import FetchError
from kronos_assets.market.schema import CandleError
from kronos_assets.market.store import ingest_window
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.conftest import real_candles
from kronos_assets_tests.fakes.fake_exchange import FakeExchange, utc
from kronos_assets_tests.market import assert_same_candles, fakes, source_for, window

pytestmark = pytest.mark.timeout(120)  # a regression that hangs fails instead of stalling the suite
H = timedelta(hours=1)
DAY = utc(2024, 7, 1)
NEXT = DAY + timedelta(days=1)
NOW = utc(2025, 1, 1)
TODAY_NOW = DAY + timedelta(hours=7, minutes=30)  # the day's 07:00 bar is forming: 7 closed bars


@pytest.fixture(scope="module")
def eth() -> pl.DataFrame:
    return real_candles("binance_ETHUSDT_1h_20240101_20260331.csv.gz")


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "warehouse.duckdb", lock_timeout_s=5)


def stored(wh: Warehouse) -> pl.DataFrame:
    return wh.query("SELECT ts, open, high, low, close, volume, amount, exchange FROM raw_candles ORDER BY ts")


def store_good_day(wh: Warehouse, eth: pl.DataFrame, now: datetime = NOW) -> pl.DataFrame:
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth}}, now) as good:
        ingest_window(source_for(good), wh, "ETH/USDT", "1h", DAY, NEXT, now)
    before = stored(wh)
    assert_same_candles(before, window(eth, DAY, min(NEXT, DAY + (now - DAY) // H * H)), exchange="binance")
    return before


def fails(src, wh: Warehouse, now: datetime = NOW) -> str:
    with pytest.raises(FetchError) as info:
        ingest_window(src, wh, "ETH/USDT", "1h", DAY, NEXT, now)
    return str(info.value)


# ---------------------------------------------------------------------------------------- data loss, green run


@pytest.mark.parametrize("now", [NOW, TODAY_NOW], ids=["past_day", "today"])
def test_pagination_that_never_advances_is_a_fault_then_a_clear_failure(eth, wh, now):
    before = store_good_day(wh, eth, now)
    with fakes({"ETH/USDT": eth}, now) as (fb, fo):
        for fake in (fb, fo):
            fake.add_fault(action="stuck", times=None)  # the newest bar, whatever start is asked
        msg = fails(source_for(fb, fo), wh, now)
    assert "binance: malformed payload for GET" in msg and "okx: malformed payload for GET" in msg
    assert "pagination does not advance" in msg
    assert stored(wh).equals(before)


def test_pagination_that_never_advances_falls_back_to_the_next_exchange(eth, wh):
    before = store_good_day(wh, eth)
    with fakes({"ETH/USDT": eth}, NOW) as (fb, fo):
        fb.add_fault(action="stuck", times=None)
        src = source_for(fb, fo)
        res = ingest_window(src, wh, "ETH/USDT", "1h", DAY, NEXT, NOW)
    after = stored(wh)
    assert res.stored_before == res.stored_after == res.fetched == 24 and res.missing_bars == 0
    (event,) = [e for e in src.fetch_report().events if "binance failed this window" in e]
    assert "pagination does not advance" in event and src.fetch_report().gap_requests == 0
    assert after.drop("exchange").equals(before.drop("exchange")) and set(after["exchange"]) == {"okx"}


@pytest.mark.parametrize("fault", ["gap", "empty"])
@pytest.mark.parametrize("now", [NOW, TODAY_NOW], ids=["past_day", "today"])
def test_a_short_or_empty_answer_never_removes_stored_bars(eth, wh, fault, now):
    before = store_good_day(wh, eth, now)
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth}}, now) as fb:
        fb.add_fault(action=fault, gap=(DAY + 1 * H, DAY + 7 * H), times=None)  # a 6-hour maintenance gap
        src = source_for(fb)
        res = ingest_window(src, wh, "ETH/USDT", "1h", DAY, NEXT, now)
    closed = before.height
    assert res.stored_before == res.stored_after == closed and res.missing == []
    assert src.fetch_report().missing_bars == closed - res.fetched > 0  # the answer's shortfall is reported
    assert stored(wh).equals(before)


def test_a_new_day_with_a_gap_stores_what_came_and_reports_the_rest_missing(eth, wh):
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth}}, NOW) as fb:
        fb.add_fault(action="gap", gap=(DAY + 18 * H, NEXT), times=None)  # the end of the day is missing
        res = ingest_window(source_for(fb), wh, "ETH/USDT", "1h", DAY, NEXT, NOW)
    assert (res.stored_before, res.stored_after, res.expected, res.missing_bars) == (0, 18, 24, 6)
    assert res.to_metadata()["missing"] == [[(DAY + 18 * H).isoformat(), NEXT.isoformat(), 6]]
    assert_same_candles(stored(wh), window(eth, DAY, DAY + 18 * H), exchange="binance")


def test_a_returned_bar_replaces_its_stored_copy(eth, wh):
    store_good_day(wh, eth)
    fixed = eth.with_columns(
        pl.when(pl.col("ts") == DAY + 3 * H).then(pl.col("volume") + 1).otherwise(pl.col("volume")).alias("volume")
    )
    with FakeExchange("binance", {"ETH/USDT": {"1h": fixed}}, NOW) as fb:
        ingest_window(source_for(fb), wh, "ETH/USDT", "1h", DAY, NEXT, NOW)
    assert_same_candles(stored(wh), window(fixed, DAY, NEXT), exchange="binance")


# ---------------------------------------------------------------------------------------- wrong data, silently


def test_conflicting_duplicates_are_a_fault_naming_the_bar_and_both_values(eth, wh):
    before = store_good_day(wh, eth)
    with fakes({"ETH/USDT": eth}, NOW) as (fb, fo):
        fb.add_fault(action="conflict", at=DAY + 5 * H, times=None)
        msg = fails(source_for(fb), wh)
        res = ingest_window(source_for(fb, fo), wh, "ETH/USDT", "1h", DAY, NEXT, NOW)
    good = window(eth, DAY + 5 * H, DAY + 6 * H).row(0, named=True)
    assert "two different rows for the bar opening 2024-07-01 05:00 UTC" in msg
    assert f"high {good['high'] * 1.5!r}" in msg and f"high {good['high']!r}" in msg
    assert stored(wh).drop("exchange").equals(before.drop("exchange"))  # okx served the true bars
    assert res.fetched == 24 and set(stored(wh)["exchange"]) == {"okx"}


def test_eleven_field_kline_rows_are_refused_before_reading(eth, wh):
    before = store_good_day(wh, eth)
    with fakes({"ETH/USDT": eth}, NOW) as (fb, fo):
        fb.add_fault(action="short_rows", times=None)
        msg = fails(source_for(fb), wh)
        assert stored(wh).equals(before)
        ingest_window(source_for(fb, fo), wh, "ETH/USDT", "1h", DAY, NEXT, NOW)
    assert "kline row 1 has 11 fields, binance kline rows have 12" in msg
    assert_same_candles(stored(wh), window(eth, DAY, NEXT), exchange="okx")  # no trade count as quote volume


@pytest.mark.parametrize(
    "row,problem",
    [
        (
            [1719792000000, "1", "2", "1", "1.5", "10", "1719795599999", "15", 1, "0", "0", "0"],
            "close time is '1719795599999', expected an integer time in ms",
        ),
        (
            [1719792000000, "1", "2", "1", "1.5", "10", 1719795599999, "15", "1", "0", "0", "0"],
            "trades is '1', expected an integer",
        ),
        (
            [1719792000000, 1, "2", "1", "1.5", "10", 1719795599999, "15", 1, "0", "0", "0"],
            "open is 1, expected a decimal string",
        ),
    ],
)
def test_kline_fields_of_the_wrong_type_are_refused(eth, wh, row, problem):
    before = store_good_day(wh, eth)
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth}}, NOW) as fb:
        fb.add_fault(action="body", body=json.dumps([row]), times=None)
        msg = fails(source_for(fb), wh)
    assert f"kline row 1: {problem}" in msg
    assert stored(wh).equals(before)


# ---------------------------------------------------------------------------------------- hang


def test_a_trickled_body_meets_the_request_deadline_then_the_next_exchange(eth, wh):
    before = store_good_day(wh, eth)
    with fakes({"ETH/USDT": eth}, NOW) as (fb, fo):
        fb.add_fault(action="trickle", delay_s=0.05, times=None)  # ~3 KB at 20 B/s: minutes without a deadline
        t0 = time.monotonic()
        res = ingest_window(
            source_for(fb, fo, request_deadline_s=0.5, max_retries=1), wh, "ETH/USDT", "1h", DAY, NEXT, NOW
        )
        took = time.monotonic() - t0
    assert took < 4 and res.fetched == 24
    assert len(fb.kline_requests()) == 2  # one try and one retry, each cut at the deadline
    assert stored(wh).drop("exchange").equals(before.drop("exchange"))


def test_an_endless_trickle_fails_the_fetch_at_its_deadline(eth, wh):
    before = store_good_day(wh, eth)
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth}}, NOW) as fb:
        fb.add_fault(action="trickle", endless=True, delay_s=0.01, times=None)
        t0 = time.monotonic()
        msg = fails(source_for(fb, request_deadline_s=0.4, max_retries=2), wh)
        per_request = time.monotonic() - t0
        t0 = time.monotonic()
        deadline_msg = fails(source_for(fb, request_deadline_s=30, fetch_deadline_s=1.0, max_retries=5), wh)
        whole = time.monotonic() - t0
    assert "binance: page 2024-07-01 00:00: RequestTimeout" in msg and "still failing after 2 retries" in msg
    assert per_request < 4
    assert "ran past its 1s deadline" in deadline_msg and whole < 3
    assert stored(wh).equals(before)


# ---------------------------------------------------------------------------------------- no fallback where due


def test_a_connection_cut_mid_body_is_retried_then_handed_on(eth, wh):
    before = store_good_day(wh, eth)
    with fakes({"ETH/USDT": eth}, NOW) as (fb, fo):
        fb.add_fault(action="cut", times=1)
        res = ingest_window(source_for(fb), wh, "ETH/USDT", "1h", DAY, NEXT, NOW)  # the retry succeeds
        assert res.fetched == 24 and stored(wh).equals(before)
        fb.add_fault(action="cut", times=None)
        msg = fails(source_for(fb), wh)
        assert stored(wh).equals(before)
        ingest_window(source_for(fb, fo), wh, "ETH/USDT", "1h", DAY, NEXT, NOW)
    assert "binance: malformed payload for GET" in msg and "the body is not JSON: '[[" in msg
    assert "still failing after 3 retries" in msg and "kline row '['" not in msg
    assert set(stored(wh)["exchange"]) == {"okx"}


def test_a_malformed_payload_asks_the_next_exchange(eth, wh):
    before = store_good_day(wh, eth)
    with fakes({"ETH/USDT": eth}, NOW) as (fb, fo):
        fb.add_fault(action="body", body='[[1719792000000,"x"]]', times=None)
        res = ingest_window(source_for(fb, fo), wh, "ETH/USDT", "1h", DAY, NEXT, NOW)
        fo.add_fault(action="body", body='{"code":"0","msg":"","data":[["1719792000000","1"]]}', times=None)
        msg = fails(source_for(fb, fo), wh)
    assert res.fetched == 24 and set(stored(wh)["exchange"]) == {"okx"}
    assert stored(wh).drop("exchange").equals(before.drop("exchange"))
    assert "binance: malformed payload" in msg and "kline row 1 has 2 fields, binance kline rows have 12" in msg
    assert "okx: malformed payload" in msg and "kline row 1 has 2 fields, okx kline rows have 9" in msg


@pytest.mark.parametrize("body", ['{"msg":"System is under maintenance."}', '{"msg":"Internal hiccup"}'])
def test_an_error_body_without_code_is_quoted(eth, wh, body):
    before = store_good_day(wh, eth)
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth}}, NOW) as fb:
        fb.add_fault(action="body", body=body, times=None)
        msg = fails(source_for(fb), wh)
    assert f"'{body}'" in msg
    assert stored(wh).equals(before)


# ---------------------------------------------------------------------------------------- the write itself


def test_a_merge_that_fails_midway_leaves_the_stored_rows(eth, wh):
    before = store_good_day(wh, eth)
    rows = window(eth, DAY, NEXT).with_columns(
        symbol=pl.lit("ETH/USDT"), timeframe=pl.lit("1h"), exchange=pl.lit("okx"), amount=pl.lit(None, pl.Float64)
    )
    bad = rows.with_columns(pl.when(pl.col("ts") == DAY + 20 * H).then(None).otherwise(pl.col("close")).alias("close"))
    with pytest.raises(Exception, match="NOT NULL"):  # the DELETE ran, the INSERT failed: all rolled back
        wh.merge("raw_candles", bad, ("symbol", "timeframe", "ts"))
    assert stored(wh).equals(before)


class Liar:
    """A source that breaks its promise: it returns the bar still forming."""

    name = "liar"

    def __init__(self, frame: pl.DataFrame):
        self.frame = frame

    def fetch(self, symbol, timeframe, start, end, now):
        return window(self.frame, start, end).with_columns(amount=pl.lit(None, pl.Float64), exchange=pl.lit("liar"))


def test_bars_outside_the_closed_window_are_refused_before_writing(eth, wh):
    before = store_good_day(wh, eth, TODAY_NOW)
    with pytest.raises(CandleError, match="fall outside the closed bars of \\[2024-07-01 00:00, 2024-07-02 00:00\\)"):
        ingest_window(Liar(eth), wh, "ETH/USDT", "1h", DAY, NEXT, TODAY_NOW)
    assert stored(wh).equals(before)
