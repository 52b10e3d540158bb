"""Daily warehouse maintenance as a scheduled job: the sample paths of scored forecasts past the profile's
retention.paths_days are pruned (warehouse/paths_retention.py), then, on DuckLake, the small Parquet files partition
writes leave are merged, old snapshots expired and files no snapshot reads deleted. Not defined where it would have
nothing to do: the embedded file with every path kept (it compacts itself and has no snapshots)."""

from datetime import timedelta

import dagster as dg

from kronos_assets.warehouse import WRITE_POOL, Warehouse, WarehouseConfig
from kronos_assets.warehouse.paths_retention import prune_paths

MAINTENANCE_JOB = "warehouse_maintenance"
# Daily, off the hour: the hourly candle runs start on the hour.
MAINTENANCE_CRON = "37 3 * * *"
KEEP_SNAPSHOTS = timedelta(days=7)  # time travel back a week; older versions go
KEEP_FILES = timedelta(days=1)  # far longer than any write takes: an in-flight writer's files are never deleted
PATHS_ROUND_S = 480.0  # pruning paths, per daily round; the first round after enabling it may leave some for the next


def build_maintenance(config: WarehouseConfig, paths_days: int | None = None) -> dg.Definitions:
    lake = config.backend == "ducklake"
    if not lake and paths_days is None:
        return dg.Definitions()
    steps = []
    if paths_days is not None:
        steps.append(
            f"prunes the sample paths of forecasts scored and older than {paths_days} days (their "
            f"forecasts, quantiles and scores stay), in batches, for at most {PATHS_ROUND_S:.0f} s"
        )
    if lake:
        steps.append(
            "ducklake_merge_adjacent_files, ducklake_expire_snapshots (older than 7 days), "
            "ducklake_cleanup_old_files and ducklake_delete_orphaned_files (older than 1 day)"
        )

    text = "; then ".join(steps)

    @dg.op(required_resource_keys={"warehouse"}, pool=WRITE_POOL, description=text[0].upper() + text[1:] + ".")
    def maintain_warehouse(context: dg.OpExecutionContext) -> dg.Output[dict]:
        warehouse: Warehouse = context.resources.warehouse
        counts: dict = {}
        if paths_days is not None:
            pruned = prune_paths(warehouse, paths_days, PATHS_ROUND_S, log=context.log.info)
            counts |= {
                "paths_forecasts_pruned": pruned.forecasts,
                "paths_rows_deleted": pruned.rows,
                "paths_left": pruned.left,
            }
        if lake:
            counts |= warehouse.maintain(keep_snapshots=KEEP_SNAPSHOTS, keep_files=KEEP_FILES)
            context.log.info(f"DuckLake maintenance: {counts}")
        return dg.Output(counts, metadata=counts)

    what = ", ".join(
        filter(
            None,
            [
                "prune old sample paths" if paths_days is not None else "",
                "compact and prune the DuckLake warehouse (files, snapshots)" if lake else "",
            ],
        )
    )

    @dg.job(name=MAINTENANCE_JOB, description=what[0].upper() + what[1:] + ".")
    def warehouse_maintenance() -> None:
        maintain_warehouse()

    schedule = dg.ScheduleDefinition(
        name=f"{MAINTENANCE_JOB}_schedule",
        job=warehouse_maintenance,
        cron_schedule=MAINTENANCE_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(jobs=[warehouse_maintenance], schedules=[schedule])
