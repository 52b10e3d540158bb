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
windows AS (
    -- Aggregating each bar's own 24-value list (not a sliding window) makes a bar's features depend only on its
    -- 24 bars, bit for bit, whatever range a run covers: re-materialising a day leaves exactly the same rows.
    SELECT *,
        list(log_return) OVER last24 AS returns24,
        list(ln(volume + 1e-12)) OVER last24 AS log_volumes24
    FROM stepped
    WINDOW last24 AS (ORDER BY ts ROWS BETWEEN 23 PRECEDING AND CURRENT ROW)
),
featured AS (
    SELECT *,
        ln(high / low) AS log_range,
        list_aggregate(returns24, 'stddev_samp') AS realised_vol,
        (ln(volume + 1e-12) - list_aggregate(log_volumes24, 'avg'))
            / nullif(list_aggregate(log_volumes24, 'stddev_samp'), 0) AS volume_z
    FROM windows
)
SELECT symbol, timeframe, ts, open, high, low, close, volume,
       coalesce(amount, volume * (open + high + low + close) / 4) AS amount,
       exchange, log_return, log_range, realised_vol, volume_z, bars_missing_before
FROM featured
WHERE ts >= $start
ORDER BY ts
