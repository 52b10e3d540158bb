"""Homes written by older releases (kronos_assets_tests/fixtures/old_homes, made by its make_fixture.py), unpacked
for a test, and what a test compares before and after an upgrade: every row of every table, every published file."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import duckdb

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "old_homes"
RELEASES = {"dbaa304": ".", "58da6cc": "demo"}  # where each release kept a profile's files, under the home
TABLES = ("raw_candles", "clean_candles", "forecasts", "forecast_steps", "forecast_paths", "evaluations")
CANDLES = ("raw_candles", "clean_candles")
# Kept at FLOAT precision since schema version 5 (migrations/0005_float_path_fields.sql): compared at that precision
AT_FLOAT = {"forecast_paths": ("open", "high", "low", "volume", "amount")}


def compared(table: str, columns: list[str]) -> str:
    """A select list of ``columns``, each at the precision the newest schema keeps it."""
    return ", ".join(f"CAST({c} AS FLOAT[]) AS {c}" if c in AT_FLOAT.get(table, ()) else c for c in columns)


def unpack(commit: str, into: Path) -> Path:
    """The release's home, unpacked under ``into``; returns the home."""
    with tarfile.open(FIXTURES / f"{commit}.tar.gz") as tar:
        tar.extractall(into, filter="data")
    return into / "home"


def table_columns(warehouse: Path) -> dict[str, list[str]]:
    """Per table, its columns in order."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {t: [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()] for t in TABLES}
    finally:
        con.close()


def table_digests(warehouse: Path, columns: dict[str, list[str]] | None = None) -> dict[str, tuple[int, str]]:
    """Per table: its row count and a hash of its rows in a fixed order (content, not storage). ``columns``: per
    table, the columns hashed (an older release's, which a migration keeps as they were while it adds new ones);
    None: all. The fields kept as FLOAT since version 5 are hashed at FLOAT precision (``AT_FLOAT``)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        out = {}
        for t in TABLES:
            cols = compared(t, columns[t] if columns else [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()])
            rows = con.execute(f"SELECT {cols} FROM {t} ORDER BY ALL").fetchall()
            out[t] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
        return out
    finally:
        con.close()


def rows_lost(old: Path, new: Path, refreshed_days: bool = False) -> dict[str, int]:
    """Per table, how many rows of ``old`` are not in ``new`` (0 everywhere: every old row kept as it was, in the
    old columns; columns added since, such as a new metric's, are not compared). ``refreshed_days``: the candles of
    days the old record did not hold whole are compared by key only. A run fetches such a day again and, by design,
    a bar that comes back replaces its stored copy (ingest: an exchange's correction lands), and the synthetic
    market of the fixtures' releases drew other prices than today's."""
    cols = table_columns(old)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"ATTACH '{old}' AS old (READ_ONLY)")
        con.execute(f"ATTACH '{new}' AS new (READ_ONLY)")
        out = {}
        for t in TABLES:
            picked = compared(t, cols[t])
            if refreshed_days and t in CANDLES:
                assert con.execute(f"SELECT count(*) FROM old.{t} WHERE timeframe <> '1h'").fetchone()[0] == 0
                whole = (
                    "(symbol, date_trunc('day', ts)) IN (SELECT (symbol, date_trunc('day', ts)) FROM old.raw_candles "
                    "GROUP BY ALL HAVING count(*) = 24)"
                )
                keys = "symbol, timeframe, ts"
                out[t] = con.execute(
                    f"SELECT (SELECT count(*) FROM (SELECT {picked} FROM old.{t} WHERE {whole} EXCEPT ALL "
                    f"SELECT {picked} FROM new.{t})) + (SELECT count(*) FROM (SELECT {keys} FROM old.{t} EXCEPT "
                    f"SELECT {keys} FROM new.{t}))"
                ).fetchone()[0]
            else:
                out[t] = con.execute(
                    f"SELECT count(*) FROM (SELECT {picked} FROM old.{t} EXCEPT ALL SELECT {picked} FROM new.{t})"
                ).fetchone()[0]
        return out
    finally:
        con.close()


def file_hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (but the layout's empty lock file) by relative path: its sha256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".layout.lock"
    }


KILLER = """
import os, signal, sys
from dataclasses import replace
from kronos_assets.warehouse import Warehouse, migrations

victim = int(sys.argv[2])
real = next(m for m in migrations.MIGRATIONS if m.version == victim).apply

def die(con):  # the migration's work ran, its commit did not
    real(con)
    os.kill(os.getpid(), signal.SIGKILL)

migrations.MIGRATIONS = tuple(replace(m, apply=die) if m.version == victim else m for m in migrations.MIGRATIONS)
Warehouse(sys.argv[1]).migrate()
"""


def killed_inside(path: Path, version: int, copy: Path) -> Path:
    """Migrates the warehouse at ``path`` in a process killed (-9) inside the migration to ``version``, after its
    work and before its commit; returns ``copy``: what the kill left (the file and its WAL), for a reader to open
    before any re-run."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLER), str(path), str(version)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr
    shutil.copy(path, copy)
    if path.with_name(path.name + ".wal").exists():
        shutil.copy(path.with_name(path.name + ".wal"), copy.with_name(copy.name + ".wal"))
    return copy
