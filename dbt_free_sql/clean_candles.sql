-- Clean candles with features for one series over [$start, $end) (open times), reading from $lookback so the
-- rolling features of the first bars see their full window. Invalid rows (non-positive or inconsistent prices,
-- negative volume) are dropped.
WITH src AS (
    SELECT *
    FROM raw_candles
    WHERE symbol = $symbol AND timeframe = $timeframe AND ts >= $lookback AND ts < $end
      AND least(open, high, low, close) > 0
      AND high >= greatest(open, close) AND low <= least(open, close)
      AND volume >= 0
),
stepped AS (
    SELECT *,
        -- bars absent between the previous stored bar and this one
        coalesce(
            CAST(round(epoch(ts - lag(ts) OVER w) / $bar_seconds) AS INTEGER) - 1, 0
        ) AS bars_missing_before,
        CASE WHEN epoch(ts - lag(ts) OVER w) = $bar_seconds
             THEN ln(close / lag(close) OVER w) END AS log_return
    FROM src
    WINDOW w AS (ORDER BY ts)
),
featured AS (
    SELECT *,
        ln(high / low) AS log_range,
        stddev_samp(log_return) OVER (ORDER BY ts ROWS BETWEEN 23 PRECEDING AND CURRENT ROW) AS realised_vol,
        (ln(volume + 1e-12) - avg(ln(volume + 1e-12)) OVER last24)
            / nullif(stddev_samp(ln(volume + 1e-12)) OVER last24, 0) AS volume_z
    FROM stepped
    WINDOW last24 AS (ORDER BY ts ROWS BETWEEN 23 PRECEDING AND CURRENT ROW)
)
SELECT symbol, timeframe, ts, open, high, low, close, volume,
       coalesce(amount, volume * (open + high + low + close) / 4) AS amount,
       exchange, log_return, log_range, realised_vol, volume_z, bars_missing_before
FROM featured
WHERE ts >= $start
ORDER BY ts
