"""Fault injection: ``kill -9`` of ``kronos-assets run`` at each stage, a run holding a pool slot, a dead holder.

After a kill the next plain run must finish (bounded) with no manual step and leave the same warehouse rows and
published files as a run that was never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import dagster as dg
import duckdb
import pytest

from kronos_assets.cli.main_job import MainJobFailed, run_main_job
from kronos_assets.configuration.settings import Settings, load_settings
from kronos_assets.orchestration.alerts import recorded_alerts
from kronos_assets.orchestration.local_instance import instance_for
from kronos_assets.orchestration.runs import HOST_TAG, PID_START_TAG, PID_TAG, _pid_start, reap_dead_runs
from kronos_assets_tests.helpers import write_configs

NOW = "2026-11-20T10:05"  # a fixed clock: every run computes the same bars
RUN_LIMIT_S = 240  # one small main-job run takes 15-45 s on a busy 2-core machine
ENV_PREFIXES = ("KRONOS_", "R2_", "DAGSTER_HOME")


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
    env.update(KRONOS_CONFIG_DIR=str(root / "configs"), KRONOS_HOME=str(root / "home"), KRONOS_PROFILE="demo")
    return env


def _config(root: Path) -> Path:
    write_configs(root, profile={"symbols": ["BTC/USDT"]})
    return root


def _settings(root: Path) -> Settings:
    return load_settings("demo", config_dir=root / "configs", home=root / "home")


def _cli(root: Path) -> list[str]:
    return [sys.executable, "-m", "kronos_assets.cli.main", "run", "--backfill-bars", "3", "--now", NOW]


def _run(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(root), env=_env(root), capture_output=True, text=True, timeout=RUN_LIMIT_S)


def snapshot(home: Path) -> tuple[dict, dict]:
    """Every warehouse table's rows (sorted) and every published file's sha256."""
    con = duckdb.connect(str(home / "demo" / "warehouse.duckdb"), read_only=True)
    try:
        # schema_migrations records when each migration ran: the one column two runs' warehouses may differ in
        tables = {
            t: sorted(
                map(
                    repr,
                    con.execute(
                        f"SELECT * {'EXCLUDE (applied_at)' if t == 'schema_migrations' else ''} FROM {t}"
                    ).fetchall(),
                )
            )
            for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    finally:
        con.close()
    publish = home / "demo" / "publish"
    files = {
        str(p.relative_to(publish)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in publish.rglob("*")
        if p.is_file()
    }
    return tables, files


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    root = _config(tmp_path_factory.mktemp("uninterrupted"))
    done = _run(root)
    assert done.returncode == 0, done.stdout + done.stderr
    return snapshot(root / "home")


def _kill_at(root: Path, step: str, delay_s: float) -> None:
    """Starts the main job and kill -9s it once the Dagster log shows ``step`` starting (plus ``delay_s``)."""
    log = root / "home" / "demo" / "logs" / "dagster.log"
    proc = subprocess.Popen(_cli(root), env=_env(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + RUN_LIMIT_S
    try:
        while f"- {step} - STEP_START" not in (log.read_text() if log.exists() else ""):
            assert proc.poll() is None, f"the run ended before {step} started"
            assert time.monotonic() < deadline, f"{step} never started"
            time.sleep(0.05)
        time.sleep(delay_s)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("step, delay_s", [("1h__raw_candles", 0.3), ("1h__forecasts", 0.5), ("1h__published", 0.2)])
def test_kill_9_at_each_stage_then_a_plain_rerun_finishes_with_the_same_data(tmp_path, uninterrupted, step, delay_s):
    root = _config(tmp_path)
    _kill_at(root, step, delay_s)
    settings = _settings(root)
    instance = instance_for(settings)
    stuck = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    instance.dispose()
    assert len(stuck) == 1, "the killed run should be left STARTED, as Dagster leaves it"

    t0 = time.monotonic()
    rerun = _run(root)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert time.monotonic() - t0 < RUN_LIMIT_S
    assert f"recovered: run {stuck[0].run_id}" in rerun.stdout and "is gone (killed or crashed)" in rerun.stdout

    instance = instance_for(settings)
    try:
        killed = instance.get_run_by_id(stuck[0].run_id)
        assert killed.status == dg.DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_run_ids() or all(
            instance.get_run_by_id(r).status == dg.DagsterRunStatus.SUCCESS
            for r in instance.event_log_storage.get_concurrency_run_ids()
        )
    finally:
        instance.dispose()
    alerts = recorded_alerts(root / "home" / "demo")
    assert [a["run_id"] for a in alerts] == [stuck[0].run_id] and "is gone" in alerts[0]["cause"]
    assert not list((root / "home" / "demo" / "publish").rglob(".tmp-*"))
    assert snapshot(root / "home") == uninterrupted


def _holder(instance: dg.DagsterInstance, pid: int, pool: str = "duckdb_write") -> str:
    """A STARTED run of process ``pid`` holding a slot of ``pool``, as a run in another process would."""
    run_id = str(uuid.uuid4())
    instance.add_run(
        dg.DagsterRun(
            job_name="candles_1h",
            run_id=run_id,
            status=dg.DagsterRunStatus.STARTED,
            tags={HOST_TAG: os.uname().nodename, PID_TAG: str(pid), PID_START_TAG: _pid_start(pid) or ""},
        )
    )
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(pool)
    assert storage.claim_concurrency_slot(pool, run_id, "1h__raw_candles").is_claimed
    return run_id


@dataclass(frozen=True)
class HeldSlot:
    root: Path
    settings: Settings
    instance: dg.DagsterInstance
    sleeper: subprocess.Popen  # the live process of the holder run
    holder: str


@pytest.fixture
def held_slot(tmp_path: Path) -> Iterator[HeldSlot]:
    """The duckdb_write slot held by a STARTED run of a live process (a ``sleep``)."""
    root = _config(tmp_path)
    settings = _settings(root)
    sleeper = subprocess.Popen(["sleep", "300"])
    instance = instance_for(settings)
    try:
        yield HeldSlot(root, settings, instance, sleeper, _holder(instance, sleeper.pid))
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        sleeper.wait()
        instance.dispose()


def test_a_wait_for_a_pool_slot_is_bounded_and_names_the_holder(held_slot):
    settings, instance, sleeper, holder = held_slot.settings, held_slot.instance, held_slot.sleeper, held_slot.holder
    t0 = time.monotonic()
    with pytest.raises(MainJobFailed) as err:
        run_main_job(settings, backfill_bars=2, instance=instance, log=lambda _m: None, pool_wait_s=3)
    assert time.monotonic() - t0 < 60
    assert holder in str(err.value) and "'duckdb_write' pool slot" in str(err.value)
    assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.STARTED  # alive: left alone

    # The holder dies: the next run fails it, frees its slot and goes through.
    os.kill(sleeper.pid, signal.SIGKILL)
    sleeper.wait()
    messages = []
    run_main_job(settings, backfill_bars=2, instance=instance, log=messages.append, pool_wait_s=3)
    assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.FAILURE
    assert any(holder in m and f"pid {sleeper.pid}" in m for m in messages), messages


def test_reaper_fails_dead_runs_frees_their_slots_and_spares_live_ones(tmp_path):
    root = _config(tmp_path)
    settings = _settings(root)
    dead_proc = subprocess.Popen(["true"])
    dead_proc.wait()
    instance = instance_for(settings)
    try:
        live = _holder(instance, os.getpid(), pool="publish")
        dead = _holder(instance, dead_proc.pid)
        reaped = reap_dead_runs(instance)
        assert list(reaped) == [dead] and f"pid {dead_proc.pid}" in reaped[dead]
        assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live).status == dg.DagsterRunStatus.STARTED
        assert instance.event_log_storage.get_concurrency_run_ids() == {live}
        assert reap_dead_runs(instance) == {}  # nothing left to do: idempotent
    finally:
        instance.dispose()


@pytest.fixture
def small_dagster_disk(tmp_path: Path):
    """The profile's Dagster storage on a 16 MB tmpfs (root only: mount)."""
    root = _config(tmp_path)
    storage = root / "home" / "demo" / "dagster"
    storage.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(storage)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    yield root, storage
    subprocess.run(["umount", "-l", str(storage)], check=False)


@pytest.mark.slow
def test_a_full_disk_under_dagster_storage_ends_the_run_with_the_cause_and_the_next_run_recovers(small_dagster_disk):
    root, storage = small_dagster_disk
    log = root / "home" / "demo" / "logs" / "dagster.log"
    proc = subprocess.Popen(_cli(root), env=_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + RUN_LIMIT_S
    while "- 1h__forecasts - STEP_START" not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None and time.monotonic() < deadline, "forecasting never started"
        time.sleep(0.05)
    filler = storage / "filler"
    with filler.open("wb") as fh:  # fill the disk: Dagster's next SQLite write fails
        try:
            while True:
                fh.write(b"\0" * (1 << 20))
        except OSError:
            pass
    out, err = proc.communicate(timeout=RUN_LIMIT_S)
    assert proc.returncode == 1, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("main job failed: OperationalError") and "is full" in last and str(storage) in last, last

    filler.unlink()  # space again: a plain re-run fails the interrupted run and finishes
    rerun = _run(root)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "recovered: run" in rerun.stdout and "is gone (killed or crashed)" in rerun.stdout
    settings = _settings(root)
    instance = instance_for(settings)
    try:
        assert not instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        assert len(instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))) == 1
    finally:
        instance.dispose()


def test_stray_publish_temporaries_are_removed_only_when_nobody_publishes(tmp_path):
    from kronos_assets.cli.main_job import recover
    from kronos_assets.publishing.store import LocalStore

    root = _config(tmp_path)
    settings = _settings(root)
    store = LocalStore(settings.publish_dir)
    stray = settings.publish_dir / "series" / "BTC-USDT" / "1h" / ".tmp-k3j2"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"half a file")
    kept = settings.publish_dir / "index.html"
    kept.write_text("published")
    instance = instance_for(settings)
    try:
        publisher = _holder(instance, os.getpid(), pool="publish")  # a live run is publishing: hands off
        recover(settings, instance, store, log=lambda _m: None)
        assert stray.exists()
        instance.event_log_storage.free_concurrency_slots_for_run(publisher)
        messages: list[str] = []
        recover(settings, instance, store, log=messages.append)
        assert not stray.exists() and kept.read_text() == "published"
        assert any("removed 1 unfinished temporary file" in m for m in messages), messages
    finally:
        instance.dispose()


@pytest.mark.slow
def test_a_run_launched_outside_kronos_assets_run_also_bounds_its_wait_for_a_slot(held_slot):
    """`dagster job execute` runs with the job's own executor, as daemon-launched runs do."""
    from kronos_assets.defs.partitions import day_key
    from kronos_assets.orchestration.failures import run_cause
    from kronos_assets.orchestration.runs import POOL_WAIT_TAG
    from kronos_assets_tests.operations.servers import VENV_BIN, kronos_env

    instance, holder = held_slot.instance, held_slot.holder
    day = str(day_key("BTC/USDT", datetime(2026, 11, 19, tzinfo=timezone.utc)))
    tags = json.dumps({"dagster/partition": day, POOL_WAIT_TAG: "3"})
    t0 = time.monotonic()
    done = subprocess.run(
        [
            str(VENV_BIN / "dagster"),
            "job",
            "execute",
            "-m",
            "kronos_assets.definitions",
            "-a",
            "defs",
            "-j",
            "candles_1h",
            "--tags",
            tags,
        ],
        env=kronos_env(held_slot.root, held_slot.settings.dagster_home),
        cwd=held_slot.root,
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT_S,
    )
    assert time.monotonic() - t0 < RUN_LIMIT_S
    (run,) = [r for r in instance.get_runs() if r.run_id != holder]
    assert run.status == dg.DagsterRunStatus.FAILURE, done.stdout[-3000:] + done.stderr[-3000:]
    cause = run_cause(instance, run.run_id)
    assert "PoolWaitTimeout" in cause and holder in cause and "'duckdb_write' pool slot" in cause, cause
