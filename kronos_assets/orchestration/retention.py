"""Retention of the Dagster instance: runs older than ``retention.run_days`` are pruned, in rounds bounded in time.

Dagster's ``instance.delete_run`` deletes a run's record and every event it logged, its materialisations
included, so a pruned partition would look missing in the UI, in backfills ("materialize missing") and to
anything that reads partition status. And on SQLite it leaves the run's own event-log file behind (rows deleted,
file kept). So a pruning here does what delete_run does, in Dagster's own tables, except that it keeps the
asset-level events that carry today's status:

* the newest materialisation (and observation) of each asset partition, when the pruned run holds it;
* the newest execution of each asset check, and its evaluation event, when the pruned run holds it.

Everything else the run logged goes: the run record and tags, its step logs (the run's SQLite file), its other
events in the cross-run index (older materialisations, planned events, run status events, their tags), its
older check executions and its captured compute logs. Kept events keep their storage ids, timestamps, metadata and
data-version tags, so partition status, "last materialised", freshness and staleness read exactly as before; the
UI names their run id, which no longer opens a run.

Crash safety (kill -9 anywhere in a round): per run, the run record goes first, then one index transaction, then
the run's file. A kill between the steps leaves a run file without a run record; every round starts by finishing
those (the same index transaction, idempotent, then the file), so a plain re-run heals. Nothing kept is ever
deleted first and rewritten later: what stays is never touched.

The instance's ``retention`` settings in dagster.yaml cover only schedule and sensor ticks (the daemon purges
those); local_instance writes them from the same ``run_days``.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import dagster as dg
import sqlalchemy as db
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    AssetEventTagsTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

DEFAULT_RUN_DAYS = 14
RUN_ROUND_S = 20.0  # `kronos-assets run` prunes after its work, for at most this long
JOB_ROUND_S = 480.0  # the daily job: a first round after a year of unpruned history takes several rounds
_BATCH = 50
_ID_BATCH = 500  # run ids per "which of these have a record" query
_RUN_FILE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.db$")
_KEPT_TYPES = (dg.DagsterEventType.ASSET_MATERIALIZATION.value, dg.DagsterEventType.ASSET_OBSERVATION.value)
# dagster/backfill on a run: a run of a backfill still going is left to the backfill daemon
_BACKFILL_TAG = "dagster/backfill"
_BACKFILL_GOING = (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING)
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


@dataclass
class PruneOutcome:
    runs: int = 0  # run records pruned this round
    kept_events: int = 0  # asset events kept because they carry a partition's (or a check's) status
    deleted_events: int = 0  # index rows deleted
    orphans: int = 0  # run files left by an interrupted round, finished now
    left: int = 0  # runs past retention still stored (the round's deadline came first)
    seconds: float = 0.0
    cutoff: datetime | None = None
    skipped: list[str] = field(default_factory=list)  # runs of a backfill still in progress

    def summary(self) -> str:
        text = (
            f"{self.runs} run(s) older than {self.cutoff:%Y-%m-%d %H:%M} UTC pruned in {self.seconds:.1f} s, "
            f"{self.kept_events} asset event(s) kept for partition and check status"
        )
        if self.orphans:
            text += f", {self.orphans} interrupted pruning(s) finished"
        if self.left:
            text += f"; {self.left} left for the next round"
        return text


def _shard_dir(instance: dg.DagsterInstance) -> Path | None:
    storage = instance.event_log_storage
    return Path(storage._base_dir) if isinstance(storage, SqliteEventLogStorage) else None  # noqa: SLF001


def _latest_checks_of_run(conn: db.engine.Connection, run_id: str) -> tuple[list[int], list[int]]:
    """(execution row ids to keep, evaluation event ids to keep): the run's executions that are the newest of
    their check (per partition), and the events they were evaluated by."""
    t = AssetCheckExecutionsTable.c
    rows = conn.execute(
        db.select(t.id, t.asset_key, t.check_name, t.partition, t.evaluation_event_storage_id).where(t.run_id == run_id)
    ).fetchall()
    keep_rows, keep_events = [], []
    for row_id, asset_key, check_name, partition, event_id in rows:
        same = (
            (t.asset_key == asset_key)
            & (t.check_name == check_name)
            & (t.partition.is_(None) if partition is None else t.partition == partition)
        )
        if conn.execute(db.select(t.id).where(same & (t.id > row_id)).limit(1)).first() is None:
            keep_rows.append(row_id)
            if event_id is not None:
                keep_events.append(event_id)
    return keep_rows, keep_events


def _latest_asset_events_of_run(conn: db.engine.Connection, run_id: str) -> list[int]:
    """Index ids of the run's materialisations and observations that are the newest of their asset partition."""
    t = SqlEventLogStorageTable.c
    rows = conn.execute(
        db.select(db.func.max(t.id), t.asset_key, t.partition, t.dagster_event_type)
        .where((t.run_id == run_id) & t.dagster_event_type.in_(_KEPT_TYPES))
        .group_by(t.asset_key, t.partition, t.dagster_event_type)
    ).fetchall()
    keep = []
    for event_id, asset_key, partition, event_type in rows:
        same = (
            (t.asset_key == asset_key)
            & (t.dagster_event_type == event_type)
            & (t.partition.is_(None) if partition is None else t.partition == partition)
        )
        if conn.execute(db.select(t.id).where(same & (t.id > event_id)).limit(1)).first() is None:
            keep.append(event_id)
    return keep


def _prune_index(instance: dg.DagsterInstance, run_id: str, outcome: PruneOutcome) -> None:
    """One transaction: the run's index rows go except those carrying a partition's or a check's status."""
    storage = instance.event_log_storage
    t = SqlEventLogStorageTable.c
    with storage.index_connection() as conn:  # a transaction: all of it or nothing
        keep = _latest_asset_events_of_run(conn, run_id)
        keep_rows, keep_check_events = _latest_checks_of_run(conn, run_id)
        keep += keep_check_events
        doomed = [r[0] for r in conn.execute(db.select(t.id).where((t.run_id == run_id) & t.id.not_in(keep)))]
        for i in range(0, len(doomed), 500):
            chunk = doomed[i : i + 500]
            conn.execute(AssetEventTagsTable.delete().where(AssetEventTagsTable.c.event_id.in_(chunk)))
            conn.execute(SqlEventLogStorageTable.delete().where(t.id.in_(chunk)))
        c = AssetCheckExecutionsTable.c
        conn.execute(AssetCheckExecutionsTable.delete().where((c.run_id == run_id) & c.id.not_in(keep_rows)))
    outcome.kept_events += len(keep)
    outcome.deleted_events += len(doomed)


def _remove_run_files(instance: dg.DagsterInstance, run_id: str) -> None:
    """The run's own SQLite event log (step logs) and its captured stdout/stderr."""
    shards = _shard_dir(instance)
    if shards is not None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(shards / f"{run_id}.db{suffix}")
            except FileNotFoundError:
                pass
    try:
        instance.compute_log_manager.delete_logs(prefix=[run_id])
    except NotImplementedError:  # a manager that keeps no local files (or cannot delete): nothing of ours
        pass


def _prune_run(instance: dg.DagsterInstance, run_id: str, outcome: PruneOutcome) -> None:
    instance.run_storage.delete_run(run_id)  # first: from here on the run file marks an unfinished pruning
    _prune_index(instance, run_id, outcome)
    _remove_run_files(instance, run_id)  # last
    outcome.runs += 1


def _finish_interrupted(instance: dg.DagsterInstance, outcome: PruneOutcome, deadline: float) -> None:
    """Run files without a run record: a pruning killed after deleting the record. A run's record is always
    written before its first event, so a file without one is never a run being started."""
    shards = _shard_dir(instance)
    if shards is None or not shards.is_dir():
        return
    files = sorted(entry[:-3] for entry in os.listdir(shards) if _RUN_FILE.match(entry))
    # Which files have a record, asked in batches (one query each, under SQLite's 999 bound variables): asked
    # per file, this round cost a query per run kept, every tick (1.1 s at 390 runs, growing to retention's size).
    recorded: set[str] = set()
    for i in range(0, len(files), _ID_BATCH):
        batch = files[i : i + _ID_BATCH]
        recorded.update(instance.get_run_ids(dg.RunsFilter(run_ids=batch), limit=len(batch)))
    for run_id in files:
        if time.monotonic() > deadline:
            return
        if run_id in recorded:
            continue
        _prune_index(instance, run_id, outcome)
        _remove_run_files(instance, run_id)
        outcome.orphans += 1


def _backfill_running(instance: dg.DagsterInstance, backfill_id: str, cache: dict[str, bool]) -> bool:
    if backfill_id not in cache:
        backfill = instance.get_backfill(backfill_id)
        cache[backfill_id] = backfill is not None and backfill.status in _BACKFILL_GOING
    return cache[backfill_id]


def prune_instance(
    instance: dg.DagsterInstance,
    run_days: int = DEFAULT_RUN_DAYS,
    deadline_s: float = RUN_ROUND_S,
    now: datetime | None = None,
    log: Callable[[str], None] | None = None,
) -> PruneOutcome:
    """One round: finishes interrupted prunings, then prunes finished runs created before ``now - run_days``,
    oldest first, until none is left or ``deadline_s`` has passed (the run in hand is finished first)."""
    t0 = time.monotonic()
    deadline = t0 + deadline_s
    now = now or datetime.now(timezone.utc)
    outcome = PruneOutcome(cutoff=now - timedelta(days=run_days))
    _finish_interrupted(instance, outcome, deadline)
    old = dg.RunsFilter(statuses=FINISHED, created_before=outcome.cutoff)
    backfills: dict[str, bool] = {}
    cursor: str | None = None  # the newest run skipped so far (pruned runs are gone, so never a cursor)
    while time.monotonic() < deadline:
        records = instance.get_run_records(filters=old, limit=_BATCH, ascending=True, cursor=cursor)
        if not records:
            break
        for record in records:
            run = record.dagster_run
            if time.monotonic() > deadline:
                break
            backfill = run.tags.get(_BACKFILL_TAG)
            if backfill and _backfill_running(instance, backfill, backfills):
                outcome.skipped.append(run.run_id)
                cursor = run.run_id
                continue
            _prune_run(instance, run.run_id, outcome)
    if time.monotonic() > deadline:
        outcome.left = max(0, instance.get_runs_count(filters=old) - len(outcome.skipped))
    outcome.seconds = time.monotonic() - t0
    if log is not None and (outcome.runs or outcome.orphans or outcome.left):
        log(f"retention: {outcome.summary()}")
    return outcome
