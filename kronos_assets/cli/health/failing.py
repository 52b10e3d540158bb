"""health's ``failing`` rows, read from the Dagster instance: failed runs not repaired since, asset checks whose
latest evaluation failed, runs in flight (dead or stuck) and the pool slots they hold, and the daemon."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg

from kronos_assets.base import environment
from kronos_assets.cli.health.rows import FAIL, OK, WARN, Row, fmt_age, fmt_time, listing, short
from kronos_assets.configuration.settings import ConfigError, Settings
from kronos_assets.orchestration.failures import run_cause
from kronos_assets.orchestration.runs import LIVE_STATUSES, is_local, run_label, run_process

STUCK_AFTER = timedelta(hours=2)  # no run of this project takes that long; a backfill of years might
FIX = "`kronos-assets run` fails it and frees its slots when it starts (so does the daemon's monitoring)"


def _state(instance: dg.DagsterInstance, run: dg.DagsterRun, local: bool) -> tuple[str, str]:
    """(status, description) of an in-flight run: FAIL when its process is gone, else OK with its process."""
    proc = run_process(instance, run, local)
    if proc is None:
        return OK, "process unknown"
    if not proc.alive():
        return FAIL, f"its process ({proc}) is gone"
    return OK, f"{proc} alive"


def in_flight_runs(instance: dg.DagsterInstance, now: datetime) -> Row:
    local = is_local(instance)
    dead, stuck, fine = [], [], []
    for rec in instance.get_run_records(filters=dg.RunsFilter(statuses=LIVE_STATUSES)):
        run = rec.dagster_run
        status, how = _state(instance, run, local)
        since = datetime.fromtimestamp(rec.start_time or rec.create_timestamp.timestamp(), timezone.utc)
        label = f"{run_label(run)} run {run.run_id[:8]} {run.status.value} since {fmt_age(now - since)}, {how}"
        if status == FAIL:
            dead.append(label)
        elif now - since > STUCK_AFTER:
            stuck.append(label)
        else:
            fine.append(label)
    if dead:
        return Row("failing", "runs in flight", FAIL, f"{len(dead)} dead: " + listing(dead) + f"; {FIX}")
    if stuck:
        return Row(
            "failing", "runs in flight", WARN, f"{len(stuck)} running longer than {STUCK_AFTER}: " + listing(stuck)
        )
    return Row("failing", "runs in flight", OK, f"{len(fine)} running: " + listing(fine) if fine else "none")


def pool_slots(instance: dg.DagsterInstance) -> Row:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return Row("failing", "pool slots", OK, "this instance has no pools")
    local = is_local(instance)
    infos = storage.get_concurrency_infos(list(storage.get_concurrency_keys()))
    bad, held = [], []
    for pool, info in sorted(infos.items()):
        for slot in info.claimed_slots:
            run = instance.get_run_by_id(slot.run_id)
            if run is None or run.is_finished:
                what = run.status.value if run else "deleted"
                bad.append(f"{pool} held by run {slot.run_id[:8]} which has ended ({what})")
                continue
            status, how = _state(instance, run, local)
            text = f"{pool} held by {run_label(run)} run {run.run_id[:8]} (step {slot.step_key}, {how})"
            (bad if status == FAIL else held).append(text)
    limits = ", ".join(f"{p}: {i.slot_count}" for p, i in sorted(infos.items())) or "none claimed yet"
    if bad:
        return Row(
            "failing", "pool slots", FAIL, f"{len(bad)} held by dead or ended runs: " + listing(bad) + f"; {FIX}"
        )
    if held:
        return Row("failing", "pool slots", OK, f"{len(held)} held: " + listing(held) + f" (limits {limits})")
    return Row("failing", "pool slots", OK, f"all free (limits {limits})")


def _run_partitions(tags: dict[str, str]) -> dict[str, str]:
    keys = ("dagster/partition", "dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
    return {k: tags[k] for k in keys if k in tags}


def failed_runs(instance: Any, now: datetime, since_hours: float) -> Row:
    since = now - timedelta(hours=since_hours)
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], created_after=since), limit=50
    )
    if not records:
        return Row("failing", f"runs (last {since_hours:g} h)", OK, "no failed run")
    open_, repaired = [], []
    for rec in records:
        run = rec.dagster_run
        later = instance.get_run_records(
            filters=dg.RunsFilter(
                job_name=run.job_name,
                statuses=[dg.DagsterRunStatus.SUCCESS],
                tags=_run_partitions(run.tags),
                created_after=rec.create_timestamp,
            ),
            limit=1,
        )
        label = f"{run_label(run)} run {run.run_id[:8]} at {fmt_time(rec.create_timestamp)}"
        if later:
            repaired.append(f"{label} (repaired by {later[0].dagster_run.run_id[:8]})")
        else:
            open_.append(f"{label}: {run_cause(instance, run.run_id)}")
    if open_:
        detail = f"{len(open_)} failed: " + listing(open_)
        if repaired:
            detail += f"; {len(repaired)} more failed then succeeded on a re-run"
        return Row("failing", f"runs (last {since_hours:g} h)", FAIL, detail)
    return Row(
        "failing",
        f"runs (last {since_hours:g} h)",
        WARN,
        f"{len(repaired)} failed, each succeeded on a later run: " + listing(repaired),
    )


def _check_keys(settings: Settings) -> list[Any]:
    """Every asset check the code location defines (from the definitions, built as the location builds them)."""
    from kronos_assets.defs.factory import build_definitions
    from kronos_assets.defs.resources import build_resources

    try:
        resources = build_resources(settings)
    except ConfigError:  # the publish target is misconfigured (reported above): the checks are the same
        resources = build_resources(replace(settings, publish_backend="local"))
    defs = build_definitions(settings, resources)
    return sorted(defs.resolve_asset_graph().asset_check_keys, key=lambda k: k.to_user_string())


def failed_checks(settings: Settings, instance: Any) -> Row:
    keys = _check_keys(settings)
    latest = {k: rec for k in keys if (rec := instance.get_latest_asset_check_evaluation_record(k)) is not None}
    errors, warns, passed, stopped, running = [], [], 0, [], 0
    for key, rec in latest.items():
        name = key.to_user_string()
        # While a check is only planned its record holds an AssetCheckEvaluationPlanned, which has no verdict.
        ev = rec.evaluation if isinstance(rec.evaluation, dg.AssetCheckEvaluation) else None
        when = fmt_time(datetime.fromtimestamp(rec.create_timestamp, timezone.utc))
        label = f"{name} (run {rec.run_id[:8]}, {when})"
        if ev is not None and ev.passed:
            passed += 1
        elif ev is not None:
            (warns if ev.severity == dg.AssetCheckSeverity.WARN else errors).append(label)
        else:  # planned: in progress, or its run stopped (killed, crashed) before the check ran
            run = instance.get_run_by_id(rec.run_id)
            if run is None or run.is_finished:
                stopped.append(label)
            else:
                running += 1
    never = len(keys) - len(latest)
    summary = f"{len(keys)} checks: {passed} passed at their latest evaluation"
    if never:
        summary += f", {never} never evaluated"
    if running:
        summary += f", {running} planned by a run in progress"
    if stopped:
        summary += (
            f", {len(stopped)} planned but not yet evaluated (their run ended before them: failed, "
            f"killed or crashed; the next run evaluates them): " + listing(stopped)
        )
    if errors:
        return Row(
            "failing",
            "asset checks",
            FAIL,
            f"{len(errors)} failed (ERROR): "
            + listing(errors)
            + (f"; {len(warns)} warned" if warns else "")
            + f"; {summary}",
        )
    if warns:
        return Row(
            "failing", "asset checks", WARN, f"{len(warns)} failed (WARN severity): " + listing(warns) + f"; {summary}"
        )
    if stopped:
        return Row("failing", "asset checks", WARN, summary)
    return Row("failing", "asset checks", OK, summary)


def daemon_row(instance: Any, now: datetime) -> Row | None:
    """With $DAGSTER_HOME (a deployment), whether a daemon runs the schedules, sensors and run queue."""
    if not environment.dagster_home():
        return None
    try:
        beats = instance.get_daemon_heartbeats()
    except Exception as exc:
        return Row("failing", "dagster daemon", WARN, f"no heartbeat readable: {short(exc)}")
    if not beats:
        return Row(
            "failing",
            "dagster daemon",
            WARN,
            "no heartbeat ever: schedules, sensors and queued runs need `dagster-daemon run`",
        )
    newest = max(b.timestamp for b in beats.values())
    age = now - datetime.fromtimestamp(newest, timezone.utc)
    if age > timedelta(minutes=5):
        return Row("failing", "dagster daemon", WARN, f"last heartbeat {fmt_age(age)}: is `dagster-daemon run` up?")
    errors = [f"{t}: {short(b.errors[0].message, 80)}" for t, b in beats.items() if getattr(b, "errors", None)]
    if errors:
        return Row("failing", "dagster daemon", WARN, "heartbeat ok, errors: " + listing(errors))
    return Row("failing", "dagster daemon", OK, f"{len(beats)} daemons, last heartbeat {fmt_age(age)}")
