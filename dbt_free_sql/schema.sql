-- Warehouse tables. Every table is written one partition at a time by deleting the partition's rows and
-- inserting the new ones in a single transaction (kronos_assets/warehouse/core.py). The same DDL serves both back
-- ends: the embedded DuckDB file and DuckLake, which accepts NOT NULL but no PRIMARY KEY, UNIQUE or index, so
-- none is declared: a partition's rows are unique because its writer replaces them whole (and merges raw candles
-- by key), which the assets' checks verify (raw_candles' no_duplicate_bars).
-- This file is what a new warehouse gets (the newest schema version). Older warehouses reach it through the
-- numbered migrations (kronos_assets/warehouse/migrations.py, dbt_free_sql/migrations/), recorded in
-- schema_migrations: change a table here and add a migration there, in the same commit.

-- Candles as the source served them, one row per closed bar. Partition: (symbol, timeframe, UTC day of ts).
CREATE TABLE IF NOT EXISTS raw_candles (
    symbol      VARCHAR NOT NULL,
    timeframe   VARCHAR NOT NULL,
    ts          TIMESTAMPTZ NOT NULL,   -- bar open time
    open        DOUBLE NOT NULL,
    high        DOUBLE NOT NULL,
    low         DOUBLE NOT NULL,
    close       DOUBLE NOT NULL,
    volume      DOUBLE NOT NULL,
    amount      DOUBLE,                 -- quote volume; NULL when the source does not give it
    exchange    VARCHAR NOT NULL        -- who served the bar (the fetch time is on the materialisation)
);

-- Validated candles with features (clean_candles.sql). Partition: (symbol, timeframe, UTC day of ts).
CREATE TABLE IF NOT EXISTS clean_candles (
    symbol        VARCHAR NOT NULL,
    timeframe     VARCHAR NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,
    open          DOUBLE NOT NULL,
    high          DOUBLE NOT NULL,
    low           DOUBLE NOT NULL,
    close         DOUBLE NOT NULL,
    volume        DOUBLE NOT NULL,
    amount        DOUBLE NOT NULL,        -- filled as volume x typical price where the source gave none
    exchange      VARCHAR NOT NULL,
    log_return    DOUBLE,                 -- log(close / previous close); NULL after a gap or at the start
    log_range     DOUBLE NOT NULL,        -- log(high / low)
    realised_vol  DOUBLE,                 -- sample std of the last 24 log returns
    volume_z      DOUBLE,                 -- z-score of log volume over the last 24 bars
    bars_missing_before INTEGER NOT NULL  -- bars absent between the previous bar and this one
);

-- One row per forecast: summary and provenance. Partition: (symbol, timeframe, origin).
CREATE TABLE IF NOT EXISTS forecasts (
    symbol        VARCHAR NOT NULL,
    timeframe     VARCHAR NOT NULL,
    origin        TIMESTAMPTZ NOT NULL,   -- close time of the last bar the forecast saw
    model         VARCHAR NOT NULL,
    n_paths       INTEGER NOT NULL,
    horizon       INTEGER NOT NULL,
    last_close    DOUBLE NOT NULL,
    p_up          DOUBLE NOT NULL,
    p_vol_amp     DOUBLE NOT NULL,
    recent_vol    DOUBLE NOT NULL,
    data_start    TIMESTAMPTZ NOT NULL,   -- open time of the first bar seen
    data_end      TIMESTAMPTZ NOT NULL,   -- open time of the last bar seen
    exchange      VARCHAR NOT NULL,
    seed          BIGINT NOT NULL,
    sampling      VARCHAR NOT NULL,       -- JSON
    provenance    VARCHAR NOT NULL        -- JSON: model repo, revision, checkpoint sha256, ...
);

-- Quantiles, mean and median per horizon step.
CREATE TABLE IF NOT EXISTS forecast_steps (
    symbol VARCHAR NOT NULL, timeframe VARCHAR NOT NULL, origin TIMESTAMPTZ NOT NULL, model VARCHAR NOT NULL,
    step          INTEGER NOT NULL,       -- 1..horizon
    ts            TIMESTAMPTZ NOT NULL,   -- open time of the forecast bar
    q05 DOUBLE NOT NULL, q10 DOUBLE NOT NULL, q25 DOUBLE NOT NULL, q50 DOUBLE NOT NULL,
    q75 DOUBLE NOT NULL, q90 DOUBLE NOT NULL, q95 DOUBLE NOT NULL,
    mean_close DOUBLE NOT NULL, median_close DOUBLE NOT NULL,
    mean_volume DOUBLE, median_volume DOUBLE  -- NULL: the model does not forecast volume (GARCH: close only)
);
-- (migration 2 relaxes the NOT NULL of older files' volume summaries.)

-- Every sample path in full (the probabilistic scores need them): one row per path, arrays over steps. close is
-- what every score, quantile, P(up) and `verify` is computed from: DOUBLE, exactly as the model drew it. The other
-- fields are FLOAT (7 significant digits; schema version 5): half the bytes, read by no score. Paths of scored
-- forecasts older than the profile's retention.paths_days are pruned (kronos_assets/warehouse/paths_retention.py).
CREATE TABLE IF NOT EXISTS forecast_paths (
    symbol VARCHAR NOT NULL, timeframe VARCHAR NOT NULL, origin TIMESTAMPTZ NOT NULL, model VARCHAR NOT NULL,
    path    INTEGER NOT NULL,
    open    FLOAT[] NOT NULL, high FLOAT[] NOT NULL, low FLOAT[] NOT NULL, close DOUBLE[] NOT NULL,
    volume  FLOAT[] NOT NULL, amount FLOAT[] NOT NULL
);

-- Scores of realised forecasts, per horizon step. Partition: (symbol, timeframe, scoring bar) where the scoring
-- bar is the last bar of the forecast's horizon: a forecast is scored once that bar has closed.
-- One column per registered metric (kronos_assets/metrics/registry.py, in its order): those of the first schema
-- here; each one registered later (winkler_80 and p_up_hit since version 4) is added after this file by
-- kronos_assets/warehouse/metric_columns.py, nullable, as its migration adds it to an older warehouse.
CREATE TABLE IF NOT EXISTS evaluations (
    symbol VARCHAR NOT NULL, timeframe VARCHAR NOT NULL, origin TIMESTAMPTZ NOT NULL, model VARCHAR NOT NULL,
    step          INTEGER NOT NULL,
    horizon       INTEGER NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,   -- open time of the realised bar
    scored_bar    TIMESTAMPTZ NOT NULL,   -- open time of the forecast's last horizon bar
    median        DOUBLE NOT NULL,
    realised      DOUBLE NOT NULL,
    abs_error     DOUBLE NOT NULL,
    sq_error      DOUBLE NOT NULL,
    ape           DOUBLE NOT NULL,
    direction_hit DOUBLE NOT NULL,
    crps          DOUBLE NOT NULL,
    pinball       DOUBLE NOT NULL,
    covered_50 DOUBLE NOT NULL, covered_80 DOUBLE NOT NULL, covered_90 DOUBLE NOT NULL,
    width_50 DOUBLE NOT NULL, width_80 DOUBLE NOT NULL, width_90 DOUBLE NOT NULL,
    pit           DOUBLE NOT NULL,
    p_up          DOUBLE NOT NULL,
    brier_up      DOUBLE NOT NULL,
    brier_vol_amp DOUBLE                  -- at the last step only
);
