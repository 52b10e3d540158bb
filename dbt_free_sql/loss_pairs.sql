-- Per model and the random walk with volatility: CRPS at the horizon's last step for every origin both scored,
-- in origin order, over the window ending at $as_of ($days NULL = all time). Input of the Diebold-Mariano test.
SELECT m.symbol, m.timeframe, m.model, m.horizon, m.origin, m.crps AS loss_model, b.crps AS loss_baseline
FROM evaluations m
JOIN evaluations b ON b.symbol = m.symbol AND b.timeframe = m.timeframe AND b.origin = m.origin
                  AND b.step = m.step AND b.model = 'random_walk_vol'
WHERE m.timeframe = $timeframe AND m.step = m.horizon AND m.model <> 'random_walk_vol'
  AND ($days IS NULL OR m.origin > $as_of - to_days(CAST($days AS INTEGER)))
ORDER BY m.symbol, m.model, m.origin
