"""What ``kronos-assets check`` asks of the stored state: is any file the profile keeps damaged (the warehouse file,
the Dagster instance's SQLite files)? The same probes as health's rows, reduced to one line per damaged file."""

from __future__ import annotations

from kronos_assets.cli.health.reachable import open_instance
from kronos_assets.cli.health.report import LOCK_WAIT_S
from kronos_assets.configuration.settings import Settings
from kronos_assets.warehouse.readonly import ReadOnlyWarehouse


def damaged_files(settings: Settings) -> list[str]:
    """Each damaged file named, with what to do; empty when none is (nothing stored yet counts as fine)."""
    problems = []
    if settings.warehouse.backend == "embedded" and settings.warehouse_path.exists():
        wh = ReadOnlyWarehouse(settings.warehouse_path, settings.warehouse, lock_wait_s=LOCK_WAIT_S)
        try:
            wh.open()
            if wh.con is not None:
                wh.integrity()
        finally:
            wh.close()
        if wh.damage:
            problems.append(wh.damage)
    instance, row = open_instance(settings)
    if instance is not None:
        instance.dispose()
    elif row.fix:
        problems.append(row.fix)
    return problems
