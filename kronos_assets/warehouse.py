"""The DuckDB warehouse: one file, short-lived connections, atomic partition writes.

Every write replaces one partition's rows in a single transaction (DELETE the slice, INSERT the new rows), so a
re-run leaves exactly the same rows and a crash leaves the previous rows intact. Raw candles are the exception:
``merge`` replaces only the rows that came back (by key) and keeps the others, because an exchange answer that
lacks a stored closed bar must never remove it. Connections are opened per call
and closed at once: nothing holds the file while a model computes. DuckDB lets one process hold a file at a time,
so opening retries with backoff while another process (another run) has it.
"""

from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb
import polars as pl

SQL_DIR = Path(os.environ.get("KRONOS_SQL_DIR", Path(__file__).resolve().parent.parent / "dbt_free_sql"))


def json_rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows of a query result as dicts, timestamps as ISO strings: ready for JSON and metadata."""
    return [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()} for r in df.iter_rows(named=True)]


def read_sql(name: str) -> str:
    path = SQL_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"SQL file {path} not found (set KRONOS_SQL_DIR to the dbt_free_sql folder)")
    return path.read_text()


# Columns made nullable after warehouses existed (models without volume, e.g. GARCH: NULL volume summaries).
NULLABLE = (("forecast_steps", "mean_volume"), ("forecast_steps", "median_volume"))


def _relax_not_null(con: duckdb.DuckDBPyConnection) -> None:
    """Drops NOT NULL from NULLABLE columns of an older file, and only there: opening a current file writes nothing."""
    for table, column in NULLABLE:
        row = con.execute("SELECT is_nullable FROM information_schema.columns WHERE table_name = ? AND column_name = ?",
                          [table, column]).fetchone()
        if row and row[0] == "NO":
            con.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL")


class Warehouse:
    def __init__(self, path: str | Path, lock_timeout_s: float = 120.0):
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self._schema_ready = False

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._open()
        try:
            con.execute("SET TimeZone = 'UTC'")  # timestamps come back as UTC, whatever the machine's zone
            if not self._schema_ready:
                con.execute(read_sql("schema.sql"))
                _relax_not_null(con)
                self._schema_ready = True
            yield con
        finally:
            con.close()

    def _open(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:  # another process holds the file lock
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
        with self.connect() as con:
            return con.execute(sql, params or []).pl()

    def replace(
        self, table: str, frame: pl.DataFrame, where: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> int:
        """Atomically replace the rows of ``table`` matching ``where`` by ``frame``; returns rows inserted."""
        return self.replace_many({table: frame}, where, params)[table]

    def merge(self, table: str, frame: pl.DataFrame, keys: Sequence[str]) -> int:
        """In one transaction, replace the rows of ``table`` whose ``keys`` match a row of ``frame`` and insert
        the rest of ``frame``; rows of ``table`` without a counterpart in ``frame`` stay. Returns rows written."""
        if frame.height == 0:
            return 0
        with self.connect() as con:
            data = self._arrow_for(con, table, frame)
            on = " AND ".join(f"t.{k} = i.{k}" for k in keys)
            with _transaction(con):
                con.register("_incoming", data)
                con.execute(f"DELETE FROM {table} t USING _incoming i WHERE {on}")
                con.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
                con.unregister("_incoming")
        return frame.height

    @staticmethod
    def _arrow_for(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> Any:
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"rows for {table} lack columns {missing}")
        return frame.select(cols).to_arrow()

    def replace_many(
        self,
        frames: dict[str, pl.DataFrame],
        where: str,
        params: Sequence[Any] | dict[str, Any] | None = None,
    ) -> dict[str, int]:
        """Replace, in one transaction, the rows matching ``where`` in each table by that table's frame.

        The caller builds ``where`` to cover exactly the partitions the frames belong to, so a re-run leaves the
        same rows, and a failure anywhere leaves every table as it was.
        """
        with self.connect() as con:
            arrows = {}
            for table, frame in frames.items():
                if frame.height == 0:
                    continue  # nothing to insert: the partition becomes empty
                arrows[table] = self._arrow_for(con, table, frame)
            with _transaction(con):
                for table in frames:
                    con.execute(f"DELETE FROM {table} WHERE {where}", params or [])
                    if table not in arrows:
                        continue
                    con.register("_incoming", arrows[table])
                    con.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
                    con.unregister("_incoming")
        return {t: f.height for t, f in frames.items()}


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Everything inside commits together or, on any exception (a kill's KeyboardInterrupt too), not at all."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
