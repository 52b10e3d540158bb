"""The migrations that create the track record's running aggregates (score_sums, score_bins; final_scores) on a
warehouse of an
older release: filled from its stored scores in one transaction, every published number the same as computed
over every stored score, and a kill -9 inside it healed by a plain re-open."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from kronos_assets.evaluation.track_record import track_record
from kronos_assets.warehouse import Warehouse, migrations
from kronos_assets.warehouse.score_sums import BINS, FINAL, FINAL_SINCE, SUMS
from kronos_assets_tests.evaluate.test_score_sums import assert_fresh, assert_same, whole_table
from kronos_assets_tests.warehouse.old_homes import RELEASES, killed_inside, table_columns, table_digests, unpack

VERSION = next(m.version for m in migrations.MIGRATIONS if m.name.startswith(SUMS))


def _old_warehouse(commit: str, tmp_path: Path) -> Path:
    return unpack(commit, tmp_path) / RELEASES[commit] / "warehouse.duckdb"


@pytest.mark.parametrize("commit", sorted(RELEASES))
def test_the_aggregates_of_an_old_warehouse_give_the_same_record(commit: str, tmp_path: Path):
    path = _old_warehouse(commit, tmp_path)
    columns = table_columns(path)
    before = table_digests(path)
    wh = Warehouse(path)
    wh.migrate()
    assert table_digests(path, columns) == before  # the scores themselves untouched
    assert_fresh(wh)
    record = track_record(wh, "1h")
    assert record["scoreboard"] and record["verdicts"] and record["pit_histogram"]
    assert_same(record, whole_table(wh, "1h"))
    wh.close()


@pytest.mark.parametrize("version, absent", [(VERSION, (SUMS, BINS, FINAL)), (FINAL_SINCE, (FINAL,))])
def test_kill_9_inside_the_migration_leaves_no_aggregates_and_a_rerun_fills_them(
    tmp_path: Path, version: int, absent: tuple[str, ...]
):
    path = _old_warehouse("58da6cc", tmp_path)
    columns = table_columns(path)
    before = table_digests(path)
    copy = killed_inside(path, version, tmp_path / "after_kill.duckdb")
    con = duckdb.connect(str(copy))
    assert migrations.state(con).version == version - 1
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert not tables & set(absent)  # nothing half-made
    con.close()
    assert table_digests(copy, columns) == before  # the migrations before it committed, every score kept
    wh = Warehouse(path)
    assert wh.migrate() == (version - 1, migrations.NEWEST)  # the plain re-run
    assert_fresh(wh)
    assert_same(track_record(wh, "1h"), whole_table(wh, "1h"))
    wh.close()
