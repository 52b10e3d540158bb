"""The warehouse file damaged (named at once, never waited on as if it were busy), and backups: consistent while
another process commits, restorable, never of a damaged file, refused for DuckLake naming it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl
import pytest

import kronos_assets.orchestration.backup as orchestration_backup
from kronos_assets.orchestration.backup import BACKUP_FILE, BackupError, backup, restore
from kronos_assets.publishing.store import Artifact, LocalStore
from kronos_assets.warehouse import DamagedWarehouse, Warehouse
from kronos_assets.warehouse.readonly import ReadOnlyWarehouse
from kronos_assets_tests.helpers import small_settings

REPO = Path(__file__).resolve().parents[2]
# A writer subprocess committing beside the backups: slow, so conftest hands the module out early, not last.
pytestmark = pytest.mark.slow
UTC = timezone.utc
DAY0 = datetime(2025, 1, 1, tzinfo=UTC)
WHERE = "symbol = 'BTC/USDT' AND timeframe = '1h' AND ts >= ? AND ts < ?"

# Each commit rewrites one day in raw_candles and clean_candles with the same version number as close: in any
# consistent state both tables hold 24 rows per day and the same close for that day.
WRITER = r"""
import sys, time
from pathlib import Path
from kronos_assets_tests.warehouse.test_backup import write_day
from kronos_assets.warehouse import Warehouse
wh, stop, counter = Warehouse(sys.argv[1], lock_timeout_s=120), Path(sys.argv[2]), Path(sys.argv[3])
version, end = 1, time.monotonic() + 300
while not stop.exists() and time.monotonic() < end:
    write_day(wh, version % 4, float(version))
    with counter.open("a") as fh:
        fh.write(f"{version}\n")
    version += 1
"""


def _day_rows(day: int, close: float) -> dict[str, pl.DataFrame]:
    ts = [DAY0 + timedelta(days=day, hours=h) for h in range(24)]
    base = {
        "symbol": ["BTC/USDT"] * 24,
        "timeframe": ["1h"] * 24,
        "ts": ts,
        "open": [close] * 24,
        "high": [close + 1] * 24,
        "low": [close - 1] * 24,
        "close": [close] * 24,
        "volume": [1.0] * 24,
        "amount": [close] * 24,
        "exchange": ["test"] * 24,
    }
    raw = pl.DataFrame(base, schema_overrides={"ts": pl.Datetime("us", "UTC")})
    clean = raw.with_columns(
        pl.lit(None, pl.Float64).alias("log_return"),
        pl.lit(0.01).alias("log_range"),
        pl.lit(None, pl.Float64).alias("realised_vol"),
        pl.lit(None, pl.Float64).alias("volume_z"),
        pl.lit(0, pl.Int32).alias("bars_missing_before"),
    )
    return {"raw_candles": raw, "clean_candles": clean}


def write_day(wh: Warehouse, day: int, close: float) -> None:
    wh.replace_many(_day_rows(day, close), WHERE, [DAY0 + timedelta(days=day), DAY0 + timedelta(days=day + 1)])


def _consistent(path: Path) -> dict[str, int]:
    """The writer's invariant holds in the file at ``path``; returns its rows per table."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        bad = con.execute("""
            SELECT d, r.n, c.n, r.lo, c.lo FROM
              (SELECT date_trunc('day', ts) AS d, count(*) AS n, min(close) AS lo, max(close) AS hi
               FROM raw_candles GROUP BY d) r
              FULL JOIN
              (SELECT date_trunc('day', ts) AS d, count(*) AS n, min(close) AS lo, max(close) AS hi
               FROM clean_candles GROUP BY d) c
              USING (d)
            WHERE r.n IS DISTINCT FROM 24 OR c.n IS DISTINCT FROM 24 OR r.lo IS DISTINCT FROM c.lo
               OR r.hi <> r.lo OR c.hi <> c.lo""").fetchall()
        assert bad == [], bad
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        con.close()


def _publish(folder: Path) -> dict:
    """A small publication as the publisher leaves it: immutable objects, an alias, the manifest last."""
    store = LocalStore(folder)
    objects = {}
    for key, body in (("index.abc.html", b"<html>dashboard</html>"), ("series/BTC-USDT/1h/latest.abc.json", b"{}")):
        store.put(Artifact.of(key, body, "public, max-age=31536000, immutable"))
        objects[key] = {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
    store.put(Artifact.of("index.html", b"<html>dashboard</html>", "no-cache"))
    manifest = {
        "format": 2,
        "generated_at": "2026-11-21T10:00:00+00:00",
        "profile": "demo",
        "objects": objects,
        "aliases": {"index.html": "index.abc.html"},
        "retired": [],
    }
    store.put(Artifact.of("manifest.json", json.dumps(manifest).encode(), "no-cache"))
    return manifest


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse holding four consistent days, made once for the module (the migrations and commits cost
    seconds); each test works on its own copy (``seeded``)."""
    settings = small_settings(tmp_path_factory.mktemp("seeded"))
    wh = settings.open_warehouse()
    for day in range(4):
        write_day(wh, day, 0.5)
    return settings.warehouse_path


@pytest.fixture
def seeded(seeded_file: Path, tmp_path: Path):
    settings = small_settings(tmp_path)
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(seeded_file, settings.warehouse_path)
    return settings


def test_a_backup_taken_while_another_process_commits_is_consistent_and_restores(seeded, tmp_path):
    settings = seeded
    manifest = _publish(settings.publish_dir)
    stop, counter = tmp_path / "stop", tmp_path / "commits"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(settings.warehouse_path), str(stop), str(counter)],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )

    def commits() -> int:
        return len(counter.read_text().splitlines()) if counter.exists() else 0

    try:
        deadline = time.monotonic() + 120
        while commits() < 3:  # the writer is committing before the first backup starts
            assert writer.poll() is None and time.monotonic() < deadline, writer.stderr and writer.stderr.read()
            time.sleep(0.1)
        results, seen = [], [commits()]
        for _ in range(3):
            results.append(backup(settings, to=tmp_path / "backups", wait_s=120))
            seen.append(commits())
    finally:
        stop.touch()
        _, err = writer.communicate(timeout=180)
    assert writer.returncode == 0, err  # the writer waited for each backup, none of its commits failed
    assert seen[-1] > seen[0], seen  # it kept committing between the backups

    for result in results:
        assert not result.folder.name.startswith(".") and result.folder.parent == tmp_path / "backups"
        record = json.loads((result.folder / BACKUP_FILE).read_text())
        assert _consistent(result.folder / "warehouse.duckdb") == record["warehouse"]["rows"] == result.tables
        assert result.tables["raw_candles"] == result.tables["clean_candles"] == 96
        assert json.loads((result.folder / "publish" / "manifest.json").read_text()) == manifest
        assert (result.folder / "publish" / "index.html").read_bytes() == b"<html>dashboard</html>"
    assert not [p for p in (tmp_path / "backups").iterdir() if p.name.startswith(".")]  # no temporaries left

    # Restore the first backup over a warehouse that has moved on (and whose publication was lost).
    chosen = results[0]
    closes = (
        duckdb.connect(str(chosen.folder / "warehouse.duckdb"), read_only=True)
        .execute("SELECT sum(close) FROM raw_candles")
        .fetchone()[0]
    )
    for path in settings.publish_dir.rglob("*"):
        if path.is_file():
            path.unlink()
    message = restore(settings, chosen.folder)
    assert str(settings.warehouse_path) in message and "moved aside" in message
    assert _consistent(settings.warehouse_path) == chosen.tables
    assert settings.open_warehouse().query("SELECT sum(close) AS s FROM raw_candles")["s"][0] == closes
    assert json.loads((settings.publish_dir / "manifest.json").read_text()) == manifest
    assert (settings.publish_dir / "index.abc.html").read_bytes() == b"<html>dashboard</html>"
    assert list(settings.warehouse_path.parent.glob("warehouse.duckdb.before-restore-*"))  # kept, not deleted


def _damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    if how == "truncated":
        os.truncate(path, size // 3)
    elif how == "garbage":
        path.write_bytes(os.urandom(size))
    else:  # the blocks after the three headers overwritten in place, the size kept: their checksums fail
        with path.open("r+b") as fh:
            fh.seek(3 * 4096)
            fh.write(os.urandom(size - 3 * 4096))


DAMAGES = ["truncated", "garbage", "bad_block"]


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_file_is_named_at_once_with_what_to_do(seeded, monkeypatch, how):
    settings = seeded
    _damage(settings.warehouse_path, how)

    def no_wait(seconds: float) -> None:  # damage is not a lock: waiting never heals it
        raise AssertionError(f"waited {seconds} s on a damaged file as if another process held it")

    monkeypatch.setattr("kronos_assets.warehouse.core.time.sleep", no_wait)
    with pytest.raises(DamagedWarehouse) as caught:
        settings.open_warehouse().query("SELECT count(*) FROM raw_candles")
    text = str(caught.value)
    assert str(settings.warehouse_path) in text and "move it aside" in text and "kronos-assets backup" in text
    assert "\n" not in text

    monkeypatch.setattr("kronos_assets.warehouse.readonly.time.sleep", no_wait)
    ro = ReadOnlyWarehouse(settings.warehouse_path)
    status, detail = ro.open()
    ro.close()
    assert status == "FAIL" and detail == text and ro.damage == text


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_file_is_never_backed_up(seeded, tmp_path, how):
    _damage(seeded.warehouse_path, how)
    with pytest.raises(DamagedWarehouse, match=str(seeded.warehouse_path)):
        backup(seeded, to=tmp_path / "backups")
    assert list((tmp_path / "backups").iterdir()) == []  # nothing half-written left behind


def test_integrity_counts_every_table_of_a_sound_file(seeded):
    ro = ReadOnlyWarehouse(seeded.warehouse_path)
    assert ro.open()[0] == "OK"
    try:
        status, detail = ro.integrity()
    finally:
        ro.close()
    assert status == "OK" and "raw_candles 96" in detail and "clean_candles 96" in detail and ro.damage is None


def test_restore_checks_the_backup_before_touching_anything(seeded, tmp_path):
    result = backup(seeded, to=tmp_path / "backups")
    with (result.folder / "warehouse.duckdb").open("r+b") as fh:  # the backup itself damaged since
        fh.seek(3 * 4096)
        fh.write(os.urandom(4096))
    before = seeded.warehouse_path.read_bytes()
    with pytest.raises(BackupError, match="does not match"):
        restore(seeded, result.folder)
    assert seeded.warehouse_path.read_bytes() == before
    with pytest.raises(BackupError, match="is not a backup"):
        restore(seeded, tmp_path)


def test_restore_waits_for_an_open_connection_and_refuses_past_its_deadline(seeded, tmp_path):
    """A run between two statements holds a connection: restore must not swap the file under it."""
    result = backup(seeded, to=tmp_path / "backups")
    write_day(seeded.open_warehouse(), 0, 9.0)  # the live record moved on since the backup
    before = seeded.warehouse_path.read_bytes()
    with seeded.open_warehouse().connect():
        t0 = time.monotonic()
        with pytest.raises(BackupError, match=r"stayed in use for 1 s \(a run, the daemon, the UI\)"):
            restore(seeded, result.folder, wait_s=1.0)
        assert time.monotonic() - t0 >= 1.0
    assert seeded.warehouse_path.read_bytes() == before  # nothing moved aside or replaced
    assert not list(seeded.warehouse_path.parent.glob("*.before-restore-*"))
    restore(seeded, result.folder, wait_s=1.0)  # once the connection is closed it goes through
    assert seeded.open_warehouse().query("SELECT max(close) AS c FROM raw_candles")["c"][0] == 0.5


def test_a_connection_opened_while_restore_swaps_the_file_waits_and_reads_the_restored_rows(
    seeded, tmp_path, monkeypatch
):
    """Without the lock, a connection opened between 'live moved aside' and 'copy renamed in' creates an empty
    file there (or writes into the one moved aside): its rows would be lost."""
    result = backup(seeded, to=tmp_path / "backups")
    write_day(seeded.open_warehouse(), 0, 9.0)
    real_put_back, seen, done = orchestration_backup.put_back, {}, threading.Event()

    def reader() -> None:
        seen["max"] = seeded.open_warehouse().query("SELECT max(close) AS c FROM raw_candles")["c"][0]
        done.set()

    def slow_put_back(copy: Path, live: Path, suffix: str) -> list[Path]:
        thread = threading.Thread(target=reader)
        thread.start()
        assert not done.wait(1.0), "a connection opened while restore held the warehouse"
        seen["thread"] = thread
        return real_put_back(copy, live, suffix)

    monkeypatch.setattr(orchestration_backup, "put_back", slow_put_back)
    restore(seeded, result.folder)
    seen["thread"].join(timeout=60)
    assert done.is_set() and seen["max"] == 0.5  # it waited, then read the restored file


KILLED_RESTORE = r"""
import os, sys
from pathlib import Path
import kronos_assets.warehouse.backup as wb
from kronos_assets.orchestration.backup import restore
from kronos_assets_tests.helpers import small_settings
settings, real = small_settings(Path(sys.argv[1])), os.replace
def replace(src, dst):
    if Path(dst) == settings.warehouse_path:  # the last step of the swap: killed just before it
        os.kill(os.getpid(), 9)
    real(src, dst)
wb.os.replace = replace
restore(settings, Path(sys.argv[2]))
"""


def test_a_restore_killed_before_its_last_rename_leaves_the_old_record_in_place_and_reruns(seeded, tmp_path):
    """Moving the live file aside before the copy is in would leave no warehouse after a kill: the next run
    would start an empty record. The swap is one rename; the old file is kept under a second name."""
    result = backup(seeded, to=tmp_path / "backups")
    write_day(seeded.open_warehouse(), 0, 9.0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RESTORE, str(tmp_path), str(result.folder)], env=env, cwd=REPO, timeout=120
    )
    assert killed.returncode == -9
    folder = seeded.warehouse_path.parent
    assert seeded.open_warehouse().query("SELECT max(close) AS c FROM raw_candles")["c"][0] == 9.0  # still there
    assert list(folder.glob(".warehouse.duckdb.restore-*"))  # the killed restore's copy
    restore(seeded, result.folder, now=datetime(2026, 12, 7, tzinfo=UTC))  # a plain re-run
    assert seeded.open_warehouse().query("SELECT max(close) AS c FROM raw_candles")["c"][0] == 0.5
    assert not list(folder.glob(".warehouse.duckdb.restore-*"))  # removed, not left to fill the disk
    asides = sorted(folder.glob("warehouse.duckdb.before-restore-*"))
    assert len(asides) == 2  # one per attempt, both the record as it was before
    for aside in asides:
        con = duckdb.connect(str(aside), read_only=True)
        assert con.execute("SELECT max(close) FROM raw_candles").fetchone()[0] == 9.0
        con.close()


def test_a_ducklake_profile_is_refused_naming_its_backend(tmp_path):
    settings = small_settings(
        tmp_path,
        warehouse={
            "backend": "ducklake",
            "data_path": str(tmp_path / "lake"),
            "catalog": {"host": "127.0.0.1", "dbname": "lake", "user": "k"},
        },
    )
    with pytest.raises(BackupError, match=r"DuckLake: catalog postgres://k@127.0.0.1:5432/lake.*pg_dump"):
        backup(settings, to=tmp_path / "backups")
