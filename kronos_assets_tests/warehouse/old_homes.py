"""Homes written by older releases (kronos_assets_tests/fixtures/old_homes, made by its make_fixture.py), unpacked
for a test, and what a test compares before and after an upgrade: every row of every table, every published file."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import duckdb

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "old_homes"
RELEASES = {"dbaa304": ".", "58da6cc": "demo"}  # where each release kept a profile's files, under the home
TABLES = ("raw_candles", "clean_candles", "forecasts", "forecast_steps", "forecast_paths", "evaluations")


def unpack(commit: str, into: Path) -> Path:
    """The release's home, unpacked under ``into``; returns the home."""
    with tarfile.open(FIXTURES / f"{commit}.tar.gz") as tar:
        tar.extractall(into, filter="data")
    return into / "home"


def table_digests(warehouse: Path) -> dict[str, tuple[int, str]]:
    """Per table: its row count and a hash of its rows in a fixed order (content, not storage)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        out = {}
        for t in TABLES:
            rows = con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            out[t] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
        return out
    finally:
        con.close()


def rows_lost(old: Path, new: Path) -> dict[str, int]:
    """Per table, how many rows of ``old`` are not in ``new`` (0 everywhere: every old row kept as it was)."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{old}' AS old (READ_ONLY)")
        con.execute(f"ATTACH '{new}' AS new (READ_ONLY)")
        return {t: con.execute(f"SELECT count(*) FROM (SELECT * FROM old.{t} EXCEPT ALL SELECT * FROM new.{t})")
                .fetchone()[0] for t in TABLES}
    finally:
        con.close()


def file_hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (but the layout's empty lock file) by relative path: its sha256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".layout.lock"}
