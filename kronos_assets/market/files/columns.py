"""From a raw frame's columns to typed series: which column is which, times in every accepted form, numbers."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from kronos_assets.market.files.errors import CandleFileError
from kronos_assets.market.rules import PRICE_COLUMNS

TIMESTAMP_COLUMNS = ("timestamp", "ts", "time", "date", "open_time")
OPTIONAL_COLUMNS = ("volume", "amount")


def pick_columns(path: Path, df: pl.DataFrame) -> dict[str, str]:
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
        raise CandleFileError(
            path, "missing_columns", f"missing columns {', '.join(missing)}; found {', '.join(df.columns) or 'none'}"
        )
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


def parse_timestamps(path: Path, col: str, s: pl.Series) -> pl.Series:
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
        raise CandleFileError(
            path, "unparsable_timestamp", f"row {i + 1}: cannot parse timestamp {s[i]!r} in column {col!r}"
        )
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


def to_float(path: Path, col: str, s: pl.Series) -> pl.Series:
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
