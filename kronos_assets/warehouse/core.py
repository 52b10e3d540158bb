"""The warehouse: short-lived connections, atomic partition writes, on either back end (config.WarehouseConfig).

Every write replaces one partition's rows in a single transaction (DELETE the slice, INSERT the new rows), so a
re-run leaves exactly the same rows and a crash leaves the previous rows intact. Raw candles are the exception:
``merge`` replaces only the rows that came back (by key) and keeps the others, because an exchange answer that
lacks a stored closed bar must never remove it.

embedded: one DuckDB file. Connections are opened per call and closed at once, so nothing holds the file while a
model computes; DuckDB lets one process hold a file at a time, so opening retries with backoff while another
process (another run) has it. Each connection also holds a shared flock on ``.<file>.lock`` beside it
(``connections_lock``): a restore takes it exclusively, so that no connection opens while the file is swapped
(one opened in between would create an empty file, or write into the one moved aside).

ducklake: a PostgreSQL catalog and Parquet files (backends.Lake). Many processes write at once; a commit that
conflicts with another one is retried as a whole transaction, a bounded number of times within a deadline. A
writer killed before its catalog commit leaves nothing: the catalog commit is what makes a version visible.
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import duckdb
import polars as pl

from kronos_assets.base.locks import file_lock
from kronos_assets.warehouse import migrations
from kronos_assets.warehouse.backends import Lake, is_conflict
from kronos_assets.warehouse.config import WarehouseConfig
from kronos_assets.warehouse.damage import damaged, is_lock_conflict

T = TypeVar("T")


RESTORE_LOCK = "the warehouse's restore lock"  # what a refusal names: connections share it, a restore holds it alone


def connections_lock(path: Path) -> Path:
    """The file whose shared flock every connection to the embedded warehouse ``path`` holds."""
    return path.with_name(f".{path.name}.lock")


class WarehouseConflict(RuntimeError):
    """A write still conflicted with other writers' commits after the configured retries."""


class Warehouse:
    def __init__(self, path: str | Path, lock_timeout_s: float = 120.0, config: WarehouseConfig | None = None):
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self.config = config or WarehouseConfig()
        self._schema_ready = False
        self.found_version: int | None = None  # the schema version the first connection found (None: new)
        # DuckLake: one attached in-memory database per process, a cursor per call (extensions live beside the file).
        self._lake = (
            Lake(self.config, self.path.parent / "duckdb_extensions") if self.config.backend == "ducklake" else None
        )

    def __repr__(self) -> str:
        return f"Warehouse({self.path if self._lake is None else self.config.describe()})"

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._lake is not None:
            with self._connected(self._lake.cursor()) as con:
                yield con
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(connections_lock(self.path), self.lock_timeout_s, RESTORE_LOCK, shared=True):
            with self._connected(self._open()) as con:
                yield con

    @contextmanager
    def _connected(self, con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
        try:
            con.execute("SET TimeZone = 'UTC'")  # timestamps come back as UTC, whatever the machine's zone
            if not self._schema_ready:  # created, or migrated forward to this release's schema version
                self.found_version = migrations.ensure_current(
                    con, self.path if self._lake is None else self.config.describe(), _transaction, self._retrying
                )
                self._schema_ready = True
            yield con
        except duckdb.Error as exc:  # a damaged block may surface only when a query reads it
            if self._lake is None and (named := damaged(self.path, exc)):
                raise named from exc
            raise
        finally:
            con.close()

    def migrate(self) -> tuple[int | None, int]:
        """Opens the warehouse once, creating its tables or migrating them forward (migrations.py); returns the
        schema version found (None: a new warehouse) and the version now."""
        self._schema_ready = False
        with self.connect():
            pass
        return self.found_version, migrations.NEWEST

    def close(self) -> None:
        """Detaches DuckLake (the embedded file is never held between calls)."""
        if self._lake is not None:
            self._lake.close()

    def _open(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.Error as exc:
                if named := damaged(self.path, exc, opening=True):  # waiting never heals it: say so at once
                    raise named from exc
                if not is_lock_conflict(exc) or time.monotonic() > deadline:  # another process holds the file
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

        def attempt() -> None:
            with self.connect() as con:
                data = self._arrow_for(con, table, frame)
                on = " AND ".join(f"t.{k} = i.{k}" for k in keys)
                with _transaction(con):
                    con.register("_incoming", data)
                    con.execute(f"DELETE FROM {table} t USING _incoming i WHERE {on}")
                    con.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
                    con.unregister("_incoming")

        self._retrying(f"merging {frame.height} rows into {table} by {', '.join(keys)}", attempt)
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
        after: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ) -> dict[str, int]:
        """Replace, in one transaction, the rows matching ``where`` in each table by that table's frame.

        The caller builds ``where`` to cover exactly the partitions the frames belong to, so a re-run leaves the
        same rows, and a failure anywhere leaves every table as it was. ``after(con)`` runs last, inside the same
        transaction (e.g. aggregates of what was replaced).
        """

        def attempt() -> None:
            with self.connect() as con:
                arrows = {t: self._arrow_for(con, t, f) for t, f in frames.items() if f.height}  # empty: just delete
                with _transaction(con):
                    for table in frames:
                        con.execute(f"DELETE FROM {table} WHERE {where}", params or [])
                        if table not in arrows:
                            continue
                        con.register("_incoming", arrows[table])
                        con.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
                        con.unregister("_incoming")
                    if after is not None:
                        after(con)

        self._retrying(f"replacing the partition {where} {list(params or [])} of {', '.join(frames)}", attempt)
        return {t: f.height for t, f in frames.items()}

    def transact(self, what: str, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Runs ``work(con)`` in one transaction (all of it or nothing; retried whole on a commit race)."""

        def attempt() -> T:
            with self.connect() as con:
                with _transaction(con):
                    return work(con)

        return self._retrying(what, attempt)

    def maintain(self, keep_snapshots: timedelta, keep_files: timedelta) -> dict[str, int]:
        """DuckLake housekeeping, each step its own transaction: merge small adjacent Parquet files (every partition
        write adds one), expire snapshots older than ``keep_snapshots`` (time travel shrinks to that window), then
        delete the files no live snapshot reads and the orphans of killed writers, once older than ``keep_files``
        (longer than any write takes, so an uncommitted writer's files are never taken). Returns counts."""
        if self._lake is None:
            raise ValueError("maintenance applies to the DuckLake back end; the embedded file needs none")
        steps = {
            "files_merged": "CALL ducklake_merge_adjacent_files('lake')",
            "snapshots_expired": "CALL ducklake_expire_snapshots('lake', older_than => now() - to_seconds(?))",
            "old_files_deleted": "CALL ducklake_cleanup_old_files('lake', older_than => now() - to_seconds(?))",
            "orphans_deleted": "CALL ducklake_delete_orphaned_files('lake', older_than => now() - to_seconds(?))",
        }
        ages = {"snapshots_expired": keep_snapshots, "old_files_deleted": keep_files, "orphans_deleted": keep_files}
        counts = {}
        for name, sql in steps.items():
            params = [ages[name].total_seconds()] if name in ages else []

            def attempt(sql: str = sql, params: list = params) -> int:
                with self.connect() as con:
                    return len(con.execute(sql, params).fetchall())

            counts[name] = self._retrying(f"DuckLake maintenance ({name})", attempt)
        return counts

    def _retrying(self, what: str, attempt: Callable[[], T]) -> T:
        """Runs ``attempt`` (a whole transaction) again while it loses a commit race, within the config's bounds."""
        cfg = self.config
        start = time.monotonic()
        delay = 0.05
        for n in range(1, cfg.conflict_retries + 2):
            try:
                return attempt()
            except duckdb.Error as exc:
                if not is_conflict(exc):
                    raise
                elapsed = time.monotonic() - start
                if n > cfg.conflict_retries or elapsed + delay > cfg.conflict_deadline_s:
                    first = str(exc).strip().splitlines()[-1][:200]
                    raise WarehouseConflict(
                        f"{what}: still conflicting with other writers after {n} attempt(s) in "
                        f"{elapsed:.1f} s (bounds: conflict_retries {cfg.conflict_retries}, "
                        f"conflict_deadline_s {cfg.conflict_deadline_s:g}); last: {first}"
                    ) from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")


def _commit(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("COMMIT")


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Everything inside commits together or, on any exception (a kill's KeyboardInterrupt too), not at all."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        _commit(con)
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.TransactionException:  # a failed COMMIT has already ended the transaction
            pass
        raise
