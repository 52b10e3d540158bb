"""Runs that outlive their process: find them, fail them, free their pool slots; and bounded waits for a slot.

A run whose process was killed (``kill -9``, out of memory, a full disk under Dagster's own SQLite) stays
STARTED in the instance and keeps the ``duckdb_write`` / ``publish`` pool slots its steps claimed, so every
later run would wait for them forever. ``kronos-assets run`` tags its runs with the process that executes them
(host, pid and the pid's start time, so a recycled pid is not mistaken for the run); daemon-launched runs
record their pid in Dagster's "Started process for run (pid: N)" event. ``reap_dead_runs`` fails the runs
whose process is gone from this host and frees their slots; ``bounded_pool_waits`` turns an endless wait for a
slot into a failure naming the run that holds it, sleeps between looks, and ends the wait at a stop request.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import dagster as dg

from kronos_assets.base import environment

HOST_TAG, PID_TAG, PID_START_TAG = "kronos/host", "kronos/pid", "kronos/pid_start"
POOL_WAIT_TAG = "kronos/pool_wait_s"
DEFAULT_POOL_WAIT_S = 300.0
REAP_EVERY_S = 20.0  # how often a step waiting for a slot looks for dead holders
LOOK_EVERY_S = (0.5, 2.0)  # a refused slot is looked at again after 0.5 s, doubling up to 2 s: a stop takes <= 2 s
STOPPING = (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)
LIVE_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
_STARTED_PROCESS = re.compile(r"Started process for run \(pid: (\d+)\)")


class PoolWaitTimeout(RuntimeError):
    """A step waited longer than allowed for a pool slot; the message names the run holding it."""


class PoolWaitStopped(dg.DagsterExecutionInterruptedError):
    """A stop request (SIGTERM/SIGINT, a termination of the run) ended a wait for a pool slot. Dagster ends an
    interrupted run FAILURE, or CANCELED when its termination was requested, and frees its pending claims."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "stopped"


def _take_captured_interrupt() -> bool:
    """Whether Dagster caught a SIGINT/SIGTERM that it holds back until a step can be interrupted (a wait for a
    slot is not inside a step, so Dagster alone acts on it only once the wait ends). Taken: the caller raises for
    it, so Dagster's teardown does not raise it again over the caller's message."""
    try:
        from dagster._utils.interrupts import pop_captured_interrupt
    except ImportError:  # moved in a later Dagster: the run's status still ends the wait
        return False
    return pop_captured_interrupt()


def stop_requested(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """Why the run waiting for a slot should stop (a signal, a termination of the run), or None."""
    if _take_captured_interrupt():
        return "the process was asked to stop (SIGTERM/SIGINT)"
    run = instance.get_run_by_id(run_id)
    if run is not None and run.status in STOPPING:
        return f"its termination was requested (run {run.status.value})"
    return None


@contextmanager
def sigterm_kept() -> Iterator[None]:
    """Puts SIGTERM's handler back as it was before an in-process run. Dagster sets SIGTERM to SIGINT's handler
    when it swaps handlers around a run, and again when it swaps them back; in a process started with SIGINT
    ignored (``cmd &`` from a script, cron wrappers) SIGTERM is then left ignored after the first run: the process
    no longer stops on SIGTERM, and every child it starts inherits the 'ignore' (the compute logs' ``tail``, which
    Dagster stops with SIGTERM, then waits 30 s for and leaves running). Signal handlers belong to the main thread:
    elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if before is not None and signal.getsignal(signal.SIGTERM) != before:
            signal.signal(signal.SIGTERM, before)


def _pid_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat); None when absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields after the command name, which may hold spaces


def process_tags() -> dict[str, str]:
    """Run tags naming this process, so a later run can tell whether it is still alive."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_START_TAG: _pid_start(pid) or ""}


@dataclass(frozen=True)
class RunProcess:
    host: str | None  # None: unknown, assumed this host (a local instance only)
    pid: int
    start: str | None

    def alive(self) -> bool:
        if self.host not in (None, socket.gethostname()):
            return True  # another machine's process: not ours to judge
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by someone else
        if self.start and Path("/proc").is_dir():
            return _pid_start(self.pid) == self.start  # a recycled pid is another process
        return True

    def __str__(self) -> str:
        return f"pid {self.pid}" + (f" on {self.host}" if self.host else "")


def run_process(instance: dg.DagsterInstance, run: dg.DagsterRun, local: bool) -> RunProcess | None:
    """The process executing ``run``: from our tags, else (on a local instance) Dagster's launch event."""
    tags = run.tags
    if tags.get(PID_TAG, "").isdigit():
        return RunProcess(tags.get(HOST_TAG), int(tags[PID_TAG]), tags.get(PID_START_TAG) or None)
    if not local:
        return None
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        found = _STARTED_PROCESS.search(entry.message or "")
        if found:
            return RunProcess(None, int(found.group(1)), None)
    return None


def is_local(instance: dg.DagsterInstance) -> bool:
    """SQLite storage: every run of this instance ran on this machine."""
    return type(instance.run_storage).__name__.startswith("Sqlite")


def run_label(run: dg.DagsterRun) -> str:
    tags = run.tags
    if "dagster/partition" in tags:
        return f"{run.job_name} [{tags['dagster/partition']}]"
    if "dagster/asset_partition_range_start" in tags:
        return (
            f"{run.job_name} [{tags['dagster/asset_partition_range_start']}.."
            f"{tags.get('dagster/asset_partition_range_end')}]"
        )
    return run.job_name


@dataclass(frozen=True)
class StaleRun:
    run: dg.DagsterRun
    process: RunProcess

    @property
    def message(self) -> str:
        return (
            f"run {self.run.run_id} of {run_label(self.run)} was {self.run.status.value} but its process "
            f"({self.process}) is gone (killed or crashed): marked failed and its pool slots freed"
        )


def dead_runs(instance: dg.DagsterInstance) -> list[StaleRun]:
    """Runs still STARTING/STARTED/CANCELING whose process no longer exists on this host."""
    local = is_local(instance)
    found = []
    for rec in instance.get_run_records(filters=dg.RunsFilter(statuses=LIVE_STATUSES)):
        proc = run_process(instance, rec.dagster_run, local)
        if proc is not None and not proc.alive():
            found.append(StaleRun(rec.dagster_run, proc))
    return found


def held_slots(instance: dg.DagsterInstance) -> dict[str, list[tuple[str, str]]]:
    """Pool -> [(run id, step key)] of the slots claimed now."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    pools = storage.get_concurrency_keys()
    return {
        pool: [(s.run_id, s.step_key) for s in info.claimed_slots]
        for pool, info in storage.get_concurrency_infos(list(pools)).items()
        if info.claimed_slots
    }


def reap_dead_runs(instance: dg.DagsterInstance) -> dict[str, str]:
    """Fails the runs whose process died and frees every slot held by a run that is no longer in flight.
    Returns run id -> what was done, for each run handled (empty when nothing was stale)."""
    messages: dict[str, str] = {}
    storage = instance.event_log_storage
    for stale in dead_runs(instance):
        instance.report_run_failed(stale.run, stale.message)
        if storage.supports_global_concurrency_limits:
            storage.free_concurrency_slots_for_run(stale.run.run_id)
        messages[stale.run.run_id] = stale.message
    if not storage.supports_global_concurrency_limits:
        return messages
    for run_id in storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
            if run is not None and run_id not in messages:
                messages[run_id] = (
                    f"run {run_id} of {run_label(run)} had ended ({run.status.value}) still holding pool slots: freed"
                )
    return messages


def describe_holders(instance: dg.DagsterInstance, pool: str) -> str:
    holders = instance.event_log_storage.get_concurrency_info(pool).claimed_slots
    if not holders:
        return "no run holds it now"
    parts = []
    for slot in holders:
        run = instance.get_run_by_id(slot.run_id)
        what = f"{run_label(run)}, {run.status.value}" if run else "unknown run"
        parts.append(f"run {slot.run_id} ({what}, step {slot.step_key})")
    return "held by " + "; ".join(parts)


@contextmanager
def bounded_pool_waits(
    instance: dg.DagsterInstance, limit_s: float, on_reap: Callable[[str], Any] = lambda _m: None
) -> Iterator[None]:
    """While inside, a step of a run in this process that waits longer than ``limit_s`` for a pool slot fails
    the run with ``PoolWaitTimeout`` naming the holder. Dagster polls ``claim_concurrency_slot`` (every 1 to
    15 s) and has no limit of its own, so the check wraps that call. A holder whose process died is reaped (within
    REAP_EVERY_S) instead of waited for.

    Between those calls Dagster's in-process loop never sleeps (it busy-spins a core) and holds a SIGTERM/SIGINT
    back until the wait ends. So a refused claim sleeps here (LOOK_EVERY_S, backing off), asks Dagster to look
    again at once (sleep_interval 0), and raises ``PoolWaitStopped`` when a stop was requested."""
    storage = instance.event_log_storage
    original = storage.claim_concurrency_slot
    refused_since: dict[tuple[str, str], float] = {}
    next_sleep: dict[tuple[str, str], float] = {}
    last_reap = [0.0]

    def reap() -> bool:
        """Reaps dead holders at most every REAP_EVERY_S; a failure to reap never fails the waiting run."""
        if time.monotonic() - last_reap[0] < REAP_EVERY_S:
            return False
        last_reap[0] = time.monotonic()
        try:
            reaped = reap_dead_runs(instance)
        except Exception as exc:  # e.g. a busy database: the next look, or the deadline, decides
            on_reap(f"could not check for dead runs holding pool slots: {type(exc).__name__}: {exc}")
            return False
        for message in reaped.values():
            on_reap(message)
        return bool(reaped)

    def claim(concurrency_key: str, run_id: str, step_key: str, priority: int | None = None) -> Any:
        status = original(concurrency_key, run_id, step_key, priority)
        if not status.is_claimed and reap():
            status = original(concurrency_key, run_id, step_key, priority)
        key = (run_id, step_key)
        if status.is_claimed:
            refused_since.pop(key, None)
            next_sleep.pop(key, None)
            return status
        since = refused_since.setdefault(key, time.monotonic())
        waited = time.monotonic() - since
        if waited > limit_s:
            raise PoolWaitTimeout(
                f"step {step_key} waited {waited:.0f} s (limit {limit_s:g} s) for a "
                f"'{concurrency_key}' pool slot, {describe_holders(instance, concurrency_key)}"
            )
        pause = next_sleep.get(key, LOOK_EVERY_S[0])
        next_sleep[key] = min(2 * pause, LOOK_EVERY_S[1])
        time.sleep(max(0.0, min(pause, since + limit_s - time.monotonic())) + 0.01)
        why = stop_requested(instance, run_id)
        if why is not None:
            raise PoolWaitStopped(
                f"step {step_key} stopped waiting for a '{concurrency_key}' pool slot after "
                f"{time.monotonic() - since:.0f} s: {why}"
            )
        return status.with_sleep_interval(0.0)  # we slept: Dagster may look again at once

    previous = vars(storage).get("claim_concurrency_slot")  # an enclosing bounded_pool_waits, if any
    storage.claim_concurrency_slot = claim  # an instance attribute: shadows the method for this object only
    try:
        yield
    finally:
        if previous is None:
            del storage.claim_concurrency_slot
        else:
            storage.claim_concurrency_slot = previous


def pool_wait_limit(tags: dict[str, str] | Any) -> float:
    """The run's ``kronos/pool_wait_s`` tag, else $KRONOS_POOL_WAIT_S, else 300 s."""
    raw = tags.get(POOL_WAIT_TAG) or environment.pool_wait_s() or DEFAULT_POOL_WAIT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"pool wait limit {raw!r} (tag {POOL_WAIT_TAG} or KRONOS_POOL_WAIT_S) is not a number"
        ) from None
    if not value > 0:
        raise ValueError(f"pool wait limit must be more than 0 s, got {raw!r}")
    return value


class _BoundedPoolsExecutor(dg.Executor):
    """The in-process executor, with every wait for a pool slot bounded (``bounded_pool_waits``)."""

    def __init__(self, inner: dg.Executor):
        self._inner = inner

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        limit = pool_wait_limit(plan_context.dagster_run.tags)
        with bounded_pool_waits(plan_context.instance, limit, on_reap=plan_context.log.warning):
            yield from self._inner.execute(plan_context, execution_plan)


@dg.executor(name="in_process", config_schema=dg.in_process_executor.config_schema)
def in_process_bounded_pools(init_context: Any) -> dg.Executor:
    """What the code location's runs execute with when the daemon or the UI launches them (``execute_in_process``,
    and so ``kronos-assets run``, substitutes its own executor and is bounded by ``run_main_job``)."""
    return _BoundedPoolsExecutor(dg.in_process_executor.executor_creation_fn(init_context))
