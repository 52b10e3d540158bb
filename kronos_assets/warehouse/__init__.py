"""The warehouse (no Dagster here): the embedded DuckDB file or DuckLake, behind one ``Warehouse`` API."""

from kronos_assets.warehouse.config import WRITE_POOL, WarehouseConfig
from kronos_assets.warehouse.core import NULLABLE, Warehouse, WarehouseConflict
from kronos_assets.warehouse.damage import DamagedWarehouse
from kronos_assets.warehouse.sql import SQL_DIR, json_rows, read_sql

__all__ = ["NULLABLE", "SQL_DIR", "WRITE_POOL", "DamagedWarehouse", "Warehouse", "WarehouseConfig", "WarehouseConflict",
           "json_rows", "read_sql"]
