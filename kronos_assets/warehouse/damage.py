"""A damaged warehouse file, told apart from a busy one, and said in one line that names the file and the fix.

DuckDB reports a truncated file, garbage bytes or a bad checksum as an ``IOException`` like the lock conflict of
a file another process writes; only the text tells them apart. A lock conflict is waited for; damage never heals
by waiting, so it is raised at once as ``DamagedWarehouse``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

# DuckDB 1.x's words for a file another process holds (its damage messages also contain "lock", in "block").
LOCK_SIGNS = ("could not set lock on file", "conflicting lock is held")
# DuckDB's words for damage, and what they mean for the reader.
DAMAGE_SIGNS = {
    "not a valid duckdb database file": "not a DuckDB database file: garbage or zeros where its header belongs",
    "could not read enough bytes": "shorter than its own index says: truncated",
    "database file is too small": "shorter than its own index says: truncated",
    "corrupt database file": "a block's checksum does not match: bytes changed on disk",
    "does not match stored checksum": "a block's checksum does not match: bytes changed on disk",
}
BACKUP_HINT = "restore the newest `kronos-assets backup` (README: Backup and restore)"


class DamagedWarehouse(RuntimeError):
    """The warehouse file cannot be read as a DuckDB database; the message names it and what to do."""

    def __init__(self, path: Path, cause: str):
        self.path, self.cause = Path(path), cause
        super().__init__(f"warehouse file {self.path} is damaged ({cause}): move it aside and {BACKUP_HINT}")


def is_lock_conflict(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, duckdb.IOException) and any(sign in text for sign in LOCK_SIGNS)


def damage_cause(exc: BaseException, opening: bool = False) -> str | None:
    """What the damage means, in a few words, when ``exc`` says the file is damaged; else None. While
    ``opening``, a catalog that cannot be deserialised (garbage where metadata belongs) counts as damage too."""
    if not isinstance(exc, duckdb.Error) or is_lock_conflict(exc):
        return None
    text = str(exc).lower()
    for sign, meaning in DAMAGE_SIGNS.items():
        if sign in text:
            return meaning
    if opening and isinstance(exc, (duckdb.SerializationException, duckdb.InternalException)):
        return f"its catalog cannot be read ({' '.join(str(exc).split())[:60]})"
    return None


def damaged(path: Path, exc: BaseException, opening: bool = False) -> DamagedWarehouse | None:
    cause = damage_cause(exc, opening)
    return DamagedWarehouse(path, cause) if cause else None
