"""The DuckLake maintenance job: defined only for DuckLake, scheduled daily, and it compacts without changing rows."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from kronos_assets.defs.maintenance import MAINTENANCE_JOB, build_maintenance
from kronos_assets.warehouse import Warehouse, WarehouseConfig
from kronos_assets_tests.warehouse.conftest import LakeServers, data_files
from kronos_assets_tests.warehouse.lake_writer import write


def test_no_job_for_the_embedded_file():
    defs = build_maintenance(WarehouseConfig())
    assert not list(defs.jobs or []) and not list(defs.schedules or [])


def test_the_job_compacts_ducklake_and_keeps_every_row(lake: LakeServers, tmp_path: Path):
    cfg = lake.config()
    wh = Warehouse(tmp_path / "wh.duckdb", config=cfg)
    for i in range(3):
        write(wh, f"S{i}/USDT", "v", 40)
    rows = wh.query("SELECT * FROM raw_candles ORDER BY symbol, ts")
    assert data_files(wh) == 3
    defs = dg.Definitions.merge(build_maintenance(cfg), dg.Definitions(resources={"warehouse": wh}))
    schedule = defs.resolve_schedule_def(f"{MAINTENANCE_JOB}_schedule")
    assert schedule.cron_schedule == "37 3 * * *" and schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    result = defs.resolve_job_def(MAINTENANCE_JOB).execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    counts = result.output_for_node("maintain_warehouse")
    assert counts["files_merged"] >= 1 and data_files(wh) == 1, counts
    assert wh.query("SELECT * FROM raw_candles ORDER BY symbol, ts").equals(rows)
