"""Shared fixtures: the real candles in ../shared/data/candles and a temporary project home per test."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_CANDLES = Path(os.environ.get("KRONOS_SHARED_DIR", REPO.parent / "shared")) / "data" / "candles"


def real_candles(name: str) -> pl.DataFrame:
    """Load one file of ../shared/data/candles as a candle frame, or skip the test saying why."""
    path = SHARED_CANDLES / name
    if not path.is_file():
        pytest.skip(f"real candles {path} are absent (set KRONOS_SHARED_DIR to the shared folder)")
    df = pl.read_csv(path)
    return df.with_columns(
        pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").dt.cast_time_unit("us").alias("ts")
    ).drop("timestamp")


@pytest.fixture
def kronos_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("KRONOS_HOME", str(home))
    return home
