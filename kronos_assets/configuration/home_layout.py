"""The home's layout across releases: an older one is moved into the profile's folder before a run uses it.

Up to release dbaa304 a home held one profile's files at its top (``<home>/warehouse.duckdb``, ``publish/``,
``dagster/``, ``uploads/``, ``alerts.jsonl``); since then each profile has its own folder (``<home>/<profile>/``,
settings.Settings.profile_home). A run on an old home would otherwise start an empty record beside the old one.

``adopt`` moves each old entry into the profile's folder by ``os.rename`` (atomic on one file system; the WAL
before its database, so the database is never where the WAL is not), under an exclusive lock on
``<home>/.layout.lock`` so two runs never move at once. A kill between two renames leaves every file whole in
one place or the other, and the next run moves the rest. An entry that exists in both places is never merged or
overwritten: the run refuses with the exact command that sets the old one aside.

Up to release 58da6cc the ``demo`` profile ran on the synthetic market; since then it replays real candles and the
synthetic market has a profile of its own. A record of synthetic candles is that profile's record: it goes to
``<home>/synthetic/`` (``relocate_synthetic`` for a profile folder, ``destination`` for the old top-level layout),
never into a replay or live record, whose price series it would break. It moves whole, by one rename.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from kronos_assets.base.durable import fsync_dir
from kronos_assets.base.locks import file_lock

# The old layout's entries, in the order they move (a WAL before its database).
ENTRIES = (
    "warehouse.duckdb.wal",
    "warehouse.duckdb",
    "publish",
    "dagster",
    "uploads",
    "alerts.jsonl",
    "alerts_posted.jsonl",
)
LOCK_FILE = ".layout.lock"
LOCK_WAIT_S = 60.0
SYNTHETIC = "synthetic"  # the profile (and market) that older releases' demo records belong to
OLD_SYNTHETIC_PROFILE = "demo"  # the profile that ran the synthetic market up to 58da6cc


class LayoutConflict(RuntimeError):
    """Old and new layout both hold an entry: the user chooses; nothing was moved."""


def legacy_entries(home: Path) -> list[Path]:
    """The old layout's entries present at the top of ``home``."""
    return [home / n for n in ENTRIES if (home / n).exists() or (home / n).is_symlink()]


def stored_exchanges(warehouse: Path) -> set[str] | None:
    """Who served the candles stored in ``warehouse`` (None when it is absent, busy, unreadable or holds none)."""
    if not warehouse.is_file():
        return None
    import duckdb

    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return None
    try:
        return {r[0] for r in con.execute("SELECT DISTINCT exchange FROM raw_candles").fetchall()} or None
    except duckdb.Error:
        return None
    finally:
        con.close()


def _synthetic_record(folder: Path) -> bool:
    return stored_exchanges(folder / "warehouse.duckdb") == {SYNTHETIC}


def destination(home: Path, profile_home: Path, market: str) -> Path:
    """Where the old top-level layout goes: the synthetic profile's folder when it holds synthetic candles and this
    profile's market is another, else this profile's folder."""
    if market != SYNTHETIC and _synthetic_record(home):
        return home / SYNTHETIC
    return profile_home


def pending_note(
    home: Path, profile_home: Path, market: str | None = None, demo_market: str | None = SYNTHETIC
) -> str | None:
    """Health's words for an old layout or a synthetic record the next run moves (None when there is none)."""
    notes = []
    if (source := _synthetic_source(home, demo_market)) is not None:
        notes.append(
            f"{source} holds a record of the synthetic market (an older release's demo): the next run moves "
            f"it to {home / SYNTHETIC}"
        )
    old = legacy_entries(home)
    if old:
        target = destination(home, profile_home, market) if market is not None else profile_home
        notes.append(
            f"{', '.join(p.name for p in old)} in {home} (the layout before per-profile folders): the next "
            f"run moves them into {target}"
        )
    return "; ".join(notes) or None


def configured_demo_market(config_dir: Path, profile: str, market: str) -> str | None:
    """The market the demo profile has now: ``market`` when ``profile`` is the demo, else its YAML's ``market:``
    (None when there is no demo profile or it cannot be read)."""
    if profile == OLD_SYNTHETIC_PROFILE:
        return market
    import yaml

    try:
        doc = yaml.safe_load((config_dir / "profiles" / f"{OLD_SYNTHETIC_PROFILE}.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return doc.get("market") if isinstance(doc, dict) else None


def _synthetic_source(home: Path, demo_market: str | None) -> Path | None:
    """<home>/demo when it holds a synthetic record that is no longer the demo's (its market is now another)."""
    if demo_market == SYNTHETIC:  # a demo configured on the synthetic market keeps its own record
        return None
    source = home / OLD_SYNTHETIC_PROFILE
    return source if _synthetic_record(source) else None


def relocate_synthetic(home: Path, demo_market: str | None, lock_wait_s: float = LOCK_WAIT_S) -> Path | None:
    """Moves ``<home>/demo`` to ``<home>/synthetic`` when it holds synthetic candles (the demo of releases up to
    58da6cc) and the demo profile's market (``demo_market``, see configured_demo_market) is now another, whichever
    profile runs; returns the new folder, or None when there was nothing to move."""
    if _synthetic_source(home, demo_market) is None:
        return None
    source, target = home / OLD_SYNTHETIC_PROFILE, home / SYNTHETIC
    with file_lock(home / LOCK_FILE, lock_wait_s, "the layout lock"):
        if _synthetic_source(home, demo_market) is None:  # another run moved it while we waited
            return None
        if target.exists() and not _empty_dir(target):
            aside = home / f"{OLD_SYNTHETIC_PROFILE}-synthetic"
            raise LayoutConflict(
                f"{source} holds a record of the synthetic market (an older release's demo), and {target} is taken; "
                f"nothing was moved. To keep both, run: mv {shlex.quote(str(source))} {shlex.quote(str(aside))}"
            )
        if _empty_dir(target):
            os.rmdir(target)
        os.rename(source, target)
        fsync_dir(home)
        return target


def adopt(home: Path, profile_home: Path, lock_wait_s: float = LOCK_WAIT_S) -> list[str]:
    """Moves the old layout's entries into ``profile_home``; returns the names moved (empty: nothing to do)."""
    if not legacy_entries(home):
        return []
    profile_home.mkdir(parents=True, exist_ok=True)
    with file_lock(home / LOCK_FILE, lock_wait_s, "the layout lock"):
        old = legacy_entries(home)  # again: another run may have moved them while we waited
        clashes = [p for p in old if (profile_home / p.name).exists() and not _empty_dir(profile_home / p.name)]
        if clashes:
            aside = home / "old-layout"
            names = ", ".join(p.name for p in clashes)
            cmd = (
                f"mkdir -p {shlex.quote(str(aside))} && mv "
                + " ".join(shlex.quote(str(p)) for p in clashes)
                + f" {shlex.quote(str(aside))}/"
            )
            raise LayoutConflict(
                f"{names} exist both in {home} (the layout before per-profile folders) and in "
                f"{profile_home}; nothing was moved. To keep {profile_home} and set the old ones "
                f"aside, run: {cmd}"
            )
        moved = []
        for p in old:
            if _empty_dir(profile_home / p.name):  # made by a look before any run (nothing in it to keep)
                os.rmdir(profile_home / p.name)
            os.rename(p, profile_home / p.name)
            moved.append(p.name)
        fsync_dir(profile_home)
        fsync_dir(home)
        return moved


def _empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
