"""Operations: forecast sanity checks, freshness policies, run-failure alerts, recovery of dead runs and the
daily retention round of the Dagster instance."""

import dagster as dg
import numpy as np

from kronos_assets.base import environment
from kronos_assets.configuration.settings import Settings, TimeframeSettings
from kronos_assets.defs.forecast import forecasts_key
from kronos_assets.evaluation.records import Q_COLS
from kronos_assets.market.rules import freshness_windows
from kronos_assets.orchestration.alerts import ALERTS_FILE, deliver_pending, pending_alerts, record_alert
from kronos_assets.orchestration.failures import failure_alert
from kronos_assets.orchestration.retention import JOB_ROUND_S, prune_instance
from kronos_assets.orchestration.runs import reap_dead_runs
from kronos_assets.warehouse import Warehouse

SANITY_ORIGINS = 48  # the newest forecasts each sanity check reads


def build_forecast_checks(settings: Settings, tf: TimeframeSettings) -> list[dg.AssetChecksDefinition]:
    key = forecasts_key(tf.name)
    n_paths = settings.sampling.n_paths

    @dg.asset_check(
        asset=key,
        name="forecasts_sane",
        blocking=True,
        description=(
            f"The newest {SANITY_ORIGINS} origins: every path finite and positive in price, "
            f"{n_paths} paths of {tf.horizon} steps per model, quantiles ordered, probabilities "
            "in [0, 1]. Blocking: a failed check stops publishing in the same run."
        ),
    )
    def forecasts_sane(warehouse: dg.ResourceParam[Warehouse]) -> dg.AssetCheckResult:
        heads = warehouse.query(
            "SELECT symbol, origin, model, n_paths, horizon, p_up, p_vol_amp FROM forecasts WHERE timeframe = ? "
            "AND origin >= (SELECT max(origin) FROM forecasts WHERE timeframe = ?) - to_seconds(?::BIGINT)",
            [tf.name, tf.name, SANITY_ORIGINS * int(tf.bar.delta.total_seconds())],
        )
        problems: list[str] = []
        bad = heads.filter((heads["n_paths"] != n_paths) | (heads["horizon"] != tf.horizon))
        problems += [
            f"{r['symbol']} {r['origin']} {r['model']}: {r['n_paths']} paths x {r['horizon']} steps"
            for r in bad.head(5).iter_rows(named=True)
        ]
        bad = heads.filter(~heads["p_up"].is_between(0, 1) | ~heads["p_vol_amp"].is_between(0, 1))
        problems += [
            f"{r['symbol']} {r['origin']} {r['model']}: probability out of [0, 1]"
            for r in bad.head(5).iter_rows(named=True)
        ]
        if heads.height:
            steps = warehouse.query(
                f"SELECT symbol, origin, model, step, {', '.join(Q_COLS)} FROM forecast_steps WHERE timeframe = ? "
                "AND origin >= ?",
                [tf.name, heads["origin"].min()],
            )
            q = steps.select(Q_COLS).to_numpy()
            disordered = ~(np.diff(q, axis=1) >= 0).all(axis=1) | ~np.isfinite(q).all(axis=1)
            problems += [
                f"quantiles not ordered or not finite at {r['symbol']} {r['origin']} step {r['step']}"
                for r in steps.filter(disordered).head(5).iter_rows(named=True)
            ]
            nonfinite = warehouse.query(
                "SELECT count(*) AS n FROM forecast_paths WHERE timeframe = ? AND origin >= ? AND ("
                "list_bool_or(list_transform(close, x -> NOT isfinite(x) OR x <= 0)) OR "
                # volume: finite, or NaN throughout where the model does not forecast it (GARCH: close only)
                "NOT (list_bool_and(list_transform(volume, x -> isfinite(x))) "
                "OR list_bool_and(list_transform(volume, x -> isnan(x)))))",
                [tf.name, heads["origin"].min()],
            )["n"][0]
            if nonfinite:
                problems.append(f"{nonfinite} paths with non-finite or non-positive values")
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={"forecasts_checked": heads.height, "problems": dg.MetadataValue.json(problems[:20])},
        )

    return [forecasts_sane]


def freshness_policy(tf: TimeframeSettings) -> dg.FreshnessPolicy:
    """The freshness rule of market.rules as Dagster's policy (warn past two bars, fail past three, plus slack)."""
    warn, fail = freshness_windows(tf.bar.delta)
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)


def build_failure_sensor(settings: Settings) -> dg.SensorDefinition:
    folder = settings.profile_home

    @dg.run_failure_sensor(
        name="alert_on_run_failure",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=environment.sensor_interval_s(30),  # Dagster's default interval
        # Every run of the instance, also those `kronos-assets run` executes in its own process: they have no
        # code-location origin, and the default (this location's runs only) would never see them.
        monitor_all_code_locations=True,
        description=(
            f"Records every failed run once (by run id) in {folder / ALERTS_FILE} with its cause in one "
            "line, and posts it as JSON to the webhook in KRONOS_ALERT_WEBHOOK when set (short deadline; "
            "a failed post is retried by deliver_alerts)."
        ),
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        new = record_alert(folder, failure_alert(context.instance, run, settings.profile))
        outcome = deliver_pending(folder)
        context.log.info(
            f"alert for run {run.run_id} {'recorded' if new else 'already recorded'} in "
            f"{folder / ALERTS_FILE}; {outcome}"
        )

    return alert_on_run_failure


def build_recovery_sensor(settings: Settings) -> dg.SensorDefinition:
    """With the daemon running, nobody has to start `kronos-assets run` for a dead run to be failed and its slots
    freed, nor for a webhook that was down to get its pending alerts."""
    folder = settings.profile_home

    @dg.sensor(
        name="recover_dead_runs_and_deliver_alerts",
        minimum_interval_seconds=environment.sensor_interval_s(60),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Fails runs whose process died (freeing their pool slots) and re-posts alerts whose webhook call failed."
        ),
    )
    def recover(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        reaped = reap_dead_runs(context.instance)
        for message in reaped.values():
            context.log.warning(message)
        for run_id in reaped:
            run = context.instance.get_run_by_id(run_id)
            if run is not None and run.status == dg.DagsterRunStatus.FAILURE:
                record_alert(folder, failure_alert(context.instance, run, settings.profile))
        outcome = deliver_pending(folder) if pending_alerts(folder) else "no alert pending"
        return dg.SkipReason(f"{len(reaped)} dead run(s) recovered; {outcome}")

    return recover


RETENTION_JOB = "prune_dagster_runs"
RETENTION_CRON = "17 4 * * *"  # daily, off the hour (the hourly runs start at minute 5)


def build_retention(settings: Settings) -> dg.Definitions:
    """A daily job pruning runs older than the profile's retention.run_days, partition and check status kept
    (kronos_assets/orchestration/retention.py); `kronos-assets run` does a shorter round after each tick as well."""
    days = settings.retention_run_days

    @dg.op(
        name="prune_old_runs",
        description=(
            f"Deletes finished runs older than {days} days (record, step logs, compute logs) and keeps the newest "
            f"materialisation of every asset partition and the newest evaluation of every check; at most "
            f"{JOB_ROUND_S:.0f} s a round, the rest left for the next."
        ),
    )
    def prune_op(context: dg.OpExecutionContext) -> dg.Output[int]:
        outcome = prune_instance(context.instance, days, JOB_ROUND_S, log=context.log.info)
        return dg.Output(
            outcome.runs,
            metadata={
                "runs_pruned": outcome.runs,
                "events_kept": outcome.kept_events,
                "interrupted_finished": outcome.orphans,
                "left": outcome.left,
                "seconds": round(outcome.seconds, 1),
            },
        )

    @dg.job(name=RETENTION_JOB, description=f"Prune Dagster runs older than {days} days (partition status kept).")
    def prune_job() -> None:
        prune_op()

    schedule = dg.ScheduleDefinition(
        name=f"{RETENTION_JOB}_schedule",
        job=prune_job,
        cron_schedule=RETENTION_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(jobs=[prune_job], schedules=[schedule])
