-- Reliability of P(up) at the horizon's last step: forecasts binned by P(up) in tenths, with the mean forecast
-- probability and the observed frequency of a close above the last close, per symbol, timeframe and model.
-- The definition over every stored score; the track record sums the same from score_bins (kind 'p_up').
SELECT e.symbol, e.timeframe, e.model,
    least(CAST(floor(e.p_up * 10) AS INTEGER), 9)   AS bin,
    round(least(CAST(floor(e.p_up * 10) AS INTEGER), 9) / 10.0, 1) AS lower,
    round(least(CAST(floor(e.p_up * 10) AS INTEGER), 9) / 10.0 + 0.1, 1) AS upper,
    count(*)                                        AS n,
    avg(e.p_up)                                     AS mean_forecast,
    avg(CASE WHEN e.realised > f.last_close THEN 1.0 ELSE 0.0 END) AS observed_frequency
FROM evaluations e
JOIN forecasts f USING (symbol, timeframe, origin, model)
WHERE e.timeframe = $timeframe AND e.step = e.horizon
GROUP BY ALL
ORDER BY symbol, timeframe, model, bin
