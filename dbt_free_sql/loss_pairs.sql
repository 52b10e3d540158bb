-- Per series and model, at the horizon's last step, in origin order: the losses the published verdicts compare.
-- The registry's losses slot takes, per metric the registry tests in a verdict (metrics.registry.Verdict), the
-- model's loss and its reference's: another model's same loss on the same origin (joined in the
-- registry's reference joins slot; NULL where it has none) or one computed from the forecast (the last
-- price's error); a constant reference (a coin flip's Brier score) needs no column. Then the n/a flags
-- (point_forecast, no_move). Today: CRPS against the random walk with volatility's, the absolute error of the median
-- relative to the last close against that of the last price (what the plain random walk forecasts), and the Brier
-- score of P(up). Forecasts scored before $scored_before (NULL: all), with origins in the $days-day window ending at
-- the series' newest of them ($days NULL: all time). Input of the Diebold-Mariano tests; kronos-assets verify runs
-- it over the re-scored forecasts.
-- The /* window floor */ slot takes "AND origin > <an origin the window does not reach>" (track_record.verdicts):
-- a constant DuckDB prunes the older row groups on, so a bounded window reads only its own rows.
WITH scored AS (
    SELECT * FROM evaluations
    WHERE timeframe = $timeframe AND step = horizon /* window floor */
      AND ($scored_before IS NULL OR scored_bar < $scored_before)
),
newest AS (SELECT symbol, max(origin) AS as_of FROM scored GROUP BY symbol)
SELECT m.symbol, m.timeframe, m.model, m.horizon, m.origin,
    /* registry: losses */
FROM scored m
JOIN (SELECT * FROM forecasts WHERE timeframe = $timeframe /* window floor */) f
    USING (symbol, timeframe, origin, model)
/* registry: reference joins */
JOIN newest ON newest.symbol = m.symbol
WHERE $days IS NULL OR m.origin > newest.as_of - to_days(CAST($days AS INTEGER))
ORDER BY m.symbol, m.model, m.origin
