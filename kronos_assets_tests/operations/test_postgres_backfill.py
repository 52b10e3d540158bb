"""deploy/dagster.yaml for real: the machine's PostgreSQL as Dagster's storage, the daemon draining the run queue,
a multi-run backfill of candles_1h, and every partition materialised exactly once with the pool and queue limits
holding."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
import yaml

from kronos_assets.cli.health import run_health
from kronos_assets.configuration.settings import REPO_ROOT, load_settings
from kronos_assets_tests.helpers import write_configs
from kronos_assets_tests.operations.servers import VENV_BIN, background, kronos_env, postgres_server, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DEPLOY_YAML = REPO_ROOT / "deploy" / "dagster.yaml"
DAYS = ("2025-01-01", "2025-01-02")
SYMBOLS = ("BTC-USDT", "ETH-USDT")
PARTITIONS = [f"{day}|{symbol}" for day in DAYS for symbol in SYMBOLS]  # day|symbol: dimensions sort by name
RUNS_TIMEOUT_S = 180
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    most = cur = 0
    for _, d in edges:
        cur += d
        most = max(most, cur)
    return most


def _step_windows(instance: dg.DagsterInstance, run_ids: list[str], steps: set[str]) -> list[tuple[float, float]]:
    """[STEP_START, STEP_SUCCESS/FAILURE] of the given steps in the given runs."""
    out = []
    for run_id in run_ids:
        starts: dict[str, float] = {}
        for entry in instance.all_logs(
            run_id,
            of_type={
                dg.DagsterEventType.STEP_START,
                dg.DagsterEventType.STEP_SUCCESS,
                dg.DagsterEventType.STEP_FAILURE,
            },
        ):
            key = entry.step_key
            if key not in steps:
                continue
            if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                starts[key] = entry.timestamp
            else:
                out.append((starts.pop(key), entry.timestamp))
    return out


def test_backfill_through_postgres_queue_and_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_configs(tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    shutil.copy(REPO_ROOT / "workspace.yaml", home / "workspace.yaml")
    limits = yaml.safe_load(DEPLOY_YAML.read_text())["concurrency"]
    backfill_limit = next(
        t["limit"] for t in limits["runs"]["tag_concurrency_limits"] if t["key"] == "dagster/backfill"
    )
    assert limits["pools"]["default_limit"] == 1

    with postgres_server() as pg:
        env = kronos_env(tmp_path, home, pg.env())
        for k in [k for k in os.environ if k.startswith(("DAGSTER_", "KRONOS_"))]:
            monkeypatch.delenv(k)
        for k, v in pg.env().items():
            monkeypatch.setenv(k, v)
        daemon_log = tmp_path / "daemon.log"
        with background(
            [str(VENV_BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, home, daemon_log
        ) as daemon:
            # `dagster job backfill` queues one run per partition (tag dagster/backfill); the daemon launches them.
            submit = subprocess.run(
                [
                    str(VENV_BIN / "dagster"),
                    "job",
                    "backfill",
                    "-w",
                    "workspace.yaml",
                    "-j",
                    "candles_1h",
                    "--partitions",
                    ",".join(PARTITIONS),
                    "--noprompt",
                ],
                env=env,
                cwd=home,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert submit.returncode == 0, submit.stdout[-2000:] + submit.stderr[-4000:]
            assert "Launched backfill job" in submit.stdout, submit.stdout

            with dg.DagsterInstance.from_config(str(home)) as instance:
                assert type(instance.run_storage).__name__ == "PostgresRunStorage"
                assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
                backfills = instance.get_backfills()
                assert len(backfills) == 1
                backfill_id = backfills[0].backfill_id

                def finished():
                    recs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
                    done = len(recs) == len(PARTITIONS) and all(r.dagster_run.status in FINISHED for r in recs)
                    return recs if done else None

                records = wait_until(
                    finished, RUNS_TIMEOUT_S, "backfill runs to finish", interval_s=1.0, proc=daemon, log=daemon_log
                )

                statuses = {r.dagster_run.tags["dagster/partition"]: r.dagster_run.status for r in records}
                assert statuses == {p: dg.DagsterRunStatus.SUCCESS for p in PARTITIONS}, daemon_log.read_text()[-4000:]
                # Every partition materialised exactly once, for both assets of the job.
                for asset in ("raw_candles", "clean_candles"):
                    mats = instance.fetch_materializations(dg.AssetKey(["1h", asset]), limit=100).records
                    assert Counter(m.partition_key for m in mats) == Counter(PARTITIONS), asset
                # The queue kept at most `backfill_limit` backfill runs in flight ...
                spans = [(r.start_time, r.end_time) for r in records]
                assert all(a and b for a, b in spans)
                assert _max_overlap(spans) <= backfill_limit
                # ... and the duckdb_write pool (limit 1 from default_limit) let one writer step run at a time.
                pool = instance.event_log_storage.get_pool_limits()
                assert {p.name: p.limit for p in pool}.get("duckdb_write") == 1
                writers = _step_windows(
                    instance, [r.dagster_run.run_id for r in records], {"1h__raw_candles", "1h__clean_candles"}
                )
                assert len(writers) == 2 * len(PARTITIONS)
                assert _max_overlap(writers) == 1

            # `kronos-assets health` reads the same Postgres instance through $DAGSTER_HOME, daemon included.
            monkeypatch.setenv("DAGSTER_HOME", str(home))
            report = run_health(load_settings("demo", config_dir=tmp_path / "configs", home=tmp_path / "home"))
            rows = {r.item: r for r in report.rows}
            assert "Postgres" in rows["dagster instance"].detail, rows["dagster instance"]
            assert rows["runs (last 24 h)"].status == "OK", rows["runs (last 24 h)"]
            assert rows["dagster daemon"].status == "OK", rows["dagster daemon"]
            assert rows["warehouse"].status == "OK", rows["warehouse"]
