-- Schema version 5: forecast_paths' open, high, low, volume and amount as FLOAT (close stays DOUBLE: every score,
-- quantile and P(up) reads it). The table is rebuilt beside the old one and renamed, all in this migration's
-- transaction: DuckLake changes a column's type only to a wider one, so ALTER ... TYPE FLOAT[] is not an option.
CREATE TABLE forecast_paths_v5 (
    symbol VARCHAR NOT NULL, timeframe VARCHAR NOT NULL, origin TIMESTAMPTZ NOT NULL, model VARCHAR NOT NULL,
    path    INTEGER NOT NULL,
    open    FLOAT[] NOT NULL, high FLOAT[] NOT NULL, low FLOAT[] NOT NULL, close DOUBLE[] NOT NULL,
    volume  FLOAT[] NOT NULL, amount FLOAT[] NOT NULL
);
INSERT INTO forecast_paths_v5
SELECT symbol, timeframe, origin, model, path, CAST(open AS FLOAT[]), CAST(high AS FLOAT[]), CAST(low AS FLOAT[]),
       close, CAST(volume AS FLOAT[]), CAST(amount AS FLOAT[])
FROM forecast_paths;
DROP TABLE forecast_paths;
ALTER TABLE forecast_paths_v5 RENAME TO forecast_paths;
