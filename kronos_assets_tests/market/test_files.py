"""The file source: formats, timestamp forms, every validation error, profiles, names and path escapes."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from kronos_assets.market.files import (
    CandleFileError,
    FileSource,
    PathEscapeError,
    infer_timeframe,
    load_candle_file,
    market_name_from_filename,
    read_candle_file,
    resolve_in_folder,
    scan_folder,
)
from kronos_assets.market.gaps import Gap
from kronos_assets.market.schema import CANDLE_SCHEMA
from kronos_assets_tests.conftest import SHARED_CANDLES, real_candles
from kronos_assets_tests.fakes.fake_exchange import utc

OHLCV = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def btc1h() -> pl.DataFrame:
    return real_candles("binance_BTCUSDT_1h_20220101_20251202.csv.gz")


@pytest.fixture
def sample(btc1h) -> pl.DataFrame:
    """Three days of real 1h candles around the 2023-03-24 13:00 maintenance gap."""
    return btc1h.filter((pl.col("ts") >= utc(2023, 3, 23)) & (pl.col("ts") < utc(2023, 3, 26)))


def assert_values(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.columns == list(CANDLE_SCHEMA)
    assert got["ts"].to_list() == want["ts"].to_list()
    for c in OHLCV:
        assert got[c].to_list() == want[c].to_list(), c


# ------------------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize(
    "column,convert",
    [
        ("timestamp", lambda ts: ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("ts", lambda ts: ts.dt.epoch("ms")),
        ("time", lambda ts: ts.dt.epoch("s")),
        ("Date", lambda ts: ts.dt.convert_time_zone("Asia/Kolkata").dt.strftime("%Y-%m-%d %H:%M:%S%:z")),
        ("open_time", lambda ts: ts.dt.strftime("%Y-%m-%d %H:%M:%S")),  # naive: UTC
    ],
)
def test_csv_timestamp_forms(tmp_path, sample, column, convert):
    path = tmp_path / "btc.csv"
    sample.select(convert(pl.col("ts")).alias(column), *[pl.col(c).alias(c.upper()) for c in OHLCV]).write_csv(path)
    got = read_candle_file(path)
    assert_values(got, sample)
    assert set(got["exchange"]) == {"file:btc"} and got["amount"].null_count() == got.height


def test_gzip_csv_from_shared_folder_profiles_real_gaps():
    path = SHARED_CANDLES / "binance_BTCUSDT_1h_20200920_20250919.csv.gz"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    cf = load_candle_file(path)
    p = cf.profile
    assert cf.market == "binance_BTCUSDT_1h_20200920_20250919"
    assert p.timeframe == "1h" and p.rows == 43803 and p.has_volume and not p.has_amount
    assert p.first_ts == utc(2020, 9, 20) and p.last_ts == utc(2025, 9, 19, 22)
    assert p.missing_bars == 20 and len(p.gaps) == 10 and p.expected_bars == p.rows + 20
    assert p.gaps[1] == Gap(utc(2020, 12, 21, 14), utc(2020, 12, 21, 18), 4)
    assert p.gaps[-1] == Gap(utc(2023, 3, 24, 13), utc(2023, 3, 24, 14), 1)
    assert p.zero_volume_bars == 2  # 2021-02-11 03:00 and 2023-03-24 12:00
    assert p.to_metadata()["gaps"][0] == ["2020-11-30T06:00:00+00:00", "2020-11-30T07:00:00+00:00", 1]


def test_parquet_with_datetime_and_amount(tmp_path, sample):
    df = sample.rename({"ts": "date"}).with_columns((pl.col("volume") * pl.col("close")).alias("amount"))
    df.write_parquet(tmp_path / "BTC USDT.parquet")
    cf = load_candle_file(tmp_path / "BTC USDT.parquet")
    assert_values(cf.candles, sample)
    assert cf.candles["amount"].to_list() == df["amount"].to_list()
    assert cf.market == "BTC_USDT" and cf.profile.has_amount
    assert cf.profile.gaps == [Gap(utc(2023, 3, 24, 13), utc(2023, 3, 24, 14), 1)]


def test_feather_with_epoch_ms_and_no_volume(tmp_path, sample):
    df = sample.select(pl.col("ts").dt.epoch("ms").alias("open_time"), "open", "high", "low", "close")
    df.write_ipc(tmp_path / "eth.feather")
    cf = load_candle_file(tmp_path / "eth.feather")
    assert cf.candles["volume"].to_list() == [0.0] * sample.height  # absent volume is 0, as Kronos fills it
    assert not cf.profile.has_volume and cf.profile.zero_volume_bars == 0


@pytest.mark.parametrize(
    "name,tf",
    [
        ("binance_BTCUSDT_15m_20240101_20250827.csv.gz", "15m"),
        ("binance_ETHUSDT_4h_20240101_20260331.csv.gz", "4h"),
        ("binance_SOLUSDT_1d_20200920_20250918.csv.gz", "1d"),
    ],
)
def test_infers_timeframe_of_real_files(name, tf):
    assert infer_timeframe(real_candles(name)["ts"]) == tf


# ------------------------------------------------------------------------------------------------ errors


def write(tmp_path: Path, text: str, name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD_ROWS = [
    "2024-01-01T00:00:00Z,10,12,9,11,5",
    "2024-01-01T01:00:00Z,11,13,10,12,6",
    "2024-01-01T02:00:00Z,12,14,11,13,7",
]
HEADER = "timestamp,open,high,low,close,volume"


def csv_with(row1: str, header: str = HEADER) -> str:
    return "\n".join([header, GOOD_ROWS[0], row1, GOOD_ROWS[2]]) + "\n"


@pytest.mark.parametrize(
    "problem,text,message",
    [
        ("missing_columns", "timestamp,open,high,close\n2024-01-01,1,2,1.5\n", r"missing columns low"),
        ("missing_columns", "when,open,high,low,close\n2024-01-01,1,2,1,1.5\n", r"timestamp \(or ts/time/date"),
        ("ambiguous_columns", "ts,open,Open,high,low,close\n1,1,1,2,1,1\n", r"'open' and 'Open' clash"),
        ("empty", HEADER + "\n", r"no rows"),
        ("unparsable_timestamp", csv_with("yesterday,11,13,10,12,6"), r"row 2: cannot parse timestamp 'yesterday'"),
        ("unparsable_timestamp", csv_with(",11,13,10,12,6"), r"row 2: empty timestamp"),
        ("not_a_number", csv_with("2024-01-01T01:00:00Z,11,13,ten,12,6"), r"row 2: low 'ten' is not a number"),
        ("missing_values", csv_with("2024-01-01T01:00:00Z,11,13,10,NaN,6"), r"row 2: close is nan"),
        ("missing_values", csv_with("2024-01-01T01:00:00Z,11,13,10,12,"), r"row 2: volume is None"),
        ("unsorted", "\n".join([HEADER, GOOD_ROWS[1], GOOD_ROWS[0], GOOD_ROWS[2]]), r"row 2: .* comes before"),
        ("duplicate_timestamp", "\n".join([HEADER, GOOD_ROWS[0], GOOD_ROWS[0], GOOD_ROWS[2]]), r"row 2: .* repeats"),
        ("non_positive_price", csv_with("2024-01-01T01:00:00Z,0,13,10,12,6"), r"row 2 .*zero or negative"),
        ("non_positive_price", csv_with("2024-01-01T01:00:00Z,11,13,-1,12,6"), r"row 2 .*zero or negative"),
        ("high_below_low", csv_with("2024-01-01T01:00:00Z,11,9,10,10.5,6"), r"row 2 .*high is below low"),
        ("high_below_open_close", csv_with("2024-01-01T01:00:00Z,11,12,10,12.5,6"), r"high is below open/close"),
        ("low_above_open_close", csv_with("2024-01-01T01:00:00Z,10.5,13,11,12,6"), r"low is above open/close"),
        ("negative_volume", csv_with("2024-01-01T01:00:00Z,11,13,10,12,-6"), r"row 2: volume -6.0 is negative"),
    ],
)
def test_validation_errors(tmp_path, problem, text, message):
    with pytest.raises(CandleFileError, match=message) as info:
        load_candle_file(write(tmp_path, text))
    assert info.value.problem == problem and info.value.path.endswith("bad.csv")
    assert str(info.value).startswith("bad.csv: ")


def test_unsupported_and_unreadable(tmp_path):
    with pytest.raises(CandleFileError, match="unsupported file type") as info:
        load_candle_file(write(tmp_path, "x", "candles.xlsx"))
    assert info.value.problem == "unsupported_format"
    with pytest.raises(CandleFileError, match="cannot read as parquet") as info:
        load_candle_file(write(tmp_path, "not parquet", "candles.parquet"))
    assert info.value.problem == "unreadable"


def test_timeframe_errors(tmp_path):
    rows = ["2024-01-01T00:00:00Z", "2024-01-01T00:07:00Z", "2024-01-01T00:14:00Z"]
    text = HEADER + "\n" + "\n".join(f"{t},10,12,9,11,5" for t in rows)
    with pytest.raises(CandleFileError, match="most common spacing is 7m") as info:
        load_candle_file(write(tmp_path, text))
    assert info.value.problem == "unknown_timeframe"
    rows = ["2024-01-01T00:30:00Z", "2024-01-01T01:30:00Z", "2024-01-01T02:30:00Z"]
    text = HEADER + "\n" + "\n".join(f"{t},10,12,9,11,5" for t in rows)
    with pytest.raises(CandleFileError, match="row 1: .* not on the UTC 1h grid") as info:
        load_candle_file(write(tmp_path, text))
    assert info.value.problem == "off_grid"
    with pytest.raises(CandleFileError, match="at least two bars") as info:
        load_candle_file(write(tmp_path, HEADER + "\n" + GOOD_ROWS[0]))
    assert info.value.problem == "unknown_timeframe"
    # an irregular bar among regular ones is off the grid of the inferred timeframe
    text = "\n".join([HEADER, *GOOD_ROWS, "2024-01-01T03:20:00Z,12,14,11,13,7", "2024-01-01T05:00:00Z,12,14,11,13,7"])
    with pytest.raises(CandleFileError, match="row 4: .* not on the UTC 1h grid"):
        load_candle_file(write(tmp_path, text))


# ------------------------------------------------------------------------------------------------ names


SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$|^[A-Za-z0-9]$")


@pytest.mark.parametrize(
    "filename,expected",
    [
        ("BTCUSDT_1h.csv", "BTCUSDT_1h"),
        ("binance_BTCUSDT_1h_20200920_20250919.csv.gz", "binance_BTCUSDT_1h_20200920_20250919"),
        ("BTC|USDT,1h[spot].parquet", "BTC_USDT_1h_spot"),
        ("BTC/USDT 1h.feather", "USDT_1h"),  # a path: only the last part names the market
        ("  ETH-USDT (copy) .CSV", "ETH-USDT_copy"),
        ("café crème.csv", "cafe_creme"),
        ("...hidden.v2.arrow", "hidden.v2"),
        ("a" * 300 + ".csv", "a" * 100),
    ],
)
def test_market_names_are_safe_partition_keys(filename, expected):
    name = market_name_from_filename(filename)
    assert name == expected and SAFE.match(name)
    assert not set(name) & set("|,/[]\\ ")


@pytest.mark.parametrize("filename", ["", ".csv", "___.parquet", "日本.csv", "[]|,.csv"])
def test_market_name_refuses_empty_results(filename):
    with pytest.raises(ValueError, match="no usable market name"):
        market_name_from_filename(filename)


# ------------------------------------------------------------------------------------------------ paths


@pytest.fixture
def watched(tmp_path, sample) -> Path:
    folder = tmp_path / "watched"
    (folder / "sub").mkdir(parents=True)
    outside = tmp_path / "secret.csv"
    sample.write_csv(outside)
    sample.write_csv(folder / "BTCUSDT_1h.csv")
    sample.write_csv(folder / "sub" / "nested.csv")
    os.symlink(outside, folder / "link_out.csv")
    os.symlink(tmp_path, folder / "dir_out")
    os.symlink(folder / "BTCUSDT_1h.csv", folder / "link_in.csv")
    return folder


@pytest.mark.parametrize(
    "name,message",
    [
        ("../secret.csv", "'..' leads out"),
        ("sub/../../secret.csv", "'..' leads out"),
        ("..", "'..' leads out"),
        ("/etc/passwd", "absolute path"),
        ("~/secret.csv", "absolute path"),
        ("link_out.csv", "outside"),
        ("dir_out/secret.csv", "outside"),
        ("sub\\..\\..\\secret.csv", "refusing file name"),
        ("a\x00b.csv", "refusing file name"),
        ("", "refusing file name"),
    ],
)
def test_resolve_refuses_escapes(watched, name, message):
    with pytest.raises(PathEscapeError, match=message):
        resolve_in_folder(watched, name)


def test_resolve_accepts_files_inside(watched):
    assert resolve_in_folder(watched, "BTCUSDT_1h.csv") == (watched / "BTCUSDT_1h.csv").resolve()
    assert resolve_in_folder(watched, "sub/nested.csv") == (watched / "sub" / "nested.csv").resolve()
    assert resolve_in_folder(watched, "./link_in.csv") == (watched / "BTCUSDT_1h.csv").resolve()
    with pytest.raises(FileNotFoundError):
        resolve_in_folder(watched, "missing.csv")
    with pytest.raises(IsADirectoryError):
        resolve_in_folder(watched, "sub")


def test_scan_folder_skips_what_it_cannot_use(watched, sample):
    sample.write_parquet(watched / "BTCUSDT_1h.parquet")  # same market name as the CSV
    (watched / ".hidden.csv").write_text("x")
    (watched / "notes.txt.bak").write_text("x")
    scan = scan_folder(watched)
    assert scan.files == {"link_in": (watched / "BTCUSDT_1h.csv").resolve()}
    reasons = dict(scan.skipped)
    assert "shared by BTCUSDT_1h.csv, BTCUSDT_1h.parquet" in reasons["BTCUSDT_1h.csv"]
    assert "outside" in reasons["link_out.csv"] and reasons["notes.txt.bak"] == "unsupported file type"
    assert ".hidden.csv" not in reasons


def test_file_source_fetch_window_and_forming_bar(watched, sample):
    src = FileSource(watched)
    got = src.fetch("BTCUSDT_1h", "1h", utc(2023, 3, 24), utc(2023, 3, 26), now=utc(2023, 3, 25, 6, 30))
    want = sample.filter((pl.col("ts") >= utc(2023, 3, 24)) & (pl.col("ts") < utc(2023, 3, 25, 6)))
    assert_values(got, want)
    assert got["ts"][-1] == utc(2023, 3, 25, 5) and set(got["exchange"]) == {"file:BTCUSDT_1h"}
    with pytest.raises(CandleFileError, match="holds 1h candles, 4h were asked for"):
        src.fetch("BTCUSDT_1h", "4h", utc(2023, 3, 24), utc(2023, 3, 26), now=utc(2023, 4, 1))
    with pytest.raises(FileNotFoundError, match="no candle file for market 'nope'"):
        src.fetch("nope", "1h", utc(2023, 3, 24), utc(2023, 3, 26), now=utc(2023, 4, 1))
    assert src.load("BTCUSDT_1h") is src.load("BTCUSDT_1h")  # cached until the file changes
    assert src.load("BTCUSDT_1h").profile.timeframe == "1h"
    assert timedelta(hours=1) == got["ts"][1] - got["ts"][0]
