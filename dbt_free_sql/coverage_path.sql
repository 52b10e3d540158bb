-- Hits of each forecast's 80 % band pooled over its path, one row per symbol, model and origin (complete
-- forecasts only), for the scoreboard's "too narrow" / "too wide" test (kronos_assets.metrics.coverage): step s
-- weighs 1/s^2, since step s of forecasts made one bar apart overlaps s-fold and step 1 not at all.
-- expected_80 is what a calibrated band of the forecast's n_paths sample paths covers at every step.
-- The scoring step keeps these rows in path_hits for the origins it scores (warehouse.score_sums.refresh), so the
-- coverage test reads one row per forecast rather than every stored score; /* where */ takes the origins' filter.
SELECT e.symbol, e.timeframe, e.model, e.origin,
    any_value(e.horizon)                                                 AS horizon,
    sum(e.covered_80 / (e.step * e.step)) / sum(1.0 / (e.step * e.step)) AS hit_80,
    any_value(0.8 * (f.n_paths - 1) / (f.n_paths + 1))                  AS expected_80
FROM evaluations e JOIN forecasts f USING (symbol, timeframe, origin, model)
WHERE /* where */
GROUP BY e.symbol, e.timeframe, e.model, e.origin
HAVING count(*) = any_value(e.horizon)
