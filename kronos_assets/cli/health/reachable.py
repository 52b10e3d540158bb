"""health's ``reachable`` rows: the folders, the uploads, the exchanges and the bucket (these two only with
--network), and the Dagster instance."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from kronos_assets.base import environment
from kronos_assets.cli.health.rows import FAIL, OK, SKIP, WARN, Row, listing, short
from kronos_assets.configuration.settings import Settings


def folder_row(item: str, folder: Path, missing_ok: str) -> Row:
    if folder.is_dir():
        if os.access(folder, os.W_OK | os.X_OK):
            return Row("reachable", item, OK, f"{folder} exists and is writable")
        return Row("reachable", item, FAIL, f"{folder} is not writable by this user")
    parent = next((p for p in folder.parents if p.exists()), None)
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        return Row("reachable", item, FAIL, f"{folder} does not exist and {parent} is not writable")
    if folder.exists():
        return Row("reachable", item, FAIL, f"{folder} exists but is not a folder")
    return Row("reachable", item, OK, f"{folder} not created yet; {missing_ok}")


def uploads_row(settings: Settings) -> Row:
    from kronos_assets.market.files import scan_folder

    folder = settings.uploads_dir
    row = folder_row("uploads folder", folder, "the uploaded_candles sensor creates it")
    if row.status != OK or not folder.is_dir():
        return row
    try:
        scan = scan_folder(folder)
    except OSError as exc:
        return Row("reachable", "uploads folder", FAIL, f"cannot list {folder}: {short(exc)}")
    detail = f"{folder}: {len(scan.files)} candle file(s)"
    if scan.skipped:
        return Row(
            "reachable",
            "uploads folder",
            WARN,
            detail + "; skipped " + listing([f"{n}: {why}" for n, why in scan.skipped]),
        )
    return Row("reachable", "uploads folder", OK, detail)


def exchange_rows(settings: Settings, network: bool, now: datetime) -> list[Row]:
    if settings.synthetic:
        return [Row("reachable", "exchanges", OK, "none needed: the synthetic market is generated locally")]
    if settings.replay:
        return [Row("reachable", "exchanges", OK, "none needed: the replay market reads the candle files")]
    if not network:
        return [
            Row(
                "reachable",
                "exchanges",
                SKIP,
                f"{', '.join(e.id for e in settings.exchanges)} not contacted (add --network)",
            )
        ]
    from kronos_assets.market.ccxt_source import CcxtSource

    tf = min(settings.timeframes, key=lambda t: t.bar.seconds)
    step = tf.bar.delta
    symbol = settings.symbols[0]
    rows = []
    for ex in settings.exchanges:
        t0 = time.perf_counter()
        try:
            with CcxtSource.from_settings([ex], max_retries=0, timeout_ms=10_000, max_gap_requests=0) as source:
                frame = source.fetch(symbol, tf.name, now - 3 * step, now, now)
            secs = time.perf_counter() - t0
            if frame.height == 0:
                rows.append(
                    Row(
                        "reachable",
                        f"exchange {ex.id}",
                        WARN,
                        f"answered in {secs:.1f} s but served no {symbol} {tf.name} bar of the last 3",
                    )
                )
            else:
                rows.append(
                    Row(
                        "reachable",
                        f"exchange {ex.id}",
                        OK,
                        f"served {frame.height} {symbol} {tf.name} bar(s) in {secs:.1f} s",
                    )
                )
        except Exception as exc:
            rows.append(Row("reachable", f"exchange {ex.id}", FAIL, short(exc)))
    if rows and all(r.status == FAIL for r in rows):
        return rows
    # One exchange down is what the fallback chain is for: degrade its row to a warning.
    return [
        replace(r, status=WARN, detail=r.detail + " (the chain falls back)") if r.status == FAIL else r for r in rows
    ]


def bucket_row(cfg: Any, network: bool) -> tuple[Row, Any]:
    """The R2 bucket: only contacted with --network. Returns the row and the store (for the manifest) or None."""
    if not network:
        return Row("reachable", "publish bucket", SKIP, f"{cfg.bucket} not contacted (add --network)"), None
    from kronos_assets.defs.resources import r2_store

    try:
        store = r2_store(cfg)
        store.client.head_bucket(Bucket=store.bucket)
        return Row("reachable", "publish bucket", OK, f"{cfg.bucket} at {cfg.endpoint_url} answers"), store
    except Exception as exc:
        return Row("reachable", "publish bucket", FAIL, f"{cfg.bucket}: {short(exc)}"), None


def open_instance(settings: Settings) -> tuple[Any, Row]:
    """The Dagster instance of ``instance_for(settings)`` (or $DAGSTER_HOME's); None when none exists yet."""
    if not environment.dagster_home() and not settings.dagster_home.is_dir():
        return None, Row("reachable", "dagster instance", OK, f"none yet at {settings.dagster_home}: no run recorded")
    from kronos_assets.orchestration.local_instance import instance_for

    try:
        instance = instance_for(settings)
        kind = type(instance.run_storage).__name__.replace("RunStorage", "")
        instance.get_runs_count()
    except Exception as exc:
        why, damaged = instance_failure(settings, exc)
        return None, Row("reachable", "dagster instance", FAIL, why, why if damaged else None)
    where = environment.dagster_home() or str(settings.dagster_home)
    return instance, Row("reachable", "dagster instance", OK, f"{where} ({kind} storage)")


def instance_failure(settings: Settings, exc: BaseException) -> tuple[str, bool]:
    """Why the instance could not be opened, in one line, and whether a file of it is damaged: SQLite says only
    that *a* file is, so the instance's files are looked at to name it and the fix."""
    from kronos_assets.orchestration.instance_files import damaged_file, is_sqlite_damage

    if is_sqlite_damage(exc):
        found = damaged_file(Path(environment.dagster_home() or settings.dagster_home))
        if found is not None:
            return str(found), True
    return f"cannot open: {short(exc)}", False
