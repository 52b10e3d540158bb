"""forecast_paths keeps close as DOUBLE and the other fields as FLOAT (schema version 5): what the writer stores
and summarises, and the migration's kill -9 safety on a warehouse an older release wrote."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pytest

from kronos_assets.evaluation.records import stored_paths
from kronos_assets.forecasting.interface import CLOSE, PATH_FIELDS, VOLUME
from kronos_assets.forecasting.summary import summarise
from kronos_assets.warehouse import Warehouse, migrations
from kronos_assets_tests.warehouse.old_homes import RELEASES, killed_inside, table_columns, table_digests, unpack

FLOAT_VERSION = next(m.version for m in migrations.MIGRATIONS if "as FLOAT" in m.name)


def test_stored_paths_keep_close_exact_and_round_only_the_other_fields():
    rng = np.random.default_rng(3)
    paths = 60000 * np.exp(np.cumsum(rng.normal(0, 0.01, (30, 24, len(PATH_FIELDS))), axis=1))
    paths[..., VOLUME] = rng.lognormal(6, 1, (30, 24))
    kept = stored_paths(paths)
    assert np.array_equal(kept[..., CLOSE], paths[..., CLOSE])  # every score, quantile and P(up) unchanged
    others = [j for j, f in enumerate(PATH_FIELDS) if f != "close"]
    assert np.array_equal(kept[..., others], paths[..., others].astype(np.float32).astype(np.float64))
    assert np.max(np.abs(kept[..., others] / paths[..., others] - 1)) <= 2.0**-24
    last = paths[:, 0, CLOSE] / 1.001
    before, after = (
        summarise(paths[..., CLOSE], paths[..., VOLUME], last),
        summarise(kept[..., CLOSE], kept[..., VOLUME], last),
    )
    assert np.array_equal(before.quantiles, after.quantiles) and before.p_up == after.p_up
    assert np.allclose(after.mean_volume, before.mean_volume, rtol=2.0**-24, atol=0)


def _exact(path: Path) -> tuple[str, str]:
    """forecast_paths' rows, exactly as stored, and the type of its open column."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute("SELECT * FROM forecast_paths ORDER BY ALL").fetchall()
        kind = con.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'forecast_paths' "
            "AND column_name = 'open'"
        ).fetchone()[0]
        return hashlib.sha256(repr(rows).encode()).hexdigest(), kind
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.parametrize("commit", sorted(RELEASES))
def test_kill_9_inside_the_float_migration_leaves_the_doubles_whole_and_a_rerun_converts(commit: str, tmp_path: Path):
    path = unpack(commit, tmp_path) / RELEASES[commit] / "warehouse.duckdb"
    exact = _exact(path)
    assert exact[1] == "DOUBLE[]"
    copy = killed_inside(path, FLOAT_VERSION, tmp_path / "after_kill.duckdb")
    con = duckdb.connect(str(copy))
    assert migrations.state(con).version == FLOAT_VERSION - 1
    con.close()
    assert _exact(copy) == exact  # the old table, every double as it was
    assert Warehouse(path).migrate()[1] == migrations.NEWEST
    assert _exact(path)[1] == "FLOAT[]"
    columns = table_columns(copy)
    assert table_digests(path, columns) == table_digests(copy, columns)  # every row; close exact, the rest at FLOAT
