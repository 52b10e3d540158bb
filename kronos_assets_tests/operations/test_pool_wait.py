"""A run waiting for a pool slot sleeps between looks, and a stop request ends the wait within seconds.

Dagster's in-process executor polls a refused slot in a loop that never sleeps (it measured ~50 % of a core and
ignored SIGTERM until its 300 s wait limit); ``bounded_pool_waits`` sleeps between looks and ends the wait at a
SIGTERM/SIGINT or a termination of the run, leaving the run FAILURE or CANCELED and its slots free.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from kronos_assets.cli.main_job import MainJobFailed, run_main_job
from kronos_assets_tests.operations.test_recovery import RUN_LIMIT_S, HeldSlot, _cli, _env, held_slot  # noqa: F401

POOL = "duckdb_write"
NOW = datetime(2026, 11, 20, 10, 5, tzinfo=timezone.utc)  # the clock of the subprocess runs (test_recovery.NOW)
WINDOW_S = 6.0  # how long the waiting run is watched
STOP_LIMIT_S = 30.0  # the promise is 10 s; the margin is for a machine at load 15 on 2 cores


def _runnable_s(pid: int) -> tuple[float, float]:
    """Seconds on a CPU, and seconds on a CPU or waiting for one, of every thread of ``pid`` (schedstat): a process
    that never sleeps is runnable all the time however busy the machine, one that sleeps is not."""
    on_cpu = queued = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        on_cpu, queued = on_cpu + int(fields[0]), queued + int(fields[1])
    return on_cpu / 1e9, (on_cpu + queued) / 1e9


def _waiting_run(held: HeldSlot, alive=lambda: True) -> str:
    """The id of the run that queues for the held slot, once it does."""
    deadline = time.monotonic() + RUN_LIMIT_S
    while True:
        pending = held.instance.event_log_storage.get_concurrency_info(POOL).pending_steps
        waiting = {p.run_id for p in pending} - {held.holder}
        if waiting:
            return waiting.pop()
        assert alive(), "the run ended before it queued for the slot"
        assert time.monotonic() < deadline, f"no run queued for the '{POOL}' slot within {RUN_LIMIT_S} s"
        time.sleep(0.2)


def _assert_ended_and_freed(held: HeldSlot, run_id: str, statuses: set[dg.DagsterRunStatus]) -> None:
    instance = held.instance
    assert instance.get_run_by_id(run_id).status in statuses
    started = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    assert [r.run_id for r in started] == [held.holder]  # only the (live) holder
    info = instance.event_log_storage.get_concurrency_info(POOL)
    assert run_id not in {p.run_id for p in info.pending_steps} | {s.run_id for s in info.claimed_slots}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_waiting_run_sleeps_and_a_signal_ends_it(held_slot, sig):
    proc = subprocess.Popen(
        [*_cli(held_slot.root), "--pool-wait-s", "600"],
        env=_env(held_slot.root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        waiter = _waiting_run(held_slot, alive=lambda: proc.poll() is None)
        time.sleep(1.0)  # past the first looks
        cpu0, runnable0 = _runnable_s(proc.pid)
        t0 = time.monotonic()
        time.sleep(WINDOW_S)
        cpu1, runnable1 = _runnable_s(proc.pid)
        wall = time.monotonic() - t0
        cpu_share, runnable_share = (cpu1 - cpu0) / wall, (runnable1 - runnable0) / wall
        print(f"waiting run: {cpu_share:.1%} of a core, runnable {runnable_share:.1%} of the time")
        assert cpu_share < 0.2 and runnable_share < 0.5, (cpu_share, runnable_share)  # was ~50 % and ~100 %

        proc.send_signal(sig)
        t1 = time.monotonic()
        out, _ = proc.communicate(timeout=STOP_LIMIT_S)
        took = time.monotonic() - t1
        print(f"{sig.name}: exited {took:.1f} s later with {proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0 and took < STOP_LIMIT_S
    assert f"stopped waiting for a '{POOL}' pool slot" in out.strip().splitlines()[-1], out[-3000:]
    _assert_ended_and_freed(held_slot, waiter, {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED})


@pytest.mark.slow
def test_terminating_a_waiting_run_ends_it_canceled(held_slot):
    """What the UI's Terminate does to a run that waits: it marks the run CANCELING and asks its process to stop."""
    outcome: dict[str, BaseException | None] = {}

    def main_job() -> None:
        try:
            run_main_job(
                held_slot.settings,
                backfill_bars=2,
                now=NOW,
                instance=held_slot.instance,
                log=lambda _m: None,
                pool_wait_s=600,
            )
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=main_job, daemon=True)
    thread.start()
    waiter = _waiting_run(held_slot, alive=thread.is_alive)
    held_slot.instance.report_run_canceling(held_slot.instance.get_run_by_id(waiter))
    t0 = time.monotonic()
    thread.join(STOP_LIMIT_S)
    took = time.monotonic() - t0
    print(f"termination request: the wait ended {took:.1f} s later")
    assert not thread.is_alive(), f"the run still waited {STOP_LIMIT_S} s after its termination was requested"
    assert isinstance(outcome["error"], MainJobFailed), outcome
    _assert_ended_and_freed(held_slot, waiter, {dg.DagsterRunStatus.CANCELED})


IGNORING_SIGINT = r"""
import signal, sys
import dagster as dg
from kronos_assets.orchestration.runs import sigterm_kept

@dg.op
def one() -> int:
    return 1

@dg.job
def job() -> None:
    one()

signal.signal(signal.SIGTERM, signal.SIG_DFL)  # whatever this test's process had
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `cmd &` from a script starts it
for _ in range(2):
    if sys.argv[1] == "kept":
        with sigterm_kept():
            job.execute_in_process()
    else:
        job.execute_in_process()
print("ignored" if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN else "handled", flush=True)
"""


@pytest.mark.parametrize("kept", [True, False], ids=["kept", "dagster_alone"])
def test_a_process_started_with_sigint_ignored_still_stops_on_sigterm_after_its_runs(kept):
    """Dagster sets SIGTERM to SIGINT's handler around a run: with SIGINT ignored, SIGTERM was left ignored after
    the first run, so `kronos-assets run` started in the background could no longer be stopped, and the compute
    logs' `tail` children (stopped with SIGTERM) each cost 30 s and stayed behind."""
    out = subprocess.run(
        [sys.executable, "-c", IGNORING_SIGINT, "kept" if kept else "plain"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == ("handled" if kept else "ignored")
