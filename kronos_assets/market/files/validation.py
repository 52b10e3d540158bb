"""A raw frame becomes a candle frame only when every row passes: values present, times sorted and unique,
the OHLC and volume rules of market.rules. The first bad row is named with its values."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kronos_assets.market.files.columns import OPTIONAL_COLUMNS, parse_timestamps, pick_columns, to_float
from kronos_assets.market.files.errors import CandleFileError
from kronos_assets.market.files.folder import market_name_from_filename
from kronos_assets.market.rules import PRICE_COLUMNS, ohlc_violation_exprs
from kronos_assets.market.schema import CANDLE_SCHEMA, validate_candles


def first_true(mask: pl.Series) -> int | None:
    idx = mask.arg_true()
    return int(idx[0]) if idx.len() else None


def candles_from_raw(path: Path, raw: pl.DataFrame, exchange: str | None) -> pl.DataFrame:
    """The validated candle frame of a raw frame (``exchange`` defaults to ``file:<market name>``)."""
    cols = pick_columns(path, raw)
    if raw.height == 0:
        raise CandleFileError(path, "empty", "the file has no rows")
    ts = parse_timestamps(path, cols["ts"], raw[cols["ts"]])
    data: dict[str, pl.Series] = {"ts": ts}
    for c in PRICE_COLUMNS + OPTIONAL_COLUMNS:
        if c in cols:
            data[c] = to_float(path, cols[c], raw[cols[c]]).alias(c)
    df = pl.DataFrame(data)
    for c in PRICE_COLUMNS + ("volume",):
        if c in df.columns:
            i = first_true(df[c].is_null() | df[c].is_nan() | df[c].is_infinite())
            if i is not None:
                raise CandleFileError(path, "missing_values", f"row {i + 1}: {c} is {df[c][i]!r} (missing or NaN)")
    if "amount" in df.columns:
        i = first_true(df["amount"].is_nan() | df["amount"].is_infinite())
        if i is not None:
            raise CandleFileError(path, "missing_values", f"row {i + 1}: amount is {df['amount'][i]!r}")
    # order
    step_us = df["ts"].dt.epoch("us").diff()
    i = first_true(step_us < 0)
    if i is not None:
        raise CandleFileError(
            path,
            "unsorted",
            f"row {i + 1}: timestamp {df['ts'][i]} comes before the previous {df['ts'][i - 1]}; sort the file by time",
        )
    i = first_true(step_us == 0)
    if i is not None:
        raise CandleFileError(path, "duplicate_timestamp", f"row {i + 1}: timestamp {df['ts'][i]} repeats row {i}")
    # prices
    for problem, expr, text in ohlc_violation_exprs():
        i = first_true(df.select(expr.alias("x"))["x"])
        if i is not None:
            r = df.row(i, named=True)
            raise CandleFileError(
                path,
                problem,
                f"row {i + 1} ({r['ts']}): {text} (open {r['open']}, high "
                f"{r['high']}, low {r['low']}, close {r['close']})",
            )
    for c in OPTIONAL_COLUMNS:
        if c in df.columns:
            i = first_true(df[c] < 0)
            if i is not None:
                raise CandleFileError(path, "negative_volume", f"row {i + 1}: {c} {df[c][i]} is negative")
    if "volume" not in df.columns:
        df = df.with_columns(pl.lit(0.0).alias("volume"))
    if "amount" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.Float64).alias("amount"))
    name = exchange or f"file:{market_name_from_filename(path.name)}"
    df = df.with_columns(pl.lit(name).alias("exchange")).select(list(CANDLE_SCHEMA))
    return validate_candles(df, str(path.name))
