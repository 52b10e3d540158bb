"""The candle frame every source produces and every stage reads.

A candle frame is a polars DataFrame with these columns, sorted by ``ts`` with unique ``ts``:

    ts        Datetime(us, UTC)  bar open time
    open, high, low, close      Float64, the OHLC rule of market.rules (> 0, low <= min(open, close) ...)
    volume    Float64 >= 0       base-asset volume
    amount    Float64 >= 0       quote-asset volume (null when a source does not give it)
    exchange  Utf8               who served the bar ("synthetic", "binance", "file:<name>", ...)
"""

from __future__ import annotations

import polars as pl

from kronos_assets.market.rules import PRICE_COLUMNS, VOLUME_COLUMNS, ohlc_violation_exprs

CANDLE_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
    "amount": pl.Float64,
    "exchange": pl.Utf8,
}


class CandleError(ValueError):
    """Candles that break the schema; the message names the source and the problem."""


def empty_candles() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDLE_SCHEMA)


def validate_candles(df: pl.DataFrame, source: str) -> pl.DataFrame:
    """Check a candle frame and return it cast to the schema, or raise CandleError naming the problem."""
    missing = [c for c in CANDLE_SCHEMA if c not in df.columns]
    if missing:
        raise CandleError(f"{source}: missing columns {missing}")
    df = df.select([pl.col(c).cast(t) for c, t in CANDLE_SCHEMA.items()])
    if df.height == 0:
        return df
    if df["ts"].null_count():
        raise CandleError(f"{source}: {df['ts'].null_count()} rows without a timestamp")
    if not df["ts"].is_sorted():
        raise CandleError(f"{source}: timestamps are not sorted ascending")
    dup = df.filter(pl.col("ts").is_duplicated())
    if dup.height:
        raise CandleError(f"{source}: duplicate timestamps, first {dup['ts'][0]}")
    for col in (*PRICE_COLUMNS, "volume"):
        s = df[col]
        if s.null_count() or s.is_nan().any() or s.is_infinite().any():
            raise CandleError(f"{source}: column {col!r} has missing or non-finite values")
    for _, violates, text in ohlc_violation_exprs():
        bad = df.filter(violates)
        if bad.height:
            raise CandleError(f"{source}: {text} at {bad['ts'][0]}")
    for col in VOLUME_COLUMNS:
        if (df[col] < 0).any():
            raise CandleError(f"{source}: negative {col}")
    return df
