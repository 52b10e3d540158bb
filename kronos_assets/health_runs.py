"""health rows about runs in flight: dead or stuck runs and the pool slots they hold."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from kronos_assets.health_rows import FAIL, OK, WARN, Row, fmt_age, listing
from kronos_assets.runs import LIVE_STATUSES, is_local, run_label, run_process

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
        return Row("failing", "runs in flight", WARN, f"{len(stuck)} running longer than {STUCK_AFTER}: "
                   + listing(stuck))
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
        return Row("failing", "pool slots", FAIL, f"{len(bad)} held by dead or ended runs: " + listing(bad)
                   + f"; {FIX}")
    if held:
        return Row("failing", "pool slots", OK, f"{len(held)} held: " + listing(held) + f" (limits {limits})")
    return Row("failing", "pool slots", OK, f"all free (limits {limits})")
