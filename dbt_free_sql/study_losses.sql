-- The real-data study (kronos_assets/evaluation/study_record.py): per series and model, at the horizon's last step, in origin
-- order, the losses its verdicts compare, for origins in [$first_origin, $end_origin): CRPS next to the random walk
-- with volatility's and GARCH's on the same origin (NULL where they have none), the absolute error of the median
-- and of the last price relative to the last close, the Brier score of P(up), 50/80/90 % coverage and the PIT.
WITH scored AS (
    SELECT * FROM evaluations
    WHERE timeframe = $timeframe AND step = horizon AND origin >= $first_origin AND origin < $end_origin
)
SELECT m.symbol, m.model, m.horizon, m.origin, strftime(m.origin, '%Y-%m') AS month,
    m.crps                          AS crps_model,
    b.crps                          AS crps_baseline,
    g.crps                          AS crps_garch,
    m.abs_error / f.last_close      AS rel_error_model,
    abs(m.realised - f.last_close) / f.last_close AS rel_error_last_price,
    m.brier_up                      AS brier_model,
    m.covered_50, m.covered_80, m.covered_90, m.pit, m.p_up,
    CASE WHEN m.realised > f.last_close THEN 1 ELSE 0 END AS went_up,
    f.n_paths,
    m.width_90 = 0                  AS point_forecast
FROM scored m
JOIN forecasts f USING (symbol, timeframe, origin, model)
LEFT JOIN scored b ON b.symbol = m.symbol AND b.origin = m.origin AND b.model = 'random_walk_vol'
LEFT JOIN scored g ON g.symbol = m.symbol AND g.origin = m.origin AND g.model = 'garch'
ORDER BY m.symbol, m.model, m.origin
