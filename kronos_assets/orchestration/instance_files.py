"""The local Dagster instance's SQLite files, and which of them is damaged: asked only once opening or using the
instance failed with an SQLite error (``file is not a database``, ``database disk image is malformed``), which
names no file. No Dagster here: each file is read with sqlite3, read-only.

    <dagster home>/history/runs.db        runs and their tags
    <dagster home>/history/runs/index.db  the event log index: materialisations, checks, pool slots
    <dagster home>/schedules/schedules.db schedule and sensor ticks
    <dagster home>/history/runs/<id>.db   one run's event log
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

MAIN_FILES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")
MAX_RUN_FILES = 200  # a run's own log is looked at newest first, this many at most: the look stays short
FIX = (
    "move it aside (mv {name} {name}.damaged): Dagster starts it afresh on the next run, losing only the run "
    "history it held (the warehouse and the publication keep every row); or put back your copy of it"
)


class DamagedInstanceFile(RuntimeError):
    """One of the instance's SQLite files is damaged; the message names it and what to do."""

    def __init__(self, path: Path, cause: str):
        self.path, self.cause = path, cause
        super().__init__(f"Dagster's {path} is damaged ({cause}): " + FIX.format(name=path.name))


def is_sqlite_damage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: SQLAlchemy keeps the sqlite3 error as ``orig``) is SQLite's word for a
    damaged file, not a busy or full one."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        text = str(err).lower()
        if "file is not a database" in text or "malformed" in text:
            return True
        stack += [getattr(err, "orig", None), err.__cause__, err.__context__]
    return False


def _problem(path: Path) -> str | None:
    """SQLite's complaint about the file, or None when it reads as a consistent database."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        verdict = con.execute("PRAGMA quick_check(1)").fetchone()[0]
        return None if verdict == "ok" else f"quick_check: {verdict}"
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc).lower() or "busy" in str(exc).lower():
            return None  # a writer holds it: busy, not damaged
        return str(exc)
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        con.close()


def damaged_file(dagster_home: Path) -> DamagedInstanceFile | None:
    """The first damaged SQLite file of the instance at ``dagster_home`` (the shared ones first), or None."""
    home = Path(dagster_home)
    runs = home / "history" / "runs"
    run_files = (
        sorted((p for p in runs.glob("*.db") if p.name != "index.db"), key=lambda p: p.stat().st_mtime, reverse=True)
        if runs.is_dir()
        else []
    )
    for path in [home / rel for rel in MAIN_FILES] + run_files[:MAX_RUN_FILES]:
        if path.is_file() and (cause := _problem(path)):
            return DamagedInstanceFile(path, " ".join(cause.split())[:80])
    return None
