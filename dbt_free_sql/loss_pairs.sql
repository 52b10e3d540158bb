-- Per series and model, at the horizon's last step, in origin order: the losses the published verdicts compare.
-- CRPS against the random walk with volatility's on the same origin (NULL where it has none), the absolute error
-- of the median relative to the last close against that of the last price (what the plain random walk forecasts), and the Brier score of
-- P(up) (a coin flip scores 0.25). Forecasts scored before $scored_before (NULL: all), with origins in the
-- $days-day window ending at the series' newest of them ($days NULL: all time). Input of the Diebold-Mariano tests.
-- The /* window floor */ slot takes "AND origin > <an origin the window does not reach>" (track_record.verdicts):
-- a constant DuckDB prunes the older row groups on, so a bounded window reads only its own rows.
WITH scored AS (
    SELECT * FROM evaluations
    WHERE timeframe = $timeframe AND step = horizon /* window floor */
      AND ($scored_before IS NULL OR scored_bar < $scored_before)
),
newest AS (SELECT symbol, max(origin) AS as_of FROM scored GROUP BY symbol)
SELECT m.symbol, m.timeframe, m.model, m.horizon, m.origin,
    m.crps                          AS crps_model,
    b.crps                          AS crps_baseline,
    m.abs_error / f.last_close      AS rel_error_model,
    abs(m.realised - f.last_close) / f.last_close AS rel_error_last_price,
    m.brier_up                      AS brier_model,
    m.width_90 = 0                  AS point_forecast  -- every path the same: no probability of anything
FROM scored m
JOIN (SELECT * FROM forecasts WHERE timeframe = $timeframe /* window floor */) f
    USING (symbol, timeframe, origin, model)
LEFT JOIN scored b ON b.symbol = m.symbol AND b.origin = m.origin AND b.model = 'random_walk_vol'
JOIN newest ON newest.symbol = m.symbol
WHERE $days IS NULL OR m.origin > newest.as_of - to_days(CAST($days AS INTEGER))
ORDER BY m.symbol, m.model, m.origin
