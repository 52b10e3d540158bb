"""Retention of the Dagster instance (orchestration/retention.py): runs past retention.run_days are pruned with
partition status, check status and health unchanged, a kill -9 inside a round loses nothing and a plain re-run
heals, and `kronos-assets run` and the daily job both prune."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.storage.partition_status_cache import _build_status_cache

from kronos_assets.base.config_files import ConfigError
from kronos_assets.cli import main_job
from kronos_assets.cli.health import run_health
from kronos_assets.defs.factory import build_definitions
from kronos_assets.orchestration.local_instance import instance_yaml
from kronos_assets.orchestration.retention import prune_instance
from kronos_assets_tests.helpers import small_settings

# Main-job runs in subprocesses or Dagster instances: handed out first (conftest), so the suite's tail is short.
pytestmark = pytest.mark.slow

ENV_PREFIXES = ("KRONOS_", "R2_", "DAGSTER_HOME")
LATER = timedelta(days=15)  # past the default 14 days: every run of the fixture is old enough


@pytest.fixture(scope="module")
def ran_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[Any, ...]]]:
    """A small home after one main-job run (2 symbols x 1h, 2 bars), and the retention calls the run made."""
    root = tmp_path_factory.mktemp("retention")
    calls: list[tuple[Any, ...]] = []
    real = main_job.prune_instance
    with pytest.MonkeyPatch.context() as mp:
        for k in [k for k in os.environ if k.startswith(ENV_PREFIXES)]:
            mp.delenv(k)
        mp.setattr(
            main_job,
            "prune_instance",
            lambda inst, days, deadline, log: calls.append((days, deadline)) or real(inst, days, deadline, log=log),
        )
        main_job.run_main_job(small_settings(root), backfill_bars=2, log=lambda _: None)
    return root, calls


@pytest.fixture
def home(ran_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the ran home, the CLI's environment pointed at it."""
    root = tmp_path / "root"
    shutil.copytree(ran_root[0], root)
    for k in [k for k in os.environ if k.startswith(ENV_PREFIXES)]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("KRONOS_CONFIG_DIR", str(root / "configs"))
    monkeypatch.setenv("KRONOS_HOME", str(root / "home"))
    return root


def _instance(root: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.local_temp(tempdir=str(small_settings(root).dagster_home))


def status(root: Path) -> dict[str, Any]:
    """What the UI, backfills and health read: each asset's materialized partitions (the storage's query and the
    UI's status cache rebuilt from the events), its latest materialisation, each check's latest evaluation."""
    settings = small_settings(root)
    graph = build_definitions(settings).resolve_asset_graph()
    instance = _instance(root)
    out: dict[str, Any] = {}
    for key in graph.materializable_asset_keys:
        pd = graph.get(key).partitions_def
        record = next(iter(instance.get_asset_records([key])), None)
        cache = _build_status_cache(instance, key, pd, None, record)  # from scratch, as after a cache reset
        last = record.asset_entry.last_materialization_record if record else None
        out[key.to_user_string()] = {
            "partitions": sorted(instance.get_materialized_partitions(key)) if pd else None,
            "ui": sorted(cache.deserialize_materialized_partition_subsets(pd).get_partition_keys())
            if cache and pd
            else None,
            "latest": (last.storage_id, last.timestamp, last.event_log_entry.asset_materialization.metadata)
            if last
            else None,
        }
    for check in graph.asset_check_keys:
        rec = instance.get_latest_asset_check_evaluation_record(check)
        out[check.to_user_string()] = (rec.id, rec.status, rec.create_timestamp) if rec else None
    instance.dispose()
    return out


def health_rows(root: Path, now: datetime) -> dict[str, tuple[str, str]]:
    report = run_health(small_settings(root), now=now)
    # a check's label names its run by id, which stays; ages are relative to the same `now`
    return {f"{r.section}/{r.item}": (r.status, r.detail) for r in report.rows}


def files(root: Path) -> tuple[list[str], list[str]]:
    dagster = small_settings(root).dagster_home
    runs = sorted(p.name for p in (dagster / "history" / "runs").glob("*.db") if p.name != "index.db")
    logs = sorted(p.name for p in (dagster / "storage").iterdir()) if (dagster / "storage").is_dir() else []
    return runs, logs


def test_main_job_prunes_after_its_runs(ran_root):
    _, calls = ran_root
    assert calls == [(14, main_job.RUN_ROUND_S)]


def test_a_round_with_nothing_old_asks_the_run_storage_a_bounded_number_of_times(home, monkeypatch):
    """Every tick runs a round. Its check for run files without a record (a pruning killed half-way) once asked the
    run storage per file, a cost that grew with every run kept (found by the 720-tick soak): now one query per 500
    files. Here 3 kept runs plus 600 stand-in files (run ids with records) take 2 queries, and no file goes."""
    instance = _instance(home)
    shard = small_settings(home).dagster_home / "history" / "runs"
    kept = set(instance.get_run_ids())
    fake = [f"{i:08d}-0000-0000-0000-000000000000" for i in range(600)]
    for run_id in fake:
        shutil.copy(shard / f"{next(iter(kept))}.db", shard / f"{run_id}.db")
    real_ids = instance.get_run_ids
    asked: list[int] = []

    def get_run_ids(filters=None, cursor=None, limit=None):  # the fakes count as recorded: they are not orphans
        asked.append(len(filters.run_ids))
        return [i for i in filters.run_ids if i in fake] + list(real_ids(filters, cursor, limit))

    real_records = instance.run_storage.get_run_records
    records: list[Any] = []

    def get_run_records(*args: Any, **kwargs: Any) -> Any:
        records.append(args or kwargs)
        return real_records(*args, **kwargs)

    monkeypatch.setattr(instance, "get_run_ids", get_run_ids)
    monkeypatch.setattr(instance.run_storage, "get_run_records", get_run_records)
    outcome = prune_instance(instance, now=datetime.now(timezone.utc))
    assert asked == [500, len(kept) + 600 - 500] and outcome.orphans == 0 and outcome.runs == 0
    assert len(records) == 1  # the one query for runs old enough to prune
    assert len(files(home)[0]) == len(kept) + 600


def test_pruning_keeps_partition_status_checks_and_health(home):
    now = datetime.now(timezone.utc)
    before, health_before = status(home), health_rows(home, now)
    assert any(v and v.get("partitions") for v in before.values() if isinstance(v, dict)), before
    instance = _instance(home)
    n_runs = instance.get_runs_count()
    assert n_runs >= 3 and files(home)[0] and files(home)[1]  # candles, forecasts, track record: a run each

    recent = prune_instance(instance, now=now)  # nothing is older than 14 days yet
    assert recent.runs == 0 and instance.get_runs_count() == n_runs

    outcome = prune_instance(instance, now=now + LATER, deadline_s=300)
    assert outcome.runs == n_runs and outcome.left == 0 and outcome.kept_events > 0
    assert instance.get_runs_count() == 0
    assert files(home) == ([], [])  # the runs' event-log files and compute logs are gone too
    instance.dispose()
    assert status(home) == before  # partitions (storage and UI cache), latest events, checks: all unchanged
    assert health_rows(home, now) == health_before
    # a "materialize missing" backfill over the pruned period asks for what it asked before: nothing stored
    assert prune_instance(_instance(home), now=now + LATER).runs == 0  # a second round has nothing to do


KILLER = """
import os, signal, sys
from datetime import datetime, timedelta, timezone
import dagster as dg
from kronos_assets.orchestration import retention
point = sys.argv[2]
calls = {"n": 0}
def die_at(name):
    real = getattr(retention, name)
    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second run: one run pruned whole, the next one cut
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    setattr(retention, name, wrapper)
if point == "index":  # inside the index transaction, after the run record went
    die_at("_latest_checks_of_run")
elif point == "files":  # after the index transaction, before the run's files go
    die_at("_remove_run_files")
else:  # after the run record went, before the index transaction starts
    die_at("_prune_index")
instance = dg.DagsterInstance.local_temp(tempdir=sys.argv[1])
retention.prune_instance(instance, now=datetime.now(timezone.utc) + timedelta(days=15), deadline_s=300)
"""


@pytest.mark.parametrize("point", ["record", "index", "files"])
def test_kill_inside_a_pruning_round_loses_nothing_and_heals(home, point):
    now = datetime.now(timezone.utc)
    before, health_before = status(home), health_rows(home, now)
    dagster_home = small_settings(home).dagster_home
    n_runs = _instance(home).get_runs_count()
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(dagster_home), point], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    # killed mid-round: some runs pruned, one cut short; nothing stored is lost and health reads the same
    assert 0 < _instance(home).get_runs_count() < n_runs
    assert status(home) == before
    assert health_rows(home, now) == health_before
    # a plain re-run finishes the cut run (its file marks it) and prunes the rest
    outcome = prune_instance(_instance(home), now=now + LATER, deadline_s=300)
    assert outcome.orphans == 1
    assert _instance(home).get_runs_count() == 0 and files(home) == ([], [])
    assert status(home) == before
    assert health_rows(home, now) == health_before


def test_daily_job_prunes_and_is_scheduled(home):
    settings = small_settings(home)
    defs = build_definitions(settings)
    job = defs.resolve_job_def("prune_dagster_runs")
    schedule = defs.resolve_schedule_def("prune_dagster_runs_schedule")
    assert schedule.cron_schedule == "17 4 * * *"
    instance = _instance(home)
    n_runs = instance.get_runs_count()
    result = job.execute_in_process(instance=instance)
    assert result.success
    # its runs are all recent: nothing pruned, and the job's own run is one more
    assert instance.get_runs_count() == n_runs + 1
    assert result.output_for_node("prune_old_runs") == 0


def test_retention_is_configured_in_the_profile(tmp_path):
    settings = small_settings(tmp_path, retention={"run_days": 3})
    assert settings.retention_run_days == 3
    assert small_settings(tmp_path / "default").retention_run_days == 14
    yaml_text = instance_yaml(settings)
    assert yaml_text.count("purge_after_days: 3") == 3  # schedule, sensor and automation ticks
    with pytest.raises(ConfigError) as err:
        small_settings(tmp_path / "bad", retention={"run_days": 0})
    assert "demo.yaml" in str(err.value) and "retention.run_days" in str(err.value), str(err.value)
