"""DuckLake maintenance as a scheduled job: merge the small Parquet files partition writes leave, expire old
snapshots, delete files no snapshot reads. Built only for the DuckLake back end: the embedded file compacts itself
and has no snapshots, so there the job would have nothing to do and is not defined at all."""

from datetime import timedelta

import dagster as dg

from kronos_assets.warehouse import WRITE_POOL, Warehouse, WarehouseConfig

MAINTENANCE_JOB = "warehouse_maintenance"
# Daily, off the hour: the hourly candle runs start on the hour.
MAINTENANCE_CRON = "37 3 * * *"
KEEP_SNAPSHOTS = timedelta(days=7)  # time travel back a week; older versions go
KEEP_FILES = timedelta(days=1)  # far longer than any write takes: an in-flight writer's files are never deleted


def build_maintenance(config: WarehouseConfig) -> dg.Definitions:
    if config.backend != "ducklake":
        return dg.Definitions()

    @dg.op(required_resource_keys={"warehouse"}, pool=WRITE_POOL,
           description="ducklake_merge_adjacent_files, ducklake_expire_snapshots (older than 7 days), "
                       "ducklake_cleanup_old_files and ducklake_delete_orphaned_files (older than 1 day).")
    def maintain_warehouse(context: dg.OpExecutionContext) -> dg.Output[dict]:
        warehouse: Warehouse = context.resources.warehouse
        counts = warehouse.maintain(keep_snapshots=KEEP_SNAPSHOTS, keep_files=KEEP_FILES)
        context.log.info(f"DuckLake maintenance: {counts}")
        return dg.Output(counts, metadata=counts)

    @dg.job(name=MAINTENANCE_JOB, description="Compact and prune the DuckLake warehouse (files, snapshots).")
    def warehouse_maintenance() -> None:
        maintain_warehouse()

    schedule = dg.ScheduleDefinition(name=f"{MAINTENANCE_JOB}_schedule", job=warehouse_maintenance,
                                     cron_schedule=MAINTENANCE_CRON, execution_timezone="UTC",
                                     default_status=dg.DefaultScheduleStatus.RUNNING)
    return dg.Definitions(jobs=[warehouse_maintenance], schedules=[schedule])
