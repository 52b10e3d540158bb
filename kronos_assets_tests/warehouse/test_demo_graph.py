"""The whole demo graph (candles, forecasts, scores, track record, publishing) on DuckLake gives the same stored
rows and scores as on the embedded file."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kronos_assets.cli.main_job import run_main_job
from kronos_assets.defs.resources import build_resources
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.helpers import small_settings
from kronos_assets_tests.warehouse.conftest import LakeServers

# Two main-job runs and the lake's servers: slow, so conftest hands the module out early, not last.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
NOW = datetime(2026, 11, 21, 12, 5, tzinfo=timezone.utc)
BARS = 8  # horizon 6: the first forecasts are scored
TABLES = {
    "raw_candles": "symbol, ts",
    "clean_candles": "symbol, ts",
    "forecasts": "symbol, origin, model",
    "forecast_steps": "symbol, origin, model, step",
    "evaluations": "symbol, origin, model, step",
}


def _run(root: Path, warehouse: Warehouse) -> dict:
    settings = small_settings(root, symbols=["BTC/USDT"])  # one series: the whole graph, half the time
    run_main_job(
        settings,
        backfill_bars=BARS,
        now=NOW,
        resources={**build_resources(settings), "warehouse": warehouse},
        log=lambda _: None,
    )
    # provenance carries run-specific paths and times; every number and every other column must match
    return {
        t: warehouse.query(
            f"SELECT * EXCLUDE (provenance) FROM {t} ORDER BY {k}"
            if t == "forecasts"
            else f"SELECT * FROM {t} ORDER BY {k}"
        )
        for t, k in TABLES.items()
    }


def test_demo_graph_scores_the_same_on_ducklake(lake: LakeServers, tmp_path: Path, monkeypatch):
    for k in [k for k in os.environ if k.startswith(("KRONOS_", "R2_", "DAGSTER_HOME"))]:
        if not k.startswith("KRONOS_LAKE_"):
            monkeypatch.delenv(k)
    embedded = _run(tmp_path / "embedded", Warehouse(tmp_path / "embedded" / "home" / "demo" / "warehouse.duckdb"))
    cfg = lake.config()
    lake_rows = _run(tmp_path / "lake", Warehouse(tmp_path / "lake" / "home" / "demo" / "warehouse.duckdb", config=cfg))
    assert embedded["evaluations"].height > 0, "nothing scored: the comparison would be empty"
    for table in TABLES:
        assert lake_rows[table].equals(embedded[table]), table
    assert not (tmp_path / "lake" / "home" / "demo" / "warehouse.duckdb").exists()
    assert lake.parquet_keys(cfg.data_path.removeprefix("s3://kronos-lake/"))
