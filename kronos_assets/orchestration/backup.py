"""``kronos-assets backup`` and ``restore``: the warehouse and the publication, copied consistently while runs may
be writing, into one folder per backup; and put back.

A backup is ``<to>/<UTC time>/`` (``<to>`` defaults to ``<home>/<profile>/backups``) holding

    warehouse.duckdb   a consistent copy (warehouse.backup.copy_warehouse: read-only attach, COPY FROM DATABASE)
    publish/           the manifest and every file it names, each checked against the manifest's sha256
    backup.json        what was copied: rows per table, the files and their sha256, when, from where

It is built under a ``.tmp-`` name, fsynced, and renamed last, so a folder without that prefix is a whole
backup. The publication is copied from one manifest: every file it lists is immutable (content-addressed) or an
alias whose content is that of an immutable file, so a publish running meanwhile changes nothing copied; when
one retires a listed file before it is read, the copy starts again from the newer manifest, within the deadline.

The embedded warehouse only: DuckLake keeps its rows in a PostgreSQL catalog and Parquet files, which are backed
up with PostgreSQL's own tools and the data store's versioning; a backup of such a profile is refused saying so.
No Dagster here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from kronos_assets.base.locks import LockHeld, file_lock
from kronos_assets.configuration.settings import Settings
from kronos_assets.publishing.manifest import IndexDamage, listed_objects
from kronos_assets.publishing.site import MANIFEST_KEY
from kronos_assets.publishing.store import Artifact, LocalStore
from kronos_assets.warehouse.backup import (
    WAIT_S,
    BackupError,
    copy_warehouse,
    fsync_dir,
    fsync_file,
    put_back,
    sha256_of,
    verify_copy,
)
from kronos_assets.warehouse.core import RESTORE_LOCK, connections_lock
from kronos_assets.warehouse.damage import is_lock_conflict

__all__ = ["BackupError", "BackupResult", "backup", "restore"]

WAREHOUSE_FILE, PUBLISH_DIR, BACKUP_FILE = "warehouse.duckdb", "publish", "backup.json"


@dataclass
class BackupResult:
    folder: Path
    tables: dict[str, int]
    published: int  # files of the publication copied (manifest included); 0 when there was none
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        rows = ", ".join(f"{t} {n:,}" for t, n in self.tables.items())
        pub = f"{self.published} published file(s)" if self.published else "no publication"
        return f"{self.folder}: warehouse rows {rows}; {pub}; {self.seconds:.1f} s" + "".join(
            f"\nnote: {n}" for n in self.notes
        )


def _refuse_ducklake(settings: Settings, what: str) -> None:
    if settings.warehouse.backend != "embedded":
        raise BackupError(
            f"{what} covers the embedded DuckDB warehouse; profile {settings.profile} uses "
            f"{settings.warehouse.describe()}"
            ": back up its PostgreSQL catalog with pg_dump and its data path with the store's own versioning or "
            "replication (DuckLake's snapshots keep recent history in place)"
        )


def _write(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    fsync_file(path)


def _copy_publication(publish_dir: Path, dest: Path, deadline: float) -> tuple[dict[str, Any], dict[str, str]]:
    """The manifest and every file it names, into ``dest``; returns the manifest and {key: sha256}. Starts over
    from a newer manifest when a publish retired a listed file meanwhile."""
    manifest_path = publish_dir / MANIFEST_KEY
    while True:
        raw = manifest_path.read_bytes()
        try:
            manifest = json.loads(raw)
            if not isinstance(manifest["objects"], dict):
                raise TypeError("'objects' is not an object")
            aliases: dict[str, str] = manifest.get("aliases", {})
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(
                f"{manifest_path} is unreadable ({type(exc).__name__}): the publication was not "
                "backed up; publish again (kronos-assets run), then back up"
            ) from None
        shutil.rmtree(dest, ignore_errors=True)
        copied: dict[str, str] = {}
        stale = None
        try:  # the head's entries and its index parts' (publishing.manifest), the parts themselves included
            objects = listed_objects(LocalStore(publish_dir), manifest)
        except IndexDamage as exc:
            objects, stale = {}, str(exc)
        for key, entry in objects.items():
            try:
                body = (publish_dir / key).read_bytes()
            except FileNotFoundError:
                stale = f"{key} is gone"
                break
            digest = hashlib.sha256(body).hexdigest()
            if digest != entry.get("sha256"):
                stale = f"{key} does not match the manifest's sha256"
                break
            _write(dest / key, body)
            copied[key] = digest
        if stale is None:
            for alias, target in aliases.items():
                if target not in copied:
                    stale = f"alias {alias} names {target}, which the manifest does not list"
                    break
                shutil.copyfile(dest / target, dest / alias)  # an alias holds its versioned file's bytes
                fsync_file(dest / alias)
                copied[alias] = copied[target]
        if stale is None:
            _write(dest / MANIFEST_KEY, raw)
            copied[MANIFEST_KEY] = hashlib.sha256(raw).hexdigest()
            return manifest, copied
        if time.monotonic() > deadline:
            raise BackupError(f"{publish_dir}: {stale} after every retry (publishes kept replacing the manifest)")
        time.sleep(0.2)  # a publish is retiring files: take its newer manifest


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            fsync_file(Path(folder) / name)
        fsync_dir(Path(folder))


def backup(
    settings: Settings, to: Path | None = None, wait_s: float = WAIT_S, now: datetime | None = None
) -> BackupResult:
    """One new, complete backup folder under ``to`` (default ``<home>/<profile>/backups``)."""
    t0 = time.monotonic()
    _refuse_ducklake(settings, "backup")
    now = now or datetime.now(timezone.utc)
    parent = Path(to) if to else settings.profile_home / "backups"
    parent.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    final = parent / stamp
    n = 1
    while final.exists():  # two backups in one second: never one over the other
        n += 1
        final = parent / f"{stamp}-{n}"
    tmp = parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    notes: list[str] = []
    try:
        tables = copy_warehouse(settings.warehouse_path, tmp / WAREHOUSE_FILE, wait_s)
        files = {WAREHOUSE_FILE: sha256_of(tmp / WAREHOUSE_FILE)}
        manifest: dict[str, Any] | None = None
        if (settings.publish_dir / MANIFEST_KEY).exists():
            manifest, published = _copy_publication(settings.publish_dir, tmp / PUBLISH_DIR, time.monotonic() + wait_s)
            files.update({f"{PUBLISH_DIR}/{k}": v for k, v in published.items()})
        else:  # nothing published here yet, or published to a bucket, which keeps its own copies
            notes.append(f"no publication in {settings.publish_dir} ({MANIFEST_KEY} absent): not backed up")
        record = {
            "format": 1,
            "created_at": now.isoformat(timespec="seconds"),
            "profile": settings.profile,
            "warehouse": {"source": str(settings.warehouse_path), "duckdb": duckdb.__version__, "rows": tables},
            "publication": {
                "source": str(settings.publish_dir),
                "generated_at": manifest.get("generated_at"),
                "objects": len(manifest.get("objects", {})),
            }
            if manifest
            else None,
            "files": files,
        }
        (tmp / BACKUP_FILE).write_text(json.dumps(record, indent=1, sort_keys=True))
        _fsync_tree(tmp)
        os.rename(tmp, final)  # the folder appears whole, or not at all
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BackupResult(final, tables, len(files) - 1, notes, time.monotonic() - t0)


def _read_record(folder: Path) -> dict[str, Any]:
    path = folder / BACKUP_FILE
    try:
        record = json.loads(path.read_text())
        record["files"]  # noqa: B018 - a backup.json without its file list is not ours
        return record
    except FileNotFoundError:
        raise BackupError(
            f"{folder} is not a backup: it has no {BACKUP_FILE} (backups are the folders `kronos-assets backup` prints)"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{path} is unreadable ({type(exc).__name__}): choose another backup") from None


def _refuse_if_held(live: Path) -> None:
    """A process writing the live file would write into the file being set aside: restore refuses then."""
    if not live.exists():
        return
    try:
        duckdb.connect(str(live)).close()
    except duckdb.Error as exc:
        if is_lock_conflict(exc):
            raise BackupError(
                f"{live} is open in another process (a run, the daemon, the UI): stop them, then restore"
            ) from None
        # damaged: nothing can hold it open; put_back keeps it under a second name (never deleted)


def restore(settings: Settings, folder: Path, now: datetime | None = None, wait_s: float = WAIT_S) -> str:
    """Puts a backup back: the warehouse file (the current one and its WAL moved aside, never deleted) and the
    publication (its files, then its manifest last). Every file is checked against backup.json first. The swap
    holds the warehouse's restore lock: it waits up to ``wait_s`` for open connections to close, and connections
    opened meanwhile wait for the restored file."""
    _refuse_ducklake(settings, "restore")
    folder = Path(folder)
    record = _read_record(folder)
    for key, digest in record["files"].items():
        path = folder / key
        if not path.is_file() or sha256_of(path) != digest:
            raise BackupError(
                f"{path} is missing or does not match {folder / BACKUP_FILE}'s sha256: choose another backup"
            )
    tables = verify_copy(folder / WAREHOUSE_FILE)
    if tables != record["warehouse"]["rows"]:
        raise BackupError(
            f"{folder / WAREHOUSE_FILE} holds {tables} rows, {BACKUP_FILE} says "
            f"{record['warehouse']['rows']}: choose another backup"
        )
    live = settings.warehouse_path
    live.parent.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    try:  # no connection of this release opens the file until it is back (core.connections_lock)
        with file_lock(connections_lock(live), wait_s, RESTORE_LOCK):
            _refuse_if_held(live)  # a process of a release without that lock
            moved = put_back(folder / WAREHOUSE_FILE, live, f".before-restore-{stamp}")
    except LockHeld:
        raise BackupError(
            f"{live} stayed in use for {wait_s:.0f} s (a run, the daemon, the UI): stop them, then restore"
        ) from None
    published = 0
    source = folder / PUBLISH_DIR
    if (source / MANIFEST_KEY).is_file():
        manifest = json.loads((source / MANIFEST_KEY).read_text())
        store = LocalStore(settings.publish_dir)
        objects = listed_objects(LocalStore(source), manifest)  # its index parts' entries too
        keys = [*objects, *manifest.get("aliases", {})]  # what a reader follows, before the manifest
        for key in [*keys, MANIFEST_KEY]:
            entry = objects.get(key, {})
            store.put(Artifact.of(key, (source / key).read_bytes(), entry.get("cache_control", "no-cache")))
            published += 1
    aside = f"; moved aside: {', '.join(str(p) for p in moved)}" if moved else ""
    rows = ", ".join(f"{t} {n:,}" for t, n in tables.items())
    return (
        f"restored {live} from {folder} (rows {rows}) and {published} published file(s) into "
        f"{settings.publish_dir}{aside}"
    )
