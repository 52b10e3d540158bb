-- PIT histogram at the horizon's last step (ten equal bins): flat for a calibrated forecaster, U-shaped for an
-- overconfident one, hump-shaped for an underconfident one.
-- The definition over every stored score; the track record sums the same counts from score_bins (kind 'pit').
SELECT symbol, timeframe, model,
    least(CAST(floor(pit * 10) AS INTEGER), 9) AS bin,
    count(*) AS n
FROM evaluations
WHERE timeframe = $timeframe AND step = horizon
GROUP BY ALL
ORDER BY symbol, timeframe, model, bin
