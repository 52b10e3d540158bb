"""Operations: forecast sanity checks, freshness policies, and the run-failure alert sensor."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import numpy as np

from kronos_assets.alerts import post_webhook, record_alert
from kronos_assets.defs.forecast import forecasts_key
from kronos_assets.market.timeframes import timeframe_delta
from kronos_assets.records import Q_COLS
from kronos_assets.settings import Settings, TimeframeSettings
from kronos_assets.warehouse import Warehouse

SANITY_ORIGINS = 48  # the newest forecasts each sanity check reads


def build_forecast_checks(settings: Settings, tf: TimeframeSettings) -> list[dg.AssetChecksDefinition]:
    key = forecasts_key(tf.name)
    n_paths = settings.sampling.n_paths

    @dg.asset_check(asset=key, name="forecasts_sane", blocking=True,
                    description=(f"The newest {SANITY_ORIGINS} origins: every path finite and positive in price, "
                                 f"{n_paths} paths of {tf.horizon} steps per model, quantiles ordered, probabilities "
                                 "in [0, 1]. Blocking: a failed check stops publishing in the same run."))
    def forecasts_sane(warehouse: dg.ResourceParam[Warehouse]) -> dg.AssetCheckResult:
        heads = warehouse.query(
            "SELECT symbol, origin, model, n_paths, horizon, p_up, p_vol_amp FROM forecasts WHERE timeframe = ? "
            "AND origin >= (SELECT max(origin) FROM forecasts WHERE timeframe = ?) - to_seconds(?::BIGINT)",
            [tf.name, tf.name, SANITY_ORIGINS * int(timeframe_delta(tf.name).total_seconds())],
        )
        problems: list[str] = []
        bad = heads.filter((heads["n_paths"] != n_paths) | (heads["horizon"] != tf.horizon))
        problems += [f"{r['symbol']} {r['origin']} {r['model']}: {r['n_paths']} paths x {r['horizon']} steps"
                     for r in bad.head(5).iter_rows(named=True)]
        bad = heads.filter(~heads["p_up"].is_between(0, 1) | ~heads["p_vol_amp"].is_between(0, 1))
        problems += [f"{r['symbol']} {r['origin']} {r['model']}: probability out of [0, 1]"
                     for r in bad.head(5).iter_rows(named=True)]
        if heads.height:
            steps = warehouse.query(
                f"SELECT symbol, origin, model, step, {', '.join(Q_COLS)} FROM forecast_steps WHERE timeframe = ? "
                "AND origin >= ?", [tf.name, heads["origin"].min()])
            q = steps.select(Q_COLS).to_numpy()
            disordered = ~(np.diff(q, axis=1) >= 0).all(axis=1) | ~np.isfinite(q).all(axis=1)
            problems += [f"quantiles not ordered or not finite at {r['symbol']} {r['origin']} step {r['step']}"
                         for r in steps.filter(disordered).head(5).iter_rows(named=True)]
            nonfinite = warehouse.query(
                "SELECT count(*) AS n FROM forecast_paths WHERE timeframe = ? AND origin >= ? AND ("
                "list_bool_or(list_transform(close, x -> NOT isfinite(x) OR x <= 0)) OR "
                "list_bool_or(list_transform(volume, x -> NOT isfinite(x))))",
                [tf.name, heads["origin"].min()])["n"][0]
            if nonfinite:
                problems.append(f"{nonfinite} paths with non-finite or non-positive values")
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={"forecasts_checked": heads.height, "problems": dg.MetadataValue.json(problems[:20])},
        )

    return [forecasts_sane]


def freshness_policy(tf: TimeframeSettings) -> dg.FreshnessPolicy:
    """Warn when the newest materialisation is two bars old, fail at three (plus the schedule's few minutes)."""
    bar = timeframe_delta(tf.name)
    return dg.FreshnessPolicy.time_window(fail_window=3 * bar + timedelta(minutes=15),
                                          warn_window=2 * bar + timedelta(minutes=15))


def _step_error(event: dg.DagsterEvent) -> str:
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return f"{event.step_key}: {data.user_failure_data.description}"
    return f"{event.step_key}: {data.error.message.strip() if data.error else 'failed'}"


def build_failure_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="alert_on_run_failure",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(f"Records every failed run in {settings.home / 'alerts.jsonl'} and posts it as JSON to the "
                     "webhook in KRONOS_ALERT_WEBHOOK when set."),
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        alert = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run_id": run.run_id,
            "job": run.job_name,
            "partition": run.tags.get("dagster/partition")
            or f"{run.tags.get('dagster/asset_partition_range_start', '')}..{run.tags.get('dagster/asset_partition_range_end', '')}",
            "error": context.failure_event.message,
            "step_errors": [_step_error(ev) for ev in context.get_step_failure_events()],
            "summary": f"kronos_assets: run of {run.job_name} failed ({run.run_id[:8]})",
        }
        path = record_alert(settings.home, alert)
        outcome = post_webhook(alert)
        context.log.info(f"alert for run {run.run_id} recorded in {path}; {outcome}")

    return alert_on_run_failure
