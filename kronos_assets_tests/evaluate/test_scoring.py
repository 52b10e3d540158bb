"""Scoring stored forecasts (evaluation.scoring, what the evaluations asset runs): each bar's forecasts are
scored once, re-scoring replaces them, a bar whose horizon has not closed is refused with nothing written, and a
forecast missing after the first one is reported."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb
import pytest

from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.partitions import RANGE_END, RANGE_START, bar_key, day_key
from kronos_assets.evaluation.scoring import HorizonNotClosed, Scored, score_bars
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.helpers import small_settings

HOUR = timedelta(hours=1)
LAST = datetime(2025, 3, 10, 12, tzinfo=timezone.utc)
FIRST = LAST - 5 * HOUR
BTC = "BTC/USDT"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Warehouse, int]:
    """Forecasts of bars FIRST..LAST (no scores), candles up to the end of LAST's day; and the horizon."""
    settings = small_settings(tmp_path_factory.mktemp("scoring"))
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    for job, start, end, assets in (
        ("candles_1h", day_key(BTC, FIRST - timedelta(days=3)), day_key(BTC, LAST), None),
        ("forecast_1h", bar_key(BTC, FIRST), bar_key(BTC, LAST), [dg.AssetKey(["1h", "forecasts"])]),
    ):
        assert (
            defs.resolve_job_def(job)
            .execute_in_process(
                instance=instance, tags={RANGE_START: str(start), RANGE_END: str(end)}, asset_selection=assets
            )
            .success
        )
    return Warehouse(settings.warehouse_path), settings.timeframes[0].horizon


def _evaluations(wh: Warehouse) -> list[tuple]:
    return wh.query("SELECT origin, model, step, crps FROM evaluations ORDER BY ALL").rows()


def test_scores_once_and_rescoring_replaces(warehouse):
    wh, h = warehouse
    models = wh.query("SELECT count(DISTINCT model) AS n FROM forecasts")["n"][0]
    # Forecast bar b has origin b + 1 bar; its last horizon bar is b + h bars.
    bars = [FIRST + (h + i) * HOUR for i in range(6)]
    first = Scored()
    score_bars(wh, BTC, "1h", HOUR, h, bars, first)
    assert first.forecasts == 6 * models and first.missing == []
    stored = _evaluations(wh)
    assert len(stored) == 6 * models * h
    again = Scored()
    score_bars(wh, BTC, "1h", HOUR, h, bars, again)
    assert again.forecasts == first.forecasts and _evaluations(wh) == stored


def test_open_horizon_is_refused_and_nothing_is_written(warehouse):
    wh, h = warehouse
    before = _evaluations(wh)
    tomorrow = LAST.replace(hour=0) + timedelta(days=1, hours=2)  # its day was never fetched
    with pytest.raises(HorizonNotClosed, match=re.escape(f"bar {tomorrow} has not closed")):
        score_bars(wh, BTC, "1h", HOUR, h, [LAST + h * HOUR, tomorrow], Scored())
    assert _evaluations(wh) == before


def test_missing_forecast_after_the_first_is_reported(warehouse):
    wh, h = warehouse
    hole = FIRST + 3 * HOUR  # forecast bar; origin one bar later
    with duckdb.connect(str(wh.path)) as con:
        for table in ("forecasts", "forecast_paths"):
            con.execute(f"DELETE FROM {table} WHERE origin = ?", [hole + HOUR])
    scored = Scored()
    before_first = FIRST + (h - 1) * HOUR  # its origin FIRST precedes every stored forecast: never made, not missing
    score_bars(wh, BTC, "1h", HOUR, h, [before_first, hole + h * HOUR], scored)
    assert scored.missing == [f"{BTC} {hole + HOUR:%Y-%m-%d %H:%M}"] and scored.forecasts == 0
