"""Market data: the candle schema, timeframes, and the sources that produce candles."""
