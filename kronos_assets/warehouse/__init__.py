"""The warehouse (no Dagster here): the embedded DuckDB file or DuckLake, behind one ``Warehouse`` API."""

from kronos_assets.warehouse.config import WRITE_POOL, WarehouseConfig
from kronos_assets.warehouse.core import Warehouse, WarehouseConflict
from kronos_assets.warehouse.damage import DamagedWarehouse
from kronos_assets.warehouse.migrations import MigrationFailed, SchemaTooNew
from kronos_assets.warehouse.sql import SQL_DIR, json_rows, read_sql

__all__ = [
    "SQL_DIR",
    "WRITE_POOL",
    "DamagedWarehouse",
    "MigrationFailed",
    "SchemaTooNew",
    "Warehouse",
    "WarehouseConfig",
    "WarehouseConflict",
    "json_rows",
    "read_sql",
]
