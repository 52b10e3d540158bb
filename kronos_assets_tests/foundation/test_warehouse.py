from datetime import datetime, timezone

import polars as pl
import pytest

from kronos_assets.warehouse import Warehouse

UTC = timezone.utc


def _rows(n, close=100.0, day=1):
    return pl.DataFrame(
        {
            "symbol": ["BTC/USDT"] * n,
            "timeframe": ["1h"] * n,
            "ts": [datetime(2025, 1, day, h, tzinfo=UTC) for h in range(n)],
            "open": [close] * n,
            "high": [close + 1] * n,
            "low": [close - 1] * n,
            "close": [close] * n,
            "volume": [1.0] * n,
            "amount": [None] * n,
            "exchange": ["test"] * n,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "amount": pl.Float64},
    )


WHERE = "symbol = ? AND timeframe = ? AND ts >= ? AND ts < ?"


def _day(d):
    return ["BTC/USDT", "1h", datetime(2025, 1, d, tzinfo=UTC), datetime(2025, 1, d + 1, tzinfo=UTC)]


def test_replace_is_idempotent_and_scoped_to_its_partition(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace("raw_candles", _rows(24, day=1), WHERE, _day(1))
    wh.replace("raw_candles", _rows(24, day=2), WHERE, _day(2))
    before = wh.query("SELECT * FROM raw_candles ORDER BY ts")
    wh.replace("raw_candles", _rows(24, day=2), WHERE, _day(2))
    after = wh.query("SELECT * FROM raw_candles ORDER BY ts")
    assert before.height == 48 and after.equals(before)
    wh.replace("raw_candles", _rows(10, close=5.0, day=2), WHERE, _day(2))
    counts = wh.query("SELECT day(ts) AS d, count(*) AS n, max(close) AS c FROM raw_candles GROUP BY d ORDER BY d")
    assert counts.rows() == [(1, 24, 100.0), (2, 10, 5.0)]


def test_failed_write_leaves_previous_rows_intact(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace("raw_candles", _rows(24), WHERE, _day(1))
    bad = _rows(24).with_columns(pl.lit(None, dtype=pl.Float64).alias("close"))  # violates NOT NULL mid-insert
    with pytest.raises(Exception):
        wh.replace("raw_candles", bad, WHERE, _day(1))
    assert wh.query("SELECT count(*) AS n, min(close) AS c FROM raw_candles").rows() == [(24, 100.0)]


def test_multi_table_write_is_one_transaction(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace("raw_candles", _rows(3), WHERE, _day(1))
    with pytest.raises(ValueError, match="lack columns"):
        wh.replace_many({"raw_candles": _rows(2), "clean_candles": _rows(2)}, WHERE, _day(1))
    assert wh.query("SELECT count(*) AS n FROM raw_candles")["n"][0] == 3


def test_empty_frame_empties_the_partition(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace("raw_candles", _rows(5), WHERE, _day(1))
    wh.replace("raw_candles", pl.DataFrame(), WHERE, _day(1))
    assert wh.query("SELECT count(*) AS n FROM raw_candles")["n"][0] == 0


def test_timestamps_come_back_in_utc(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace("raw_candles", _rows(1), WHERE, _day(1))
    assert wh.query("SELECT ts FROM raw_candles").schema["ts"] == pl.Datetime("us", "UTC")
