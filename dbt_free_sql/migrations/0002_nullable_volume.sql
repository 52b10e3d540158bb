-- Schema version 2 (release 58da6cc): models that forecast close only (GARCH) store NULL volume summaries.
ALTER TABLE forecast_steps ALTER COLUMN mean_volume DROP NOT NULL;
ALTER TABLE forecast_steps ALTER COLUMN median_volume DROP NOT NULL;
