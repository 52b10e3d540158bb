"""Evaluate: score each forecast against the market once the last bar of its horizon has closed.

The evaluation partition of bar k scores the forecasts whose last horizon bar is k (made at origin
k - (horizon - 1) bars, i.e. the forecast partition k - horizon bars). So an evaluation partition only exists
once its horizon has closed, and it reads realised candles no later than k.
"""

import dagster as dg

from kronos_assets.configuration.settings import Settings, TimeframeSettings
from kronos_assets.defs.automation import bar_chain_condition
from kronos_assets.defs.forecast import candles_mapping, forecasts_key
from kronos_assets.defs.ingest import clean_candles_key
from kronos_assets.defs.metadata import md_table
from kronos_assets.defs.names import TRACK_RECORD_INPUTS, track_record_key
from kronos_assets.defs.partitions import BAR_FMT, MARKETS, Family, bar_partitions, times_by_symbol
from kronos_assets.evaluation.scoring import HorizonNotClosed, Scored, require_closed, score_bars
from kronos_assets.evaluation.track_record import HEADLINE_COLUMNS, crps_standing, track_record
from kronos_assets.orchestration.incremental import scores_digest, scores_to_make
from kronos_assets.warehouse import WRITE_POOL, Warehouse


def evaluations_key(tf: str, family: Family = MARKETS) -> dg.AssetKey:
    return family.asset_key("evaluations", tf)


def build_evaluations(settings: Settings, tf: TimeframeSettings, family: Family = MARKETS) -> dg.AssetsDefinition:
    step = tf.bar.delta
    h = tf.horizon
    forecast_mapping = dg.MultiPartitionMapping(
        {
            "symbol": dg.DimensionPartitionMapping("symbol", dg.IdentityPartitionMapping()),
            "bar": dg.DimensionPartitionMapping(
                "bar",
                dg.TimeWindowPartitionMapping(
                    start_offset=-h, end_offset=-h, allow_nonexistent_upstream_partitions=True
                ),
            ),
        }
    )

    @dg.asset(
        key=evaluations_key(tf.name, family),
        partitions_def=bar_partitions(settings, tf, family),
        deps=[
            dg.AssetDep(forecasts_key(tf.name, family), partition_mapping=forecast_mapping),
            dg.AssetDep(clean_candles_key(tf.name, family), partition_mapping=candles_mapping(-(h - 1))),
        ],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=168),
        automation_condition=bar_chain_condition(settings, family),
        group_name="evaluate",
        kinds={"duckdb"},
        pool=WRITE_POOL,
        owners=["team:ml"],
        description=(
            f"Scores of every {tf.horizon}-bar {tf.name} forecast (each model and baseline) against the realised "
            "candles, per horizon step: errors of the median, direction, CRPS, pinball, 50/80/90 % coverage and "
            "width, PIT, Brier of P(up) and of P(volatility amplification). Partition k scores the forecasts whose "
            "last horizon bar is k."
        ),
    )
    def evaluations(context: dg.AssetExecutionContext, warehouse: dg.ResourceParam[Warehouse]) -> dg.MaterializeResult:
        scored = Scored()
        already = 0
        for symbol, bars in times_by_symbol(context.partition_keys, "bar", BAR_FMT, family).items():
            try:
                require_closed(warehouse, symbol, tf.name, bars[-1])
                # Only forecasts not scored yet (a forecast made again had its scores deleted with it), bars
                # grouped by the models they need; a bar with no forecast has nothing to score.
                todo = scores_to_make(warehouse, symbol, tf.name, step, h, bars)
                already += len(bars) - len(todo)
                groups: dict[tuple[str, ...], list] = {}
                for bar, models in todo.items():
                    groups.setdefault(tuple(models), []).append(bar)
                for models, group in groups.items():
                    score_bars(warehouse, symbol, tf.name, step, h, group, scored, models=list(models))
            except HorizonNotClosed as exc:
                raise dg.Failure(description=str(exc)) from None
        if scored.missing:
            context.log.warning(
                f"{len(scored.missing)} origins had no stored forecast to score, e.g. {scored.missing[0]}"
            )
        return dg.MaterializeResult(
            metadata={
                "forecasts_scored": scored.forecasts,  # by this run
                "bars_already_scored_or_without_forecast": already,
                "origins_without_forecast": len(scored.missing),
            }
        )

    return evaluations


NOT_WORSE_CHECK = "primary_model_not_worse_than_baseline_30d"


def build_track_record(settings: Settings, tf: TimeframeSettings) -> dg.AssetsDefinition:
    """The track record asset; its check (the primary model not worse than the baseline) is computed in the same
    step from the record the asset computed, never by computing the whole record a second time."""
    key = track_record_key(tf.name)
    check = dg.AssetCheckSpec(
        name=NOT_WORSE_CHECK,
        asset=key,
        description=(
            f"Warns when {settings.primary_model}'s 30-day CRPS is significantly worse than the random walk "
            "with volatility's (Diebold-Mariano at 5 %) for any symbol; a difference within noise, or too "
            "few independent horizons to tell, passes."
        ),
    )

    @dg.asset(
        key=key,
        deps=[evaluations_key(tf.name)],
        automation_condition=dg.AutomationCondition.eager(),
        group_name="evaluate",
        kinds={"duckdb", "sql"},
        owners=["team:ml"],
        check_specs=[check],
        description=(
            f"The {tf.name} track record: scoreboards per symbol, model and horizon step over rolling 7/30/90-day "
            "windows and all time, skill against the random walk with volatility, verdicts in words (CRPS vs the "
            "random walk with volatility, point error vs the last price, P(up) vs a coin flip, each with a "
            "Diebold-Mariano test over the last 30 days), the "
            "reliability of P(up) and the PIT histogram. Computed from running aggregates the evaluations step keeps "
            "per day and month (score_sums, score_months, score_bins: the same numbers as scoreboard.sql, "
            "reliability.sql and pit_histogram.sql over every score) and the 30 days of losses loss_pairs.sql "
            "reads, so it costs the same with a year of history as with a day."
        ),
    )
    def track_record_asset(warehouse: dg.ResourceParam[Warehouse]) -> dg.MaterializeResult:
        evaluations_digest = scores_digest(warehouse, tf.name)  # before the reads: a later write changes it
        record = track_record(warehouse, tf.name)
        horizon_all = [r for r in record["scoreboard"] if r["window_name"] == "all" and r["step"] == r["horizon"]]
        skills = {
            f"crps_skill_30d/{r['symbol']}/{r['model']}": r["crps_skill_vs_rw_vol"]
            for r in record["scoreboard"]
            if r["window_name"] == "30d" and r["step"] == r["horizon"] and r["crps_skill_vs_rw_vol"] is not None
        }
        standing = crps_standing(record["verdicts"], settings.primary_model)
        worse = [symbol for symbol, word in standing.items() if word == "worse"]
        verdict = dg.AssetCheckResult(
            check_name=NOT_WORSE_CHECK,
            passed=not worse,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "crps_verdict_30d": dg.MetadataValue.json(standing),
                "significantly_worse": ", ".join(worse) or "none",
            },
        )
        return dg.MaterializeResult(
            check_results=[verdict],
            metadata={
                # what the record was computed from: the main job computes it again only when this changes
                TRACK_RECORD_INPUTS: evaluations_digest,
                "as_of": record["as_of"] or "no scored forecast yet",
                "scoreboard_all_time": dg.MetadataValue.md(md_table(horizon_all, list(HEADLINE_COLUMNS))),
                "verdicts": dg.MetadataValue.md(
                    "\n\n".join(f"**{v['symbol']} {v['model']}**: {v['sentence']}" for v in record["verdicts"])
                    or "none yet"
                ),
                "diebold_mariano": dg.MetadataValue.md(
                    md_table(
                        record["dm_tests"],
                        [
                            "symbol",
                            "model",
                            "window_name",
                            "n",
                            "measure",
                            "reference",
                            "n_independent",
                            "statistic",
                            "p_value",
                            "verdict",
                        ],
                    )
                ),
                "reliability_p_up": dg.MetadataValue.md(
                    md_table(
                        record["reliability"],
                        ["symbol", "model", "lower", "upper", "n", "mean_forecast", "observed_frequency"],
                    )
                ),
                "pit_histogram": dg.MetadataValue.md(
                    md_table(record["pit_histogram"], ["symbol", "model", "bin", "n"])
                ),
                # Numbers plot over materialisations in the UI: the skill's history at a glance.
                **{k: dg.MetadataValue.float(float(v)) for k, v in skills.items()},
            },
        )

    return track_record_asset
