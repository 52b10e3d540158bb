"""A consistent copy of the embedded warehouse file while runs may be writing it, and putting one back.

The copy is DuckDB's own ``COPY FROM DATABASE`` from the file attached READ_ONLY into a new file: the read-only
attach holds the file's shared lock, so no writer commits while it is read (writers wait: ``Warehouse`` retries
a held file for its ``lock_timeout_s``), and a backup that finds a writer in the file waits for it within a
deadline. Whatever a crashed writer left in the WAL is read as DuckDB reads it. The copy is written under a
temporary name, its row counts compared with the source's, checkpointed, fsynced, and only then renamed.
A damaged source fails the backup naming the file (``DamagedWarehouse``): a backup never copies damage.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import duckdb

from kronos_assets.base.durable import fsync_dir
from kronos_assets.warehouse.damage import damaged, is_lock_conflict

WAIT_S = 120.0  # how long a backup waits for writers to leave the file (a partition write takes seconds)


class BackupError(RuntimeError):
    pass


def _q(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def row_counts(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, int]:
    """Rows per table of an attached database (tables outside ``main`` as schema.table)."""
    tables = [
        t if s == "main" else f"{s}.{t}"
        for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? "
            "ORDER BY schema_name, table_name",
            [database],
        ).fetchall()
    ]
    return {t: con.execute(f"SELECT count(*) FROM {database}.{t}").fetchone()[0] for t in tables}


def _attach_source(con: duckdb.DuckDBPyConnection, source: Path, wait_s: float) -> None:
    """ATTACH the source READ_ONLY, waiting while a writer holds it; damage is raised at once, named."""
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            con.execute(f"ATTACH {_q(source)} AS src (READ_ONLY)")
            return
        except duckdb.Error as exc:
            if named := damaged(source, exc, opening=True):
                raise named from exc
            if not is_lock_conflict(exc):
                raise BackupError(f"cannot read {source}: {' '.join(str(exc).split())[:200]}") from exc
            if time.monotonic() > deadline:
                raise BackupError(
                    f"{source} stayed held by a writer for {wait_s:g} s: run the backup again when "
                    "the runs have finished (or give it more time with --wait-s)"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def copy_warehouse(source: Path, dest: Path, wait_s: float = WAIT_S) -> dict[str, int]:
    """Copies the warehouse file ``source`` to ``dest`` (which must not exist) consistently; returns the rows
    per table, which the copy is checked to hold."""
    source, dest = Path(source), Path(dest)
    if not source.is_file():
        raise BackupError(f"nothing to back up: {source} does not exist yet")
    if dest.exists():
        raise BackupError(f"{dest} exists already: a backup never overwrites one")
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    for leftover in (tmp, Path(f"{tmp}.wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(":memory:")
    try:
        _attach_source(con, source, wait_s)
        try:
            con.execute(f"ATTACH {_q(tmp)} AS copy")
            con.execute("COPY FROM DATABASE src TO copy")
            counts = row_counts(con, "src")
            copied = row_counts(con, "copy")
        except duckdb.Error as exc:  # a damaged block read during the copy
            if named := damaged(source, exc):
                raise named from exc
            raise
        if copied != counts:
            raise BackupError(f"the copy of {source} holds {copied} rows, the file {counts}: backup abandoned")
        con.execute("CHECKPOINT copy")
        con.execute("DETACH copy")
    except BaseException:
        con.close()
        for leftover in (tmp, Path(f"{tmp}.wal")):
            leftover.unlink(missing_ok=True)
        raise
    con.close()  # releases the source: writers go on
    fsync_file(tmp)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    return counts


def verify_copy(path: Path) -> dict[str, int]:
    """Opens a backed-up file read-only and counts its rows (raises, naming it, when it is damaged)."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise damaged(path, exc, opening=True) or BackupError(f"cannot open {path}: {exc}") from exc
    try:
        return row_counts(con, con.execute("SELECT current_database()").fetchone()[0])
    finally:
        con.close()


def put_back(copy: Path, live: Path, aside_suffix: str) -> list[Path]:
    """Puts the backed-up file ``copy`` in place of ``live`` and returns what was set aside (never deleted).

    The copy goes in under a temporary name and replaces ``live`` by one rename, so a kill at any point leaves a
    whole warehouse at ``live``, the old one or the restored one, never none (where the next run would start an
    empty record). Before that the old file gets a second name (a hard link with ``aside_suffix``) and its WAL is
    moved aside: a WAL left beside the restored file would be replayed into it. The caller holds the restore lock
    and has checkpointed the WAL where it could (opening and closing the file does). A temporary copy left by a
    killed restore is removed first."""
    live = Path(live)
    for stale in live.parent.glob(f".{live.name}.restore-*"):
        stale.unlink()
    tmp = live.with_name(f".{live.name}.restore-{os.getpid()}")
    shutil.copyfile(copy, tmp)
    fsync_file(tmp)
    moved = []
    if live.exists():
        aside = live.with_name(live.name + aside_suffix)
        os.link(live, aside)
        moved.append(aside)
    wal = Path(f"{live}.wal")
    if wal.exists():
        aside = wal.with_name(wal.name + aside_suffix)
        os.replace(wal, aside)
        moved.append(aside)
    fsync_dir(live.parent)
    os.replace(tmp, live)
    fsync_dir(live.parent)
    return moved
