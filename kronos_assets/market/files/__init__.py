"""Candles from a user's files: CSV (optionally gzip), Parquet or Feather/Arrow IPC in a watched folder.

* ``read_candle_file(path)``: the validated candle frame (market.schema); ``CandleFileError`` otherwise, with
  ``problem`` one of PROBLEMS and a message naming the file, the row and the value.
* ``infer_timeframe(ts)`` / ``profile_candles(frame)``: the timeframe and a profile (rows, first/last ts,
  timeframe, expected/missing bars, gaps as ranges).
* ``market_name_from_filename(name)``: a safe market name (a Dagster dynamic partition key).
* ``resolve_in_folder(folder, name)``: the file inside the watched folder; ``PathEscapeError`` for ``..``,
  absolute paths and symlinks that lead out of it.
* ``scan_folder(folder)``: the usable files by market name, and what was skipped and why (only regular files
  are ever opened: a FIFO, socket or device is reported and skipped; so is a name that is not valid UTF-8).
* ``printable(text)``: text safe for any UTF-8 writer (a file name's undecodable bytes as ``\\xNN``).
* ``ReadLimits``: reading is bounded: a file larger than ``max_file_bytes``, or whose content decompresses to
  more than ``max_decompressed_bytes`` (gzip CSV, Parquet pages, compressed Feather), is refused as
  ``too_large`` before that much memory is used.
* ``FileSource(folder)``: CandleSource over a watched folder; ``symbol`` is the market name.

Modules: ``reading`` (bounded bytes to a raw frame), ``columns`` (which column is which, times, numbers),
``validation`` (row rules, from market.rules), ``profile`` (timeframe, gaps), ``folder`` (names, paths, scan),
``errors``; this module is the public face.

Accepted columns (case-insensitive): a timestamp named timestamp/ts/time/date/open_time (the first present in
that order) holding epoch seconds/ms/us/ns (by magnitude), ISO-8601 strings (naive = UTC; offsets converted) or
datetimes; open, high, low, close required; volume and amount optional (missing volume is 0.0 as Kronos does,
missing amount is null; ``profile.has_volume`` / ``has_amount`` say which). Other columns are ignored. Price and
volume columns must hold numbers (text that parses as a number is fine); booleans are refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from kronos_assets.market.files.columns import OPTIONAL_COLUMNS, TIMESTAMP_COLUMNS
from kronos_assets.market.files.errors import PROBLEMS, CandleFileError, PathEscapeError
from kronos_assets.market.files.folder import (
    FolderScan,
    market_name_from_filename,
    printable,
    resolve_in_folder,
    scan_folder,
)
from kronos_assets.market.files.profile import CandleProfile, infer_timeframe, profile_candles
from kronos_assets.market.files.reading import (
    MB,
    SUPPORTED_SUFFIXES,
    ReadLimits,
    file_digest,
    open_regular,
    read_raw,
)
from kronos_assets.market.files.validation import candles_from_raw
from kronos_assets.market.timeframes import timeframe_seconds

__all__ = [
    "MB",
    "OPTIONAL_COLUMNS",
    "PROBLEMS",
    "SUPPORTED_SUFFIXES",
    "TIMESTAMP_COLUMNS",
    "CandleFile",
    "CandleFileError",
    "CandleProfile",
    "FileSource",
    "FolderScan",
    "PathEscapeError",
    "ReadLimits",
    "file_digest",
    "infer_timeframe",
    "load_candle_file",
    "market_name_from_filename",
    "open_regular",
    "printable",
    "profile_candles",
    "read_candle_file",
    "resolve_in_folder",
    "scan_folder",
]


def read_candle_file(
    path: str | os.PathLike[str], *, exchange: str | None = None, limits: ReadLimits = ReadLimits()
) -> pl.DataFrame:
    """The candles of one file as a validated candle frame (``exchange`` defaults to ``file:<market name>``)."""
    path = Path(path)
    return candles_from_raw(path, read_raw(path, limits), exchange)


@dataclass
class CandleFile:
    path: Path
    market: str
    candles: pl.DataFrame
    profile: CandleProfile


def load_candle_file(
    path: str | os.PathLike[str], timeframe: str | None = None, limits: ReadLimits = ReadLimits()
) -> CandleFile:
    """Read (bounded by ``limits``), validate and profile one file (the timeframe is inferred unless given)."""
    path = Path(path)
    market = market_name_from_filename(path.name)
    raw = read_raw(path, limits)
    has_volume = "volume" in {c.strip().lower() for c in raw.columns}
    candles = candles_from_raw(path, raw, f"file:{market}")
    del raw
    return CandleFile(path, market, candles, profile_candles(candles, timeframe, path=path, has_volume=has_volume))


class FileSource:
    """CandleSource over a watched folder: ``symbol`` is a market name from ``scan_folder``."""

    name = "file"

    def __init__(self, folder: str | os.PathLike[str], limits: ReadLimits = ReadLimits()):
        self.folder = Path(folder)
        self.limits = limits
        self._cache: dict[Path, tuple[tuple[float, int], CandleFile]] = {}

    def load(self, market: str) -> CandleFile:
        scan = scan_folder(self.folder)
        if market not in scan.files:
            why = [r for n, r in scan.skipped if market_name_from_filename(n) == market] if scan.skipped else []
            raise FileNotFoundError(
                f"no candle file for market {market!r} in {self.folder}" + (f" ({why[0]})" if why else "")
            )
        path = scan.files[market]
        st = path.stat()
        key = (st.st_mtime, st.st_size)
        cached = self._cache.get(path)
        if cached is None or cached[0] != key:
            cached = (key, load_candle_file(path, limits=self.limits))
            self._cache[path] = cached
        return cached[1]

    def fetch(self, symbol: str, timeframe: str, start: datetime, end: datetime, now: datetime) -> pl.DataFrame:
        cf = self.load(symbol)
        if cf.profile.timeframe != timeframe:
            raise CandleFileError(
                cf.path, "timeframe_mismatch", f"holds {cf.profile.timeframe} candles, {timeframe} were asked for"
            )
        step = pl.duration(seconds=timeframe_seconds(timeframe))
        return cf.candles.filter(
            (pl.col("ts") >= _utc(start)) & (pl.col("ts") < _utc(end)) & (pl.col("ts") + step <= _utc(now))
        )


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)
