"""The candle rules of market.rules: one definition, every rendering agrees (DuckDB SQL, polars, one row), and
every reader applies it."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
import polars as pl
import pytest

from kronos_assets.market.payloads import row_problem
from kronos_assets.market.rules import (
    OHLC_INVALID_SQL,
    freshness,
    freshness_windows,
    ohlc_invalid_expr,
    ohlc_problem,
    ohlc_violation_exprs,
    volume_and_amount,
)
from kronos_assets.market.schema import CandleError, validate_candles

VALUES = (-1.0, 0.0, 1.0, 2.0, 3.0)
BARS = list(itertools.product(VALUES, repeat=4))  # every (open, high, low, close) over a small grid: 625 bars


def _by_hand(o: float, h: float, l: float, c: float) -> bool:  # noqa: E741
    """The rule as the schema states it, written out independently."""
    return min(o, h, l, c) > 0 and h >= max(o, c) and l <= min(o, c)


def test_sql_polars_and_one_row_renderings_agree_with_the_stated_rule():
    frame = pl.DataFrame(BARS, schema=["open", "high", "low", "close"], orient="row")
    want = [not _by_hand(*b) for b in BARS]
    assert sum(want) and not all(want)  # the grid holds valid and invalid bars
    assert frame.select(ohlc_invalid_expr().alias("x"))["x"].to_list() == want
    con = duckdb.connect()
    con.register("bars", frame.to_arrow())
    assert [r[0] for r in con.execute(f"SELECT {OHLC_INVALID_SQL} FROM bars").fetchall()] == want
    assert [ohlc_problem(*b) is not None for b in BARS] == want
    # each named violation is the first one the row form reports
    for b in BARS:
        named = [
            name
            for name, expr, _ in ohlc_violation_exprs()
            if pl.DataFrame([b], schema=["open", "high", "low", "close"], orient="row").select(expr)[0, 0]
        ]
        assert ohlc_problem(*b) == (named[0] if named else None), b


@pytest.mark.parametrize("bar", [(2.0, 1.0, 3.0, 2.0), (0.0, 1.0, 0.0, 1.0), (2.0, 2.5, 1.5, 3.0)])
def test_every_reader_refuses_what_the_rule_refuses(bar, tmp_path):
    o, h, l, c = bar  # noqa: E741
    ts = datetime(2024, 7, 1, tzinfo=timezone.utc)
    assert ohlc_problem(o, h, l, c) is not None
    frame = pl.DataFrame(
        {
            "ts": [ts],
            "open": [o],
            "high": [h],
            "low": [l],
            "close": [c],
            "volume": [1.0],
            "amount": [None],
            "exchange": ["x"],
        },
        schema_overrides={"amount": pl.Float64},
    )
    with pytest.raises(CandleError):
        validate_candles(frame, "test")
    assert row_problem([int(ts.timestamp() * 1000), o, h, l, c, 1.0, None], 3_600_000) is not None
    from kronos_assets.market.files import CandleFileError, read_candle_file

    path = tmp_path / "bad.csv"
    path.write_text(f"timestamp,open,high,low,close\n2024-07-01T00:00:00Z,{o},{h},{l},{c}\n")
    with pytest.raises(CandleFileError) as info:
        read_candle_file(path)
    assert info.value.problem == ohlc_problem(o, h, l, c)


def test_negative_amount_breaks_the_schema():
    ts = datetime(2024, 7, 1, tzinfo=timezone.utc)
    frame = pl.DataFrame(
        {
            "ts": [ts],
            "open": [1.0],
            "high": [1.0],
            "low": [1.0],
            "close": [1.0],
            "volume": [1.0],
            "amount": [-1.0],
            "exchange": ["x"],
        }
    )
    with pytest.raises(CandleError, match="negative amount"):
        validate_candles(frame, "test")


def test_volume_and_amount():
    prices = {
        "open": np.array([1.0, 2.0]),
        "high": np.array([3.0, 4.0]),
        "low": np.array([1.0, 2.0]),
        "close": np.array([3.0, 4.0]),
    }
    for missing in (None, np.array([np.nan, np.nan])):
        vol, amt = volume_and_amount(prices, missing, np.array([5.0, 6.0]))
        assert vol.tolist() == [0.0, 0.0] and amt.tolist() == [0.0, 0.0]
    vol, amt = volume_and_amount(prices, np.array([10.0, 20.0]), None)
    assert vol.tolist() == [10.0, 20.0] and amt.tolist() == [20.0, 60.0]  # volume x mean(o, h, l, c)
    _, amt = volume_and_amount(prices, np.array([10.0, 20.0]), np.array([7.0, np.nan]))
    assert amt.tolist() == [7.0, 60.0]  # only the missing amount is derived


def test_freshness_thresholds():
    hour = timedelta(hours=1)
    warn, fail = freshness_windows(hour)
    assert (warn, fail) == (2 * hour + timedelta(minutes=15), 3 * hour + timedelta(minutes=15))
    tick = timedelta(seconds=1)
    assert [freshness(age, hour) for age in (timedelta(0), warn, warn + tick, fail, fail + tick)] == [
        "OK",
        "OK",
        "WARN",
        "WARN",
        "FAIL",
    ]
