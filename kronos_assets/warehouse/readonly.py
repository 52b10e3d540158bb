"""Health's read-only look at the warehouse, on either back end: never creates, changes or waits long for it.

embedded: the file opened read-only (DuckDB refuses while a writer holds it: retried for ``lock_wait_s``).
ducklake: the catalog attached READ_ONLY, so a lake nobody wrote yet is reported, not created.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from kronos_assets.warehouse import migrations
from kronos_assets.warehouse.backends import Lake, WarehouseUnavailable
from kronos_assets.warehouse.config import WarehouseConfig
from kronos_assets.warehouse.damage import DamagedWarehouse, damaged, is_lock_conflict

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"  # health's row statuses
NEEDED = {"clean_candles", "forecasts"}


def _short(exc: BaseException | str, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ReadOnlyWarehouse:
    def __init__(self, path: Path, config: WarehouseConfig | None = None, lock_wait_s: float = 5.0):
        self.path = Path(path)
        self.config = config or WarehouseConfig()
        self.lock_wait_s = lock_wait_s
        self.con: Any = None
        self.problem: tuple[str, str] | None = None  # (status, detail) when it could not be opened
        self.damage: str | None = None  # the file named as damaged, with what to do
        self._lake = (
            Lake(self.config, self.path.parent / "duckdb_extensions", read_only=True)
            if self.config.backend == "ducklake"
            else None
        )

    def open(self) -> tuple[str, str]:
        status_detail = self._open_lake() if self._lake is not None else self._open_file()
        if self.con is None:
            self.problem = status_detail
        return status_detail

    def _open_file(self) -> tuple[str, str]:
        if not self.path.exists():
            return WARN, f"{self.path} does not exist yet: run `kronos-assets run` or materialise candles"
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                self.con = duckdb.connect(str(self.path), read_only=True)
                break
            except duckdb.Error as exc:
                if named := damaged(self.path, exc, opening=True):
                    self.damage = str(named)
                    return FAIL, self.damage
                locked = is_lock_conflict(exc)
                if locked and time.monotonic() < deadline:
                    time.sleep(0.25)
                    continue
                if locked:
                    return WARN, (
                        f"{self.path} is held by another process for {self.lock_wait_s:.0f} s "
                        f"(a run writing?): {_short(exc, 120)}"
                    )
                return FAIL, f"cannot open {self.path}: {_short(exc)}"
            except Exception as exc:  # permissions, a folder where the file belongs
                return FAIL, f"cannot open {self.path}: {_short(exc)}"
        try:
            self.con.execute("SET TimeZone = 'UTC'")
            tables = {r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        except duckdb.Error as exc:
            self.close()
            named = damaged(self.path, exc, opening=True)
            self.damage = str(named) if named else None
            return FAIL, self.damage or f"cannot read {self.path}: {_short(exc)}"
        where = f"{self.path} ({self.path.stat().st_size / 1e6:.1f} MB) opened read-only"
        return self._tables_row(where, tables, "")

    def integrity(self) -> tuple[str, str]:
        """The file's own consistency, cheaply: its size as DuckDB accounts it (blocks used and free) and a row
        count of every table, which reads each table's metadata; a damaged block or catalog fails here, named."""
        if self._lake is not None:
            return SKIP, (
                f"{self.config.describe()}: DuckLake keeps its own consistency in the PostgreSQL catalog "
                "(check it with PostgreSQL's tools)"
            )
        if self.con is None:
            return SKIP, "not checked: the warehouse was not opened (see reachable/warehouse)"
        try:
            _, _, blocks, used, free = self.con.execute(
                "SELECT database_name, database_size, total_blocks, used_blocks, free_blocks "
                "FROM pragma_database_size() WHERE database_name = current_database()"
            ).fetchone()
            tables = [
                r[0]
                for r in self.con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                    "ORDER BY table_name"
                ).fetchall()
            ]
            counts = {t: self.con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        except duckdb.Error as exc:
            named = damaged(self.path, exc, opening=True)
            self.damage = str(named) if named else None
            return FAIL, self.damage or f"{self.path}: consistency query failed: {_short(exc)}"
        if used + free != blocks:
            self.damage = str(DamagedWarehouse(self.path, f"{blocks} blocks but {used} used and {free} free"))
            return FAIL, self.damage
        rows = ", ".join(f"{t} {n:,}" for t, n in counts.items())
        return OK, f"{blocks} blocks ({used} used); rows: {rows or 'no tables'}"

    def schema(self) -> tuple[str, str]:
        """The schema version and any migration the next run applies (read only: health never migrates)."""
        if self.con is None:
            return SKIP, "not checked: the warehouse was not opened (see reachable/warehouse)"
        try:
            found = migrations.state(self.con)
        except duckdb.Error as exc:
            return FAIL, f"cannot read the schema version of {self.path}: {_short(exc)}"
        status = FAIL if (found.version or 0) > migrations.NEWEST else WARN if found.pending else OK
        return status, migrations.describe(found)

    def _open_lake(self) -> tuple[str, str]:
        assert self._lake is not None
        where = self.config.describe()
        try:
            self.con = self._lake.cursor()
            self.con.execute("SET TimeZone = 'UTC'")
            tables = {
                r[0]
                for r in self.con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'lake'"
                ).fetchall()
            }
            snapshot = self.con.execute("SELECT max(snapshot_id) FROM ducklake_snapshots('lake')").fetchone()[0]
        except WarehouseUnavailable as exc:  # catalog unreachable, wrong password, missing variable
            self.close()
            return FAIL, str(exc)
        except Exception as exc:  # attached, but not a DuckLake catalog of ours; a missing extension package
            self.close()
            return FAIL, f"cannot read {where}: {_short(exc, 200)}"
        return self._tables_row(f"{where} attached read-only", tables, f", snapshot {snapshot}")

    @staticmethod
    def _tables_row(where: str, tables: set[str], extra: str) -> tuple[str, str]:
        missing = sorted(NEEDED - tables)
        if missing:
            return WARN, f"{where}, but has no {', '.join(missing)} table yet"
        return OK, f"{where}; {len(tables)} tables{extra}"

    def newest(self, table: str, column: str, timeframe: str, model: str | None = None) -> dict[str, datetime]:
        if self.con is None:
            return {}
        sql = f"SELECT symbol, max({column}) FROM {table} WHERE timeframe = ?"
        params: list[Any] = [timeframe]
        if model:
            sql += " AND model = ?"
            params.append(model)
        try:
            rows = self.con.execute(sql + " GROUP BY symbol", params).fetchall()
        except Exception:  # table absent: reported by open()
            return {}
        return {sym: ts.astimezone(timezone.utc) for sym, ts in rows if ts is not None}

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        if self._lake is not None:
            self._lake.close()
