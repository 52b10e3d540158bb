"""Candles from a user's files: CSV (optionally gzip), Parquet or Feather/Arrow IPC in a watched folder.

* ``read_candle_file(path)``: the validated candle frame (market.schema); ``CandleFileError`` otherwise, with
  ``problem`` one of PROBLEMS and a message naming the file, the row and the value.
* ``infer_timeframe(ts)`` / ``profile_candles(frame)``: the timeframe and a profile (rows, first/last ts,
  timeframe, expected/missing bars, gaps as ranges).
* ``market_name_from_filename(name)``: a safe market name (a Dagster dynamic partition key).
* ``resolve_in_folder(folder, name)``: the file inside the watched folder; ``PathEscapeError`` for ``..``,
  absolute paths and symlinks that lead out of it.
* ``scan_folder(folder)``: the usable files by market name, and what was skipped and why (only regular files
  are ever opened: a FIFO, socket or device is reported and skipped).
* ``ReadLimits``: reading is bounded: a file larger than ``max_file_bytes``, or whose content decompresses to
  more than ``max_decompressed_bytes`` (gzip CSV, Parquet pages, compressed Feather), is refused as
  ``too_large`` before that much memory is used.
* ``FileSource(folder)``: CandleSource over a watched folder; ``symbol`` is the market name.

Accepted columns (case-insensitive): a timestamp named timestamp/ts/time/date/open_time (the first present in
that order) holding epoch seconds/ms/us/ns (by magnitude), ISO-8601 strings (naive = UTC; offsets converted) or
datetimes; open, high, low, close required; volume and amount optional (missing volume is 0.0 as Kronos does,
missing amount is null; ``profile.has_volume`` / ``has_amount`` say which). Other columns are ignored. Price and
volume columns must hold numbers (text that parses as a number is fine); booleans are refused.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import stat
import unicodedata
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl

from kronos_assets.market.gaps import Gap, find_gaps
from kronos_assets.market.schema import CANDLE_SCHEMA, CandleError, validate_candles
from kronos_assets.market.timeframes import TIMEFRAME_SECONDS, timeframe_seconds

TIMESTAMP_COLUMNS = ("timestamp", "ts", "time", "date", "open_time")
PRICE_COLUMNS = ("open", "high", "low", "close")
OPTIONAL_COLUMNS = ("volume", "amount")
CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
FEATHER_SUFFIXES = (".feather", ".arrow", ".ipc")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES + FEATHER_SUFFIXES
MARKET_NAME_MAX = 100

PROBLEMS = (
    "unsupported_format", "unreadable", "empty", "missing_columns", "ambiguous_columns", "unparsable_timestamp",
    "not_a_number", "missing_values", "unsorted", "duplicate_timestamp", "non_positive_price", "high_below_low",
    "high_below_open_close", "low_above_open_close", "negative_volume", "unknown_timeframe", "off_grid",
    "timeframe_mismatch", "not_a_regular_file", "too_large",
)
MB = 1 << 20


@dataclass(frozen=True)
class ReadLimits:
    """How much one candle file may cost to read: its size on disk and its size once decompressed."""

    max_file_bytes: int = 64 * MB
    max_decompressed_bytes: int = 64 * MB


class CandleFileError(CandleError):
    """A candle file that cannot be used; ``problem`` is one of PROBLEMS."""

    def __init__(self, path: str | os.PathLike[str], problem: str, detail: str):
        assert problem in PROBLEMS, problem
        self.path = str(path)
        self.problem = problem
        self.detail = detail
        super().__init__(f"{Path(path).name}: {detail}")


class PathEscapeError(ValueError):
    """A requested file name that would lead outside the watched folder."""


# --------------------------------------------------------------------------------------------------- reading


def _suffix_kind(path: Path) -> str | None:
    name = path.name.lower()
    for kind, suffixes in (("csv", CSV_SUFFIXES), ("parquet", PARQUET_SUFFIXES), ("ipc", FEATHER_SUFFIXES)):
        if name.endswith(suffixes):
            return kind
    return None


def open_regular(path: str | os.PathLike[str]) -> io.BufferedReader:
    """``path`` opened for reading, or CandleFileError (not_a_regular_file) for a FIFO, socket or device.

    Opened non-blocking, so a FIFO cannot hang the caller even if it replaced a file since the folder scan."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise CandleFileError(path, "not_a_regular_file", f"not a regular file ({_file_kind(mode)}); skipped unread")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a plain file"


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a regular file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open_regular(path) as fh:
        for chunk in iter(lambda: fh.read(MB), b""):
            h.update(chunk)
    return h.hexdigest()


def _too_large(path: Path, what: str, limit: int) -> CandleFileError:
    return CandleFileError(path, "too_large", f"{what} exceeds the {limit / MB:g} MB limit (uploads.max_* settings)")


GZIP_MAGIC, ZSTD_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
ZLIB_HEADERS = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")


def _check_decompressed(path: Path, fh: io.BufferedReader, limits: ReadLimits) -> None:
    """Refuse compressed content (polars would inflate gzip, zlib or zstd in memory) that is larger than the
    limit, counting it in 1 MiB chunks that are never held; zstd, which the standard library cannot count, is
    refused outright."""
    head = fh.read(4)
    fh.seek(0)
    if head == ZSTD_MAGIC:
        raise CandleFileError(path, "unsupported_format", "zstd-compressed content; compress it with gzip instead")
    size, limit = 0, limits.max_decompressed_bytes
    if head[:2] == GZIP_MAGIC:
        with gzip.GzipFile(fileobj=fh) as stream:
            while chunk := stream.read(MB):
                size += len(chunk)
                if size > limit:
                    raise _too_large(path, "the decompressed content", limit)
    elif head[:2] in ZLIB_HEADERS:
        inflate = zlib.decompressobj()
        while not inflate.eof and (src := inflate.unconsumed_tail or fh.read(MB)):
            size += len(inflate.decompress(src, MB))
            if size > limit:
                raise _too_large(path, "the decompressed content", limit)
    fh.seek(0)


def _read_raw(path: Path, limits: ReadLimits = ReadLimits()) -> pl.DataFrame:
    kind = _suffix_kind(path)
    if kind is None:
        raise CandleFileError(path, "unsupported_format",
                              f"unsupported file type; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limits.max_file_bytes:
            raise _too_large(path, f"the file ({size / MB:.1f} MB)", limits.max_file_bytes)
        try:
            if kind == "csv":
                _check_decompressed(path, fh, limits)
                data = fh.read()  # from the descriptor checked above (at most max_file_bytes)
                # every column as text: conversion errors name the row
                return pl.read_csv(data, infer_schema=False) if data.strip() else pl.DataFrame()
            table = _read_arrow(path, fh, kind, limits)
            return pl.from_arrow(table)  # type: ignore[return-value]
        except CandleFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - any reader failure is an unreadable file
            raise CandleFileError(path, "unreadable", f"cannot read as {kind}: {str(exc).splitlines()[0][:200]}") from exc


def _read_arrow(path: Path, fh: io.BufferedReader, kind: str, limits: ReadLimits) -> object:
    """A Parquet or Feather file as an Arrow table, refused before reading when its content is too large."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    limit = limits.max_decompressed_bytes
    if kind == "parquet":
        pf = pq.ParquetFile(fh)
        meta = pf.metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if size > limit:
            raise _too_large(path, f"the uncompressed content ({size / MB:.1f} MB)", limit)
        return pf.read()
    reader = ipc.open_file(fh)
    batches, size = [], 0
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        size += batch.nbytes
        if size > limit:
            raise _too_large(path, "the uncompressed content", limit)
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=reader.schema)


def _pick_columns(path: Path, df: pl.DataFrame) -> dict[str, str]:
    by_lower: dict[str, str] = {}
    for col in df.columns:
        key = col.strip().lower()
        if key in by_lower:
            raise CandleFileError(path, "ambiguous_columns", f"columns {by_lower[key]!r} and {col!r} clash")
        by_lower[key] = col
    ts_col = next((by_lower[c] for c in TIMESTAMP_COLUMNS if c in by_lower), None)
    missing = ([] if ts_col else ["timestamp (or ts/time/date/open_time)"]) + [
        c for c in PRICE_COLUMNS if c not in by_lower
    ]
    if missing:
        raise CandleFileError(path, "missing_columns",
                              f"missing columns {', '.join(missing)}; found {', '.join(df.columns) or 'none'}")
    picked = {"ts": ts_col}
    for c in PRICE_COLUMNS + OPTIONAL_COLUMNS:
        if c in by_lower:
            picked[c] = by_lower[c]
    return picked


def _epoch_unit(max_abs: float) -> str:
    if max_abs < 1e11:
        return "s"
    if max_abs < 1e14:
        return "ms"
    if max_abs < 1e17:
        return "us"
    return "ns"


_MULT_US = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}


def _parse_timestamps(path: Path, col: str, s: pl.Series) -> pl.Series:
    """The column as Datetime(us, UTC), or CandleFileError naming the first value that does not parse."""
    out: pl.Series
    if s.dtype == pl.Datetime:
        out = s if s.dtype.time_zone else s.dt.replace_time_zone("UTC")  # type: ignore[union-attr]
        out = out.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    elif s.dtype == pl.Date:
        out = s.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    elif s.dtype.is_numeric():
        out = _epoch(path, col, s.cast(pl.Float64))
    elif s.dtype == pl.Utf8:
        text = s.str.strip_chars()
        if text.drop_nulls().str.contains(r"^-?\d+(\.\d+)?$").all() and text.drop_nulls().len():
            out = _epoch(path, col, text.cast(pl.Float64, strict=False))
        else:
            out = text.str.to_datetime(time_unit="us", time_zone="UTC", strict=False, ambiguous="earliest")
            bad = out.is_null() & text.is_not_null()
            if bad.any():  # the inferred format did not fit every row: try ISO-8601 value by value
                out = pl.Series(col, [_iso(v) for v in text.to_list()], dtype=pl.Datetime("us", "UTC"))
    else:
        raise CandleFileError(path, "unparsable_timestamp", f"column {col!r} has type {s.dtype}, not a time")
    bad_idx = (out.is_null() & s.is_not_null()).arg_true()
    if bad_idx.len():
        i = bad_idx[0]
        raise CandleFileError(path, "unparsable_timestamp",
                              f"row {i + 1}: cannot parse timestamp {s[i]!r} in column {col!r}")
    null_idx = out.is_null().arg_true()
    if null_idx.len():
        raise CandleFileError(path, "unparsable_timestamp", f"row {null_idx[0] + 1}: empty timestamp in {col!r}")
    return out.alias("ts")


def _iso(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace(" UTC", "+00:00"))
    except ValueError:
        return None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _epoch(path: Path, col: str, f: pl.Series) -> pl.Series:
    finite = f.filter(f.is_finite())
    if finite.len() != f.drop_nulls().len():
        i = (~f.is_finite()).arg_true()[0]
        raise CandleFileError(path, "unparsable_timestamp", f"row {i + 1}: timestamp {f[i]!r} is not finite")
    unit = _epoch_unit(float(finite.abs().max() or 0))
    us = (f * _MULT_US[unit]).round(0).cast(pl.Int64)
    return us.cast(pl.Datetime("us", "UTC"))


def _to_float(path: Path, col: str, s: pl.Series) -> pl.Series:
    if s.dtype == pl.Utf8:
        text = s.str.strip_chars()
        out = text.cast(pl.Float64, strict=False)
        bad = (out.is_null() & text.is_not_null() & (text != "")).arg_true()
        if bad.len():
            raise CandleFileError(path, "not_a_number", f"row {bad[0] + 1}: {col} {s[bad[0]]!r} is not a number")
        return out
    if s.dtype.is_numeric():  # not Boolean: true/false are not prices
        return s.cast(pl.Float64)
    raise CandleFileError(path, "not_a_number", f"column {col!r} has type {s.dtype}, not numbers")


def _first(mask: pl.Series) -> int | None:
    idx = mask.arg_true()
    return int(idx[0]) if idx.len() else None


def read_candle_file(path: str | os.PathLike[str], *, exchange: str | None = None,
                     limits: ReadLimits = ReadLimits()) -> pl.DataFrame:
    """The candles of one file as a validated candle frame (``exchange`` defaults to ``file:<market name>``)."""
    path = Path(path)
    return _candles(path, _read_raw(path, limits), exchange)


def _candles(path: Path, raw: pl.DataFrame, exchange: str | None) -> pl.DataFrame:
    cols = _pick_columns(path, raw)
    if raw.height == 0:
        raise CandleFileError(path, "empty", "the file has no rows")
    ts = _parse_timestamps(path, cols["ts"], raw[cols["ts"]])
    data: dict[str, pl.Series] = {"ts": ts}
    for c in PRICE_COLUMNS + OPTIONAL_COLUMNS:
        if c in cols:
            data[c] = _to_float(path, cols[c], raw[cols[c]]).alias(c)
    df = pl.DataFrame(data)
    for c in PRICE_COLUMNS + ("volume",):
        if c in df.columns:
            i = _first(df[c].is_null() | df[c].is_nan() | df[c].is_infinite())
            if i is not None:
                raise CandleFileError(path, "missing_values", f"row {i + 1}: {c} is {df[c][i]!r} (missing or NaN)")
    if "amount" in df.columns:
        i = _first(df["amount"].is_nan() | df["amount"].is_infinite())
        if i is not None:
            raise CandleFileError(path, "missing_values", f"row {i + 1}: amount is {df['amount'][i]!r}")
    # order
    step_us = df["ts"].dt.epoch("us").diff()
    i = _first(step_us < 0)
    if i is not None:
        raise CandleFileError(path, "unsorted",
                              f"row {i + 1}: timestamp {df['ts'][i]} comes before the previous {df['ts'][i - 1]}; "
                              "sort the file by time")
    i = _first(step_us == 0)
    if i is not None:
        raise CandleFileError(path, "duplicate_timestamp", f"row {i + 1}: timestamp {df['ts'][i]} repeats row {i}")
    # prices
    checks = (
        ("non_positive_price", pl.min_horizontal(*PRICE_COLUMNS) <= 0, "a price is zero or negative"),
        ("high_below_low", pl.col("high") < pl.col("low"), "high is below low"),
        ("high_below_open_close", pl.col("high") < pl.max_horizontal("open", "close"), "high is below open/close"),
        ("low_above_open_close", pl.col("low") > pl.min_horizontal("open", "close"), "low is above open/close"),
    )
    for problem, expr, text in checks:
        i = _first(df.select(expr.alias("x"))["x"])
        if i is not None:
            r = df.row(i, named=True)
            raise CandleFileError(path, problem, f"row {i + 1} ({r['ts']}): {text} (open {r['open']}, high "
                                                 f"{r['high']}, low {r['low']}, close {r['close']})")
    for c in OPTIONAL_COLUMNS:
        if c in df.columns:
            i = _first(df[c] < 0)
            if i is not None:
                raise CandleFileError(path, "negative_volume", f"row {i + 1}: {c} {df[c][i]} is negative")
    if "volume" not in df.columns:
        df = df.with_columns(pl.lit(0.0).alias("volume"))
    if "amount" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.Float64).alias("amount"))
    name = exchange or f"file:{market_name_from_filename(path.name)}"
    df = df.with_columns(pl.lit(name).alias("exchange")).select(list(CANDLE_SCHEMA))
    return validate_candles(df, str(path.name))


# --------------------------------------------------------------------------------------------------- profile


def infer_timeframe(ts: pl.Series, *, path: str | os.PathLike[str] = "<candles>") -> str:
    """The supported timeframe of a sorted, unique timestamp series: its most common spacing.

    Raises CandleFileError (unknown_timeframe, off_grid) when the spacing is not a supported timeframe, when a
    bar does not sit on that timeframe's UTC grid, or when fewer than two bars make it undecidable.
    """
    if ts.len() < 2:
        raise CandleFileError(path, "unknown_timeframe", "need at least two bars to infer the timeframe")
    secs = (ts.dt.epoch("s").diff().drop_nulls())
    counts = secs.value_counts(sort=True)
    top = counts[counts.columns[1]][0]
    mode = min(v for v, n in zip(counts[counts.columns[0]], counts[counts.columns[1]]) if n == top)
    by_secs = {v: k for k, v in TIMEFRAME_SECONDS.items()}
    if mode not in by_secs:
        raise CandleFileError(path, "unknown_timeframe",
                              f"most common spacing is {_human(mode)}; supported: {', '.join(TIMEFRAME_SECONDS)}")
    tf = by_secs[mode]
    _check_grid(ts, tf, path)
    return tf


def _check_grid(ts: pl.Series, tf: str, path: str | os.PathLike[str]) -> None:
    step = timeframe_seconds(tf)
    epoch = ts.dt.epoch("us")
    off = _first((epoch % (step * 1_000_000)) != 0)
    if off is not None:
        raise CandleFileError(path, "off_grid", f"row {off + 1}: {ts[off]} is not on the UTC {tf} grid")


def _human(secs: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % n == 0 and secs >= n:
            return f"{secs // n}{unit}"
    return f"{secs}s"


@dataclass
class CandleProfile:
    rows: int
    first_ts: datetime
    last_ts: datetime
    timeframe: str
    expected_bars: int  # bars from first_ts to last_ts inclusive
    missing_bars: int
    gaps: list[Gap] = field(default_factory=list)
    zero_volume_bars: int = 0
    has_volume: bool = True
    has_amount: bool = False

    def gap_ranges(self) -> list[tuple[datetime, datetime]]:
        return [g.as_tuple() for g in self.gaps]

    def to_metadata(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "first_ts": self.first_ts.isoformat(),
            "last_ts": self.last_ts.isoformat(),
            "timeframe": self.timeframe,
            "expected_bars": self.expected_bars,
            "missing_bars": self.missing_bars,
            "gaps": [[g.start.isoformat(), g.end.isoformat(), g.bars] for g in self.gaps],
            "zero_volume_bars": self.zero_volume_bars,
            "has_volume": self.has_volume,
            "has_amount": self.has_amount,
        }


def profile_candles(candles: pl.DataFrame, timeframe: str | None = None, *,
                    path: str | os.PathLike[str] = "<candles>", has_volume: bool = True) -> CandleProfile:
    """Profile of a validated candle frame; the timeframe is inferred unless given (then checked)."""
    if candles.height == 0:
        raise CandleFileError(path, "empty", "no rows")
    ts = candles["ts"]
    if timeframe is None:
        timeframe = infer_timeframe(ts, path=path)
    else:
        timeframe_seconds(timeframe)
        _check_grid(ts, timeframe, path)
    step = timeframe_seconds(timeframe) * 1000
    ms = ts.dt.epoch("ms").to_list()
    gaps = find_gaps(ms, ms[0], ms[-1] + step, step)
    return CandleProfile(
        rows=candles.height,
        first_ts=ts[0],
        last_ts=ts[-1],
        timeframe=timeframe,
        expected_bars=(ms[-1] - ms[0]) // step + 1,
        missing_bars=sum(g.bars for g in gaps),
        gaps=gaps,
        zero_volume_bars=int((candles["volume"] == 0).sum()) if has_volume else 0,
        has_volume=has_volume,
        has_amount=candles["amount"].null_count() < candles.height,
    )


@dataclass
class CandleFile:
    path: Path
    market: str
    candles: pl.DataFrame
    profile: CandleProfile


def load_candle_file(path: str | os.PathLike[str], timeframe: str | None = None,
                     limits: ReadLimits = ReadLimits()) -> CandleFile:
    """Read (bounded by ``limits``), validate and profile one file (the timeframe is inferred unless given)."""
    path = Path(path)
    market = market_name_from_filename(path.name)
    raw = _read_raw(path, limits)
    has_volume = "volume" in {c.strip().lower() for c in raw.columns}
    candles = _candles(path, raw, f"file:{market}")
    del raw
    return CandleFile(path, market, candles, profile_candles(candles, timeframe, path=path, has_volume=has_volume))


# --------------------------------------------------------------------------------------------------- names, paths

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_COMPRESSION = (".gz", ".bz2", ".xz", ".zst", ".zip")


def market_name_from_filename(filename: str) -> str:
    """A market name safe as a Dagster dynamic partition key: ``[A-Za-z0-9._-]``, no leading/trailing ``._-``.

    ``"BTC-USDT 1h.csv.gz"`` -> ``"BTC-USDT_1h"``. Directory parts and the file type suffix are dropped,
    non-ASCII letters are transliterated where possible, runs of other characters become one ``_``.
    Raises ValueError when nothing usable is left.
    """
    base = re.split(r"[\\/]", str(filename))[-1]
    lower = base.lower()
    for suffix in _COMPRESSION:
        if lower.endswith(suffix):
            base, lower = base[: -len(suffix)], lower[: -len(suffix)]
            break
    for suffix in SUPPORTED_SUFFIXES:
        if lower.endswith(suffix):
            base = base[: -len(suffix)]
            break
    ascii_ = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    name = _UNSAFE.sub("_", ascii_)
    name = re.sub(r"_{2,}", "_", name).strip("._-")[:MARKET_NAME_MAX].strip("._-")
    if not name:
        raise ValueError(f"file name {filename!r} gives no usable market name")
    return name


def resolve_in_folder(folder: str | os.PathLike[str], name: str | os.PathLike[str]) -> Path:
    """The real path of ``name`` inside ``folder``; PathEscapeError if it would lead outside.

    Refused: empty names, NUL bytes, backslashes, absolute paths, ``~``, any ``..`` part, and paths (symlinks
    included, at any level) whose real location is not inside the folder's real location. A missing file raises
    FileNotFoundError, a directory IsADirectoryError.
    """
    text = os.fspath(name)
    if not text or "\x00" in text or "\\" in text:
        raise PathEscapeError(f"refusing file name {text!r}")
    rel = PurePosixPath(text)
    if rel.is_absolute() or text.startswith("~"):
        raise PathEscapeError(f"refusing absolute path {text!r}; give a name inside the watched folder")
    if any(part == ".." for part in rel.parts):
        raise PathEscapeError(f"refusing {text!r}: '..' leads out of the watched folder")
    root = Path(folder).resolve(strict=True)
    target = (root / rel).resolve(strict=False)
    if target != root and root not in target.parents:
        raise PathEscapeError(f"refusing {text!r}: it resolves to {target}, outside {root}")
    if not target.exists():
        raise FileNotFoundError(f"{text!r} not found in {root}")
    if target.is_dir():
        raise IsADirectoryError(f"{text!r} is a folder, not a candle file")
    return target


@dataclass
class FolderScan:
    files: dict[str, Path]  # market name -> resolved path
    skipped: list[tuple[str, str]]  # (file name, reason)


def scan_folder(folder: str | os.PathLike[str]) -> FolderScan:
    """Candle files directly inside ``folder`` by market name. Hidden files, other types, anything but a regular
    file, links out of the folder and names that collide (both files) are skipped with the reason."""
    root = Path(folder)
    found: dict[str, list[tuple[str, Path]]] = {}
    skipped: list[tuple[str, str]] = []
    for entry in sorted(os.listdir(root)):
        if entry.startswith("."):
            continue
        if _suffix_kind(Path(entry)) is None:
            if not (root / entry).is_dir():
                skipped.append((entry, "unsupported file type"))
            continue
        try:
            path = resolve_in_folder(root, entry)
            market = market_name_from_filename(entry)
            mode = os.stat(path).st_mode  # stat never opens: a FIFO cannot block it
        except (PathEscapeError, ValueError, OSError) as exc:
            skipped.append((entry, str(exc)))
            continue
        if not stat.S_ISREG(mode):
            skipped.append((entry, f"not a regular file ({_file_kind(mode)}); skipped unread"))
            continue
        found.setdefault(market, []).append((entry, path))
    files: dict[str, Path] = {}
    for market, entries in found.items():
        if len(entries) > 1:
            names = ", ".join(e for e, _ in entries)
            skipped.extend((e, f"market name {market!r} is shared by {names}") for e, _ in entries)
        else:
            files[market] = entries[0][1]
    return FolderScan(files, skipped)


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
            raise FileNotFoundError(f"no candle file for market {market!r} in {self.folder}"
                                    + (f" ({why[0]})" if why else ""))
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
            raise CandleFileError(cf.path, "timeframe_mismatch",
                                  f"holds {cf.profile.timeframe} candles, {timeframe} were asked for")
        step = pl.duration(seconds=timeframe_seconds(timeframe))
        return cf.candles.filter(
            (pl.col("ts") >= _utc(start)) & (pl.col("ts") < _utc(end)) & (pl.col("ts") + step <= _utc(now))
        )


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)
