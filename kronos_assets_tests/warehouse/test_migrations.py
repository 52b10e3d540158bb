"""Schema versions: each migration on a warehouse written by the release that had that schema, a newer schema
refused, a kill -9 or an error inside a migration healed by a plain re-open, and health's view of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pytest

from kronos_assets.warehouse import MigrationFailed, SchemaTooNew, Warehouse, migrations
from kronos_assets.warehouse.readonly import FAIL, OK, WARN, ReadOnlyWarehouse
from kronos_assets_tests.warehouse.old_homes import RELEASES, compared, table_columns, table_digests, unpack

FOUND = {"dbaa304": 1, "58da6cc": 2}  # the schema version each release wrote


def _old_warehouse(commit: str, tmp_path: Path) -> Path:
    return unpack(commit, tmp_path) / RELEASES[commit] / "warehouse.duckdb"


def _columns(path: Path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(
            "SELECT table_name, column_name, ordinal_position, data_type, is_nullable "
            "FROM information_schema.columns WHERE table_catalog = current_database() "
            "ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def _recorded(path: Path) -> list[tuple[int, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("commit", sorted(RELEASES))
def test_release_warehouse_migrates_to_the_newest_keeping_every_row(commit: str, tmp_path: Path):
    path = _old_warehouse(commit, tmp_path)
    before = table_digests(path)
    assert before["forecasts"][0] > 0 and before["evaluations"][0] > 0 and before["raw_candles"][0] > 0
    ro = ReadOnlyWarehouse(path)
    ro.open()
    status, detail = ro.schema()
    ro.close()
    assert status == WARN and f"version {FOUND[commit]} (from before versions were recorded)" in detail
    assert "pending, applied by the next run" in detail

    columns = table_columns(path)
    assert Warehouse(path).migrate() == (FOUND[commit], migrations.NEWEST)

    assert table_digests(path, columns) == before  # every row, as it was (the metric columns added beside)
    fresh = tmp_path / "fresh.duckdb"
    Warehouse(fresh).migrate()
    assert _columns(path) == _columns(fresh)  # the migrated tables are exactly what a new warehouse gets
    versions = [v for v, _ in _recorded(path)]
    assert versions == list(range(FOUND[commit], migrations.NEWEST + 1))
    ro = ReadOnlyWarehouse(path)
    ro.open()
    assert ro.schema() == (OK, f"version {migrations.NEWEST}, the newest")
    ro.close()
    assert Warehouse(path).migrate() == (migrations.NEWEST, migrations.NEWEST)  # current: nothing more written
    assert [v for v, _ in _recorded(path)] == versions


def test_new_warehouse_records_the_newest_version(tmp_path: Path):
    path = tmp_path / "w.duckdb"
    assert Warehouse(path).migrate() == (None, migrations.NEWEST)
    assert _recorded(path) == [(migrations.NEWEST, "created at this version")]


def test_a_newer_schema_is_refused_naming_file_and_versions(tmp_path: Path):
    path = tmp_path / "w.duckdb"
    Warehouse(path).migrate()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations VALUES (?, 'from a newer release', now())", [migrations.NEWEST + 1])
    con.close()
    before = table_digests(path)
    with pytest.raises(SchemaTooNew) as err:
        Warehouse(path).query("SELECT count(*) FROM forecasts")
    assert str(err.value) == (
        f"warehouse {path} has schema version {migrations.NEWEST + 1}, newer than this release "
        f"knows ({migrations.NEWEST}): run the release that wrote it, or upgrade kronos_assets; "
        "nothing was changed"
    )
    assert table_digests(path) == before
    ro = ReadOnlyWarehouse(path)
    ro.open()
    status, detail = ro.schema()
    ro.close()
    assert status == FAIL and f"version {migrations.NEWEST + 1}, newer than this release knows" in detail


def test_a_migration_that_raises_midway_leaves_the_old_version_whole(tmp_path: Path, monkeypatch):
    path = _old_warehouse("dbaa304", tmp_path)
    before = table_digests(path)

    def half(con) -> None:  # the first statement of migration 2 runs, then the second fails
        con.execute("ALTER TABLE forecast_steps ALTER COLUMN mean_volume DROP NOT NULL")
        con.execute("ALTER TABLE no_such_table ALTER COLUMN x DROP NOT NULL")

    broken = tuple(replace(m, apply=half) if m.version == 2 else m for m in migrations.MIGRATIONS)
    monkeypatch.setattr(migrations, "MIGRATIONS", broken)
    with pytest.raises(
        MigrationFailed,
        match=rf"warehouse {path}: migration to schema version 2 .* failed and was "
        r"rolled back, the warehouse is still at version 1: ",
    ):
        Warehouse(path).migrate()
    con = duckdb.connect(str(path), read_only=True)
    assert migrations.state(con) == migrations.SchemaState(1, False)  # not even the first ALTER stayed
    con.close()
    assert table_digests(path) == before
    monkeypatch.undo()
    columns = table_columns(path)
    assert Warehouse(path).migrate() == (1, migrations.NEWEST)
    assert table_digests(path, columns) == before


KILLER = """
import os, signal, sys
from dataclasses import replace
from kronos_assets.warehouse import Warehouse, migrations

where = sys.argv[2]

def die(con):
    if where == "inside 2":  # migration 2's statements ran, its commit did not
        con.execute(migrations.read_sql("migrations/0002_nullable_volume.sql"))
    os.kill(os.getpid(), signal.SIGKILL)

victim = 2 if where == "inside 2" else 3  # "between 2 and 3": 2 committed, 3 never started its work
migrations.MIGRATIONS = tuple(replace(m, apply=die) if m.version == victim else m for m in migrations.MIGRATIONS)
Warehouse(sys.argv[1]).migrate()
"""


@pytest.mark.parametrize("where, left_at", [("inside 2", 1), ("between 2 and 3", 2)])
def test_kill_9_inside_a_migration_loses_nothing_and_a_rerun_heals(where: str, left_at: int, tmp_path: Path):
    path = _old_warehouse("dbaa304", tmp_path)
    before = table_digests(path)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLER), str(path), where], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -9, proc.stderr
    copy = tmp_path / "after_kill.duckdb"  # what the kill left, opened by a reader before any re-run
    shutil.copy(path, copy)
    if path.with_name(path.name + ".wal").exists():
        shutil.copy(path.with_name(path.name + ".wal"), copy.with_name(copy.name + ".wal"))
    con = duckdb.connect(str(copy))
    assert migrations.state(con).version == left_at
    con.close()
    assert table_digests(copy) == before
    columns = table_columns(path)
    assert Warehouse(path).migrate() == (left_at, migrations.NEWEST)  # the plain re-run
    assert table_digests(path, columns) == before
    assert [v for v, _ in _recorded(path)] == list(range(1, migrations.NEWEST + 1))


def test_ducklake_warehouse_from_the_first_release_migrates_in_place(lake, tmp_path: Path):
    """DuckLake runs the same steps: a lake holding dbaa304's tables and rows is brought to the newest version."""
    from kronos_assets.warehouse.backends import Lake
    from kronos_assets_tests.warehouse.old_homes import TABLES

    old = _old_warehouse("dbaa304", tmp_path)
    cfg = lake.config()
    seed = Lake(cfg, tmp_path / "duckdb_extensions")
    con = seed.cursor()
    con.execute(f"ATTACH '{old}' AS fx (READ_ONLY)")
    for (ddl,) in con.execute("SELECT sql FROM duckdb_tables() WHERE database_name = 'fx'").fetchall():
        con.execute(ddl)  # the release's own DDL, NOT NULLs included
    for t in TABLES:
        con.execute(f"INSERT INTO lake.{t} SELECT * FROM fx.{t}")
    con.execute("DETACH fx")

    columns = table_columns(old)

    def lost() -> dict[str, int]:  # in the release's columns (a metric's column is added beside them)
        return {
            t: con.execute(
                f"SELECT count(*) FROM (SELECT {compared(t, columns[t])} FROM lake.{t} EXCEPT ALL "
                f"SELECT {compared(t, columns[t])} FROM fx.{t})"
            ).fetchone()[0]
            for t in TABLES
        }

    wh = Warehouse(tmp_path / "warehouse.duckdb", config=cfg)
    try:
        assert wh.migrate() == (1, migrations.NEWEST)
        nullable = wh.query(
            "SELECT is_nullable FROM information_schema.columns WHERE table_catalog = 'lake' AND "
            "table_name = 'forecast_steps' AND column_name = 'mean_volume'"
        )["is_nullable"][0]
        assert nullable == "YES"
        versions = wh.query("SELECT version FROM schema_migrations ORDER BY version")["version"].to_list()
        assert versions == list(range(1, migrations.NEWEST + 1))
    finally:
        wh.close()
    con.execute(f"ATTACH '{old}' AS fx (READ_ONLY)")
    assert lost() == {t: 0 for t in TABLES}  # every row kept
    con.close()
    seed.close()


@pytest.mark.parametrize("commit", sorted(RELEASES))
def test_the_metric_migration_scores_the_stored_forecasts_for_the_new_columns(commit: str, tmp_path: Path):
    """Migration 4 adds winkler_80 and p_up_hit to an old warehouse's evaluations and fills them from the stored
    sample paths and realised closes: the 80 % band's interval score and the P(up) call's hit, computed here by
    hand from the same rows."""
    path = _old_warehouse(commit, tmp_path)
    Warehouse(path).migrate()
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT e.step, e.realised, e.winkler_80, e.p_up_hit, f.last_close, "
            "(SELECT list(p.close ORDER BY p.path) FROM forecast_paths p WHERE p.symbol = e.symbol "
            " AND p.timeframe = e.timeframe AND p.origin = e.origin AND p.model = e.model) AS paths "
            "FROM evaluations e JOIN forecasts f USING (symbol, timeframe, origin, model)"
        ).fetchall()
    finally:
        con.close()
    assert len(rows) >= 48
    calls = 0
    for step, realised, wink, hit, last, paths in rows:
        close = np.asarray(paths)[:, step - 1]
        x, y = np.log(close / last), np.log(realised / last)
        lo, hi = np.quantile(x, [0.1, 0.9])
        miss = lo - y if y < lo else y - hi if y > hi else 0.0
        assert wink == pytest.approx((hi - lo) + 10 * miss, rel=1e-12, abs=1e-15)
        p_up = np.mean(close > last)
        if p_up == 0.5:
            assert hit is None
        else:
            calls += 1
            assert hit == float((p_up > 0.5) == (realised > last))
    assert calls > 0
