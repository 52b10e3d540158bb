"""Adding a metric is one registry entry: a toy metric registered here reaches an old warehouse's evaluations
through its own migration (filled for the stored forecasts), a new warehouse's columns, the scoreboard rows,
the track record JSON and scoreboard.json's rows, with nothing else changed."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from kronos_assets.evaluation import track_record
from kronos_assets.metrics import registry
from kronos_assets.metrics.registry import Metric
from kronos_assets.publishing import snapshots
from kronos_assets.warehouse import Warehouse, migrations, read_sql
from kronos_assets_tests.warehouse.old_homes import RELEASES, unpack


def _columns(path: Path) -> list[tuple[str, str, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [(r[0], r[1], r[2]) for r in con.execute("DESCRIBE evaluations").fetchall()]
    finally:
        con.close()


@pytest.fixture
def toy(monkeypatch) -> Metric:
    metric = Metric(
        "toy_log_error",
        lambda i: np.abs(np.log(i.median / i.realised)),
        "absolute log error of the median",
        board="toy_log_error_mean",
        better="lower",
        not_null=False,
        since=migrations.NEWEST + 1,
    )
    monkeypatch.setattr(registry, "METRICS", (*registry.METRICS, metric))
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.known())
    monkeypatch.setattr(migrations, "NEWEST", migrations.MIGRATIONS[-1].version)
    return metric


def test_a_registered_toy_metric_reaches_columns_scoreboard_and_json(toy: Metric, tmp_path: Path):
    path = unpack("58da6cc", tmp_path) / RELEASES["58da6cc"] / "warehouse.duckdb"
    wh = Warehouse(path)
    before, after = wh.migrate()
    assert after == toy.since and migrations.MIGRATIONS[-1].name.startswith("evaluations: toy_log_error")
    assert ("toy_log_error", "DOUBLE", "YES") == _columns(path)[-1]
    fresh = tmp_path / "fresh.duckdb"
    Warehouse(fresh).migrate()
    assert _columns(fresh) == _columns(path)  # a new warehouse gets the same column, in the same place
    # Filled for every stored forecast, from its paths: |log(median / realised)|.
    got = wh.query("SELECT median, realised, toy_log_error FROM evaluations")
    assert got.height > 0 and got["toy_log_error"].null_count() == 0
    np.testing.assert_allclose(
        got["toy_log_error"].to_numpy(),
        np.abs(np.log(got["median"].to_numpy() / got["realised"].to_numpy())),
        rtol=1e-12,
    )

    record = track_record.track_record(wh, "1h")
    rows = [r for r in record["scoreboard"] if r["window_name"] == "all" and r["step"] == r["horizon"]]
    assert rows and all("toy_log_error_mean" in r for r in rows)
    for r in rows:
        mine = wh.query(
            "SELECT avg(toy_log_error) AS v FROM evaluations WHERE symbol = ? AND model = ? AND step = horizon",
            [r["symbol"], r["model"]],
        )["v"][0]
        assert r["toy_log_error_mean"] == pytest.approx(mine)
    assert '"toy_log_error_mean"' in json.dumps(record, default=str)
    published = snapshots.scoreboard(wh, "1h")  # scoreboard.json's rows
    assert published and all(r["toy_log_error_mean"] is not None for r in published)
    wh.close()


def test_schema_sql_holds_the_first_metrics_in_registry_order(tmp_path: Path):
    """schema.sql declares the metric columns of the first schema; the registry lists them in the same order,
    types and nullability, then the ones added since (nullable: DuckDB adds no NOT NULL column)."""
    path = tmp_path / "w.duckdb"
    Warehouse(path).migrate()
    cols = _columns(path)
    start = [c[0] for c in cols].index("median")
    want = [(m.name, m.sql_type, "NO" if m.not_null else "YES") for m in registry.metrics()]
    assert cols[start:] == want
    assert "winkler_80" not in read_sql("schema.sql").split("CREATE TABLE IF NOT EXISTS evaluations")[1]
