-- Track record per symbol, timeframe and model at the horizon's last step, over all realised forecasts,
-- with the skill of each model against the random walk with volatility (1 - score / baseline score) on the
-- forecasts both have scored.
WITH last_step AS (
    SELECT * FROM evaluations WHERE step = horizon AND timeframe = $timeframe
),
per_model AS (
    SELECT symbol, timeframe, model,
        count(*)                 AS n_forecasts,
        min(origin)              AS first_origin,
        max(origin)              AS last_origin,
        avg(abs_error)           AS mae,
        sqrt(avg(sq_error))      AS rmse,
        avg(ape)                 AS mape,
        avg(direction_hit)       AS direction_hit_rate,
        avg(crps)                AS crps,
        avg(pinball)             AS pinball,
        avg(covered_50)          AS coverage_50,
        avg(covered_80)          AS coverage_80,
        avg(covered_90)          AS coverage_90,
        avg(width_80)            AS width_80,
        avg(brier_up)            AS brier_up,
        avg(brier_vol_amp)       AS brier_vol_amp
    FROM last_step
    GROUP BY ALL
),
paired AS (
    SELECT m.symbol, m.timeframe, m.model,
        1 - avg(m.crps) / nullif(avg(b.crps), 0)         AS crps_skill_vs_rw_vol,
        1 - avg(m.abs_error) / nullif(avg(b.abs_error), 0) AS mae_skill_vs_rw_vol
    FROM last_step m
    JOIN last_step b USING (symbol, timeframe, origin)
    WHERE b.model = 'random_walk_vol'
    GROUP BY ALL
)
SELECT per_model.*, paired.crps_skill_vs_rw_vol, paired.mae_skill_vs_rw_vol
FROM per_model LEFT JOIN paired USING (symbol, timeframe, model)
ORDER BY symbol, timeframe, model
