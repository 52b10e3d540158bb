-- Per series, model and UTC month of the forecast origin, at the horizon's last step: the PIT histogram's counts
-- (kind 'pit', ten equal bins), the reliability bins of P(up) (kind 'p_up': count, sum of P(up), closes above the
-- last close; only forecasts still stored, as reliability.sql joins them) and, per metric the registry aggregates
-- by confidence, its bands (0: P(up) > 0.6, 1: < 0.4, 2: the rest) with the calls made and the hits among them.
-- Filled into score_bins by kronos_assets/warehouse/score_sums.py (the /* ... */ slots); summed over months by
-- the track record.
WITH e AS (
    SELECT e.*, f.last_close, CAST(date_trunc('month', timezone('UTC', e.origin)) AS DATE) AS month
    FROM evaluations e LEFT JOIN forecasts f USING (symbol, timeframe, origin, model)
    WHERE e.step = e.horizon AND /* where */
)
SELECT symbol, timeframe, model, month, 'pit' AS kind, least(CAST(floor(pit * 10) AS INTEGER), 9) AS bin,
    count(*) AS n, NULL AS point_n, NULL AS p_sum, NULL AS up_n, NULL AS calls, NULL AS hits
FROM e GROUP BY ALL
UNION ALL
SELECT symbol, timeframe, model, month, 'p_up' AS kind, least(CAST(floor(p_up * 10) AS INTEGER), 9) AS bin,
    count(*), NULL, sum(p_up), count(*) FILTER (WHERE realised > last_close), NULL, NULL
FROM e WHERE last_close IS NOT NULL GROUP BY ALL
/* registry: by confidence */
