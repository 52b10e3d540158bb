-- Track record per symbol, timeframe, model and horizon step, over rolling 7/30/90-day windows of forecast
-- origins ending at $as_of, and over all time; with skill against the random walk with volatility on the
-- forecasts both have scored (1 - score / baseline score: positive means better than the baseline).
-- A model that forecasts no move (median = last close every time) makes no direction call, and one whose paths
-- are all the same (a point forecast) gives no probabilities: those scores are NULL ("n/a"), not a flattering
-- 0 % hit rate or an inflated Brier score. expected_coverage_* is what a perfectly calibrated forecaster's band
-- covers with the stored path count N: the bands are numpy's linear sample quantiles, whose expected coverage of
-- a new draw is nominal * (N - 1) / (N + 1) (exact at order statistics; 0.748 for the 80 % band of 30 paths).
-- The metric columns and skills are the metric registry's (kronos_assets/metrics/registry.py: board_sql and
-- skill_sql fill the /* registry: ... */ slots; track_record.scoreboard_sql reads this file with them filled).
-- This is the definition over every stored score (a series' snapshot as of its origin runs it); the track record
-- gets the same rows from the running aggregates (kronos_assets/warehouse/score_sums.py, track_record.scoreboard).
WITH windows(window_name, days) AS (
    VALUES ('7d', 7), ('30d', 30), ('90d', 90), ('all', NULL)
),
scored AS (
    SELECT w.window_name, e.*, f.n_paths, f.last_close
    FROM evaluations e JOIN forecasts f USING (symbol, timeframe, origin, model) CROSS JOIN windows w
    WHERE e.timeframe = $timeframe
      AND (w.days IS NULL OR e.origin > $as_of - to_days(CAST(w.days AS INTEGER)))
),
per_model AS (
    SELECT symbol, timeframe, model, window_name, step, any_value(horizon) AS horizon,
        count(*)                 AS n_forecasts,
        min(origin)              AS first_origin,
        max(origin)              AS last_origin,
        /* registry: aggregates */,
        CASE WHEN bool_and(width_90 = 0) THEN NULL ELSE avg(0.5 * (n_paths - 1) / (n_paths + 1)) END
                                 AS expected_coverage_50,
        CASE WHEN bool_and(width_90 = 0) THEN NULL ELSE avg(0.8 * (n_paths - 1) / (n_paths + 1)) END
                                 AS expected_coverage_80,
        CASE WHEN bool_and(width_90 = 0) THEN NULL ELSE avg(0.9 * (n_paths - 1) / (n_paths + 1)) END
                                 AS expected_coverage_90
    FROM scored
    GROUP BY symbol, timeframe, model, window_name, step
),
paired AS (
    SELECT m.symbol, m.timeframe, m.model, m.window_name, m.step,
        /* registry: skills */
    FROM scored m
    JOIN scored b ON b.symbol = m.symbol AND b.timeframe = m.timeframe AND b.window_name = m.window_name
                 AND b.step = m.step AND b.origin = m.origin AND b.model = 'random_walk_vol'
    GROUP BY ALL
)
SELECT per_model.*, paired.* EXCLUDE (symbol, timeframe, model, window_name, step)
FROM per_model LEFT JOIN paired USING (symbol, timeframe, model, window_name, step)
ORDER BY symbol, timeframe, model, window_name, step
