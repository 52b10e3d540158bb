"""Runs launched by a real dagster-daemon (QueuedRunCoordinator, Postgres instance from deploy/dagster.yaml) write
the DuckLake warehouse at once: four backfill runs on four partitions, each materialised once with its rows.
(Two writers of one partition, conflicts and kill -9 are in test_lake.py, on writer processes: cheaper than runs.)"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
import yaml

from kronos_assets.configuration.settings import REPO_ROOT, load_settings
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.helpers import write_configs
from kronos_assets_tests.operations.servers import VENV_BIN, background, kronos_env, wait_until
from kronos_assets_tests.operations.test_postgres_backfill import _max_overlap, _step_windows
from kronos_assets_tests.warehouse.barrier_location import BARRIER_DIR_VAR
from kronos_assets_tests.warehouse.conftest import LakeServers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

DAYS = ("2025-01-01", "2025-01-02")
SYMBOLS = ("BTC-USDT", "ETH-USDT")
PARTITIONS = [f"{day}|{symbol}" for day in DAYS for symbol in SYMBOLS]
WRITE_POOL_LIMIT = 4
RUNS_TIMEOUT_S = 240
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _instance_home(tmp_path: Path) -> Path:
    """deploy/dagster.yaml with room for four backfill runs at once (the shipped limit keeps two for the schedule)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]:
        if limit["key"] == "dagster/backfill":
            limit["limit"] = len(PARTITIONS)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    (home / "workspace.yaml").write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_module": {
                            "module_name": "kronos_assets_tests.warehouse.barrier_location",
                            "attribute": "location",
                            "location_name": "kronos_assets",
                            "working_directory": str(REPO_ROOT),
                        }
                    }
                ]
            }
        )
    )
    return home


def _cli(args: list[str], env: dict, cwd: Path) -> str:
    proc = subprocess.run(
        [str(VENV_BIN / "dagster"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def _per_partition(wh: Warehouse, table: str) -> dict[str, tuple[int, int]]:
    """day|symbol -> (rows, distinct bars): equal when no bar is stored twice."""
    df = wh.query(
        f"SELECT strftime(ts, '%Y-%m-%d') || '|' || replace(symbol, '/', '-') AS p, count(*) AS n, "
        f"count(DISTINCT ts) AS bars FROM {table} GROUP BY p ORDER BY p"
    )
    return {r["p"]: (r["n"], r["bars"]) for r in df.iter_rows(named=True)}


def test_runs_write_ducklake_at_once_through_the_daemon(lake: LakeServers, tmp_path: Path, monkeypatch):
    cfg = lake.config(write_pool_limit=WRITE_POOL_LIMIT)
    write_configs(tmp_path, profile={"warehouse": json.loads(cfg.model_dump_json(exclude_defaults=True))})
    home = _instance_home(tmp_path)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    (barrier / "expected").write_text(str(len(PARTITIONS)))  # the four runs meet before writing
    env = kronos_env(tmp_path, home, {**lake.pg.env(), **lake.env(), BARRIER_DIR_VAR: str(barrier)})
    for k in [k for k in os.environ if k.startswith(("DAGSTER_", "KRONOS_"))]:
        monkeypatch.delenv(k)
    for k, v in {**lake.pg.env(), **lake.env()}.items():
        monkeypatch.setenv(k, v)
    settings = load_settings("demo", config_dir=tmp_path / "configs", home=tmp_path / "home")
    assert settings.warehouse == cfg
    # deploy/README.md: the instance keeps per-pool limits in Postgres; raise the writers' pool once.
    _cli(["instance", "concurrency", "set", "duckdb_write", str(cfg.pool_limit)], env, home)

    daemon_log = tmp_path / "daemon.log"
    daemon_args = [str(VENV_BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
    with (
        background(daemon_args, env, home, daemon_log) as daemon,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        out = _cli(
            [
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
            env,
            home,
        )
        assert "Launched backfill job" in out, out
        backfill_id = instance.get_backfills()[0].backfill_id

        def finished(tags: dict, n: int):
            recs = instance.get_run_records(dg.RunsFilter(tags=tags))
            return recs if len(recs) == n and all(r.dagster_run.status in FINISHED for r in recs) else None

        records = wait_until(
            lambda: finished({"dagster/backfill": backfill_id}, len(PARTITIONS)),
            RUNS_TIMEOUT_S,
            "backfill runs to finish",
            interval_s=1.0,
            proc=daemon,
            log=daemon_log,
        )
        statuses = {r.dagster_run.tags["dagster/partition"]: r.dagster_run.status for r in records}
        assert statuses == {p: dg.DagsterRunStatus.SUCCESS for p in PARTITIONS}, daemon_log.read_text()[-4000:]
        for asset in ("raw_candles", "clean_candles"):
            mats = instance.fetch_materializations(dg.AssetKey(["1h", asset]), limit=100).records
            assert Counter(m.partition_key for m in mats) == Counter(PARTITIONS), asset
        # The four runs wrote at the same time (each raw_candles write waited for all four writers to arrive,
        # which the duckdb_write pool at 1 would never allow), and their commits raced without losing a row.
        assert {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}["duckdb_write"] == 4
        writes = [json.loads(line) for line in (barrier / "writes.jsonl").read_text().splitlines()]
        assert len({w["pid"] for w in writes}) == len(PARTITIONS) == len(writes), writes
        assert _max_overlap([(w["start"], w["end"]) for w in writes]) == len(PARTITIONS), writes
        steps = _step_windows(instance, [r.dagster_run.run_id for r in records], {"1h__raw_candles"})
        assert _max_overlap(steps) == len(PARTITIONS), steps

        wh = Warehouse(tmp_path / "home" / "demo" / "warehouse.duckdb", config=cfg)
        for table in ("raw_candles", "clean_candles"):
            assert _per_partition(wh, table) == {p: (24, 24) for p in PARTITIONS}, table
        assert not (tmp_path / "home" / "demo" / "warehouse.duckdb").exists()  # the data is in the bucket
        assert lake.parquet_keys(cfg.data_path.removeprefix("s3://kronos-lake/"))
