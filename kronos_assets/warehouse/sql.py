"""The warehouse's SQL files (dbt_free_sql/, the same for both back ends) and result rows for JSON."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from kronos_assets.base import environment

SQL_DIR = environment.sql_dir(Path(__file__).resolve().parents[2] / "dbt_free_sql")


def json_rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows of a query result as dicts, timestamps as ISO strings: ready for JSON and metadata."""
    return [
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()} for r in df.iter_rows(named=True)
    ]


def read_sql(name: str) -> str:
    path = SQL_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"SQL file {path} not found (set KRONOS_SQL_DIR to the dbt_free_sql folder)")
    return path.read_text()
