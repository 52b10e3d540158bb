"""The track record's running aggregates (warehouse/score_sums.py, and final_scores): equal to a recomputation from
every stored
score after scoring in several runs, after a forecast is made again and rescored, and after paths are pruned; and
the track record computed from them equal to the one computed over every stored score (the SQL files' whole-table
queries), windows cut mid-day included."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from kronos_assets.evaluation.track_record import (
    DM_WINDOWS,
    VERDICT_WINDOW,
    confidence_tables,
    dm_table,
    scoreboard_sql,
    track_record,
    verdicts,
    window_floor,
)
from kronos_assets.warehouse import Warehouse, json_rows, read_sql
from kronos_assets.warehouse.paths_retention import prune_paths
from kronos_assets.warehouse.score_sums import (
    BINS,
    FINAL,
    MONTHS,
    SUMS,
    bins_select,
    finals_select,
    months_select,
    sums_select,
)
from kronos_assets_tests.evaluate.planted import HOUR, T0, plant, score

SYMBOLS = ("BTC/USDT", "ETH/USDT")
ORIGINS, H, PATHS = 80, 3, 7  # 80 hourly origins (3.3 days) of each series, 3-bar horizon


def whole_table(wh: Any, timeframe: str, as_of: datetime | None = None) -> dict[str, Any]:
    """The track record as computed before the running aggregates: every query over every stored score."""
    as_of = as_of or wh.query("SELECT max(origin) AS t FROM evaluations WHERE timeframe = ?", [timeframe])["t"][0]
    params = {"timeframe": timeframe}
    by_window = {w: verdicts(wh, timeframe, days) for w, days in DM_WINDOWS.items()}
    return {
        "timeframe": timeframe,
        "as_of": as_of.isoformat(),
        "scoreboard": json_rows(wh.query(scoreboard_sql(), params | {"as_of": as_of})),
        "verdicts": by_window[VERDICT_WINDOW],
        "dm_tests": [row for w, rows in by_window.items() for row in dm_table(rows, w)],
        "reliability": json_rows(wh.query(read_sql("reliability.sql"), params)),
        "pit_histogram": json_rows(wh.query(read_sql("pit_histogram.sql"), params)),
        "direction_by_confidence": confidence_tables(wh, timeframe),
    }


def assert_same(got: Any, want: Any, where: str = "record") -> None:
    """Equal structures; floats to 1e-12 relative (sums in another order), everything else exactly."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), (where, sorted(set(got) ^ set(want)))
        for k in want:
            assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (where, len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert isinstance(got, (float, int)), (where, got, want)
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-12, abs=1e-15), (
            where,
            got,
            want,
        )
    else:
        assert got == want, (where, got, want)


def assert_fresh(wh: Warehouse) -> None:
    """The stored aggregates equal the same aggregates computed now from every stored score."""
    for table, select in (
        (SUMS, sums_select("TRUE")),
        (BINS, bins_select("TRUE")),
        (MONTHS, months_select("TRUE")),
        (FINAL, finals_select("TRUE")),
    ):
        stored = wh.query(f"SELECT * FROM {table} ORDER BY ALL")
        fresh = wh.query(f"SELECT * FROM ({select}) ORDER BY ALL")
        assert stored.height > 0
        assert_same(stored.to_dicts(), fresh.to_dicts(), table)


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    wh = Warehouse(tmp_path / "w.duckdb")
    plant(wh, ORIGINS, H, PATHS, SYMBOLS)
    return wh


def test_the_sums_follow_scoring_in_runs_a_remade_forecast_and_pruning(wh: Warehouse):
    for first, last in ((0, 20), (21, 50), (51, ORIGINS - 1)):  # three runs, each its own days
        for symbol in SYMBOLS:
            score(wh, symbol, first, last, H)
        assert_fresh(wh)
    assert wh.query(f"SELECT count(DISTINCT month) AS n FROM {MONTHS}")["n"][0] == 2  # February and March
    score(wh, SYMBOLS[0], 30, 40, H)  # the same bars again: the same sums
    assert_fresh(wh)
    before = track_record(wh, "1h")

    # A forecast made again (as the forecast step does: its row and paths replaced, its scores deleted in one
    # transaction), then rescored by the evaluations step.
    origin = T0 + 45 * HOUR

    def remake(con) -> None:
        con.execute(
            "DELETE FROM evaluations WHERE symbol = ? AND origin = ? AND model = 'kronos'", [SYMBOLS[1], origin]
        )
        con.execute(
            "UPDATE forecast_paths SET close = list_transform(close, c -> c * 1.02) WHERE symbol = ? "
            "AND origin = ? AND model = 'kronos'",
            [SYMBOLS[1], origin],
        )

    wh.transact("remade forecast", remake)
    score(wh, SYMBOLS[1], 45, 45, H, models=["kronos"])
    assert_fresh(wh)
    after = track_record(wh, "1h")
    assert after["scoreboard"] != before["scoreboard"]  # the new scores count, the old ones are gone
    assert_same(after, whole_table(wh, "1h"))

    # Paths pruned past a day: the scores (and so the sums) stay, rescoring keeps them.
    assert prune_paths(wh, 1, deadline_s=600.0).forecasts > 0
    for symbol in SYMBOLS:
        score(wh, symbol, 0, ORIGINS - 1, H)
    assert_fresh(wh)
    assert_same(track_record(wh, "1h"), after)


@pytest.mark.parametrize(
    "as_of",
    [None, T0 + timedelta(days=7, hours=41, minutes=17), T0 + timedelta(days=8), T0 + timedelta(days=30, hours=20)],
)
def test_the_track_record_from_the_sums_equals_the_whole_table_one(wh: Warehouse, as_of: datetime | None):
    """Windows cut mid-day (the 7-day window of the second as_of starts at T0 + 41:17), at midnight (the third) and
    at the first origins (the fourth's 30-day window): the same rows and numbers, to 1e-12."""
    for symbol in SYMBOLS:
        score(wh, symbol, 0, ORIGINS - 1, H)
    got, want = track_record(wh, "1h", as_of), whole_table(wh, "1h", as_of)
    assert_same(got, want)
    windows = {(r["window_name"], r["n_forecasts"]) for r in got["scoreboard"] if r["step"] == H}
    if as_of == T0 + timedelta(days=7, hours=41, minutes=17):
        assert ("7d", ORIGINS - 42) in windows  # origins after T0 + 41:17 only
    assert got["verdicts"] and got["reliability"] and got["pit_histogram"] and got["direction_by_confidence"]
    assert {r["model"] for r in got["direction_by_confidence"]} == {"kronos", "kronos_small", "random_walk_vol"}


def test_the_verdicts_read_only_their_window(wh: Warehouse):
    """The 30-day verdicts skip older scores (the floor) with the same result as reading every score."""
    for symbol in SYMBOLS:
        score(wh, symbol, 0, ORIGINS - 1, H)

    def shift(con) -> None:  # a year-old copy of every score: outside every 30-day window
        cols = [r[0] for r in con.execute("DESCRIBE evaluations").fetchall()]
        sel = ", ".join(f"{c} - INTERVAL 365 DAY" if c in ("origin", "ts", "scored_bar") else c for c in cols)
        con.execute(f"INSERT INTO evaluations SELECT {sel} FROM evaluations")
        fc = [r[0] for r in con.execute("DESCRIBE forecasts").fetchall()]
        sel = ", ".join(f"{c} - INTERVAL 365 DAY" if c == "origin" else c for c in fc)
        con.execute(f"INSERT INTO forecasts SELECT {sel} FROM forecasts")

    wh.transact("old copies", shift)
    seen: list[str] = []

    class Spy:  # the warehouse, noting the SQL it is sent
        def query(self, sql: str, params: Any = None) -> pl.DataFrame:
            seen.append(sql)
            return wh.query(sql, params)

    floor = window_floor(wh, "1h", 30)
    assert floor is not None and T0 - timedelta(days=30) < floor < T0
    assert_same(verdicts(Spy(), "1h", 30, floor=floor), verdicts(wh, "1h", 30))
    assert seen and all(f"origin > TIMESTAMPTZ '{floor.isoformat()}'" in sql for sql in seen)
    # ... a constant DuckDB prunes row groups on: the year-old copies are filtered out while scanning
    plan = wh.query(
        "EXPLAIN " + seen[0].replace("$timeframe", "'1h'").replace("$scored_before", "NULL").replace("$days", "30")
    )
    assert "origin>" in "".join(plan.to_series(1).to_list()).replace(" ", "")


def test_a_forecast_stored_again_leaves_no_stale_sums_before_it_is_rescored(wh: Warehouse):
    """The forecast step's write (records.store_forecasts) deletes the replaced forecasts' scores and refreshes
    their days' sums in the same transaction: a track record read before the rescoring counts no old score."""
    from kronos_assets.evaluation.records import FORECAST_TABLES, store_forecasts

    for symbol in SYMBOLS:
        score(wh, symbol, 0, ORIGINS - 1, H)
    origins = [T0 + k * HOUR for k in (44, 45)]
    key = "symbol = ? AND timeframe = '1h' AND model = 'kronos' AND origin IN (SELECT unnest(?::TIMESTAMPTZ[]))"
    frames = {t: wh.query(f"SELECT * FROM {t} WHERE {key}", [SYMBOLS[1], origins]) for t in FORECAST_TABLES}
    assert frames["forecasts"].height == 2
    store_forecasts(wh, frames, SYMBOLS[1], "1h", "kronos", origins)
    assert wh.query(f"SELECT count(*) AS n FROM evaluations WHERE {key}", [SYMBOLS[1], origins])["n"][0] == 0
    assert_fresh(wh)  # before any rescoring
    assert_same(track_record(wh, "1h"), whole_table(wh, "1h"))


def test_the_scores_digest_follows_the_final_step_scores_through_their_monthly_sums(wh: Warehouse):
    from kronos_assets.orchestration.incremental import scores_digest

    for symbol in SYMBOLS:
        score(wh, symbol, 0, ORIGINS - 1, H)
    first = scores_digest(wh, "1h")
    score(wh, SYMBOLS[0], 10, 20, H)  # the same bars again: the same scores, the same digest
    assert scores_digest(wh, "1h") == first
    assert scores_digest(wh, "1h", [SYMBOLS[1]]) != first
    origin = T0 + 45 * HOUR
    wh.transact(
        "remade",
        lambda con: con.execute(
            "UPDATE forecast_paths SET close = list_transform(close, c -> c * 1.02) WHERE symbol = ? AND origin = ? "
            "AND model = 'kronos'",
            [SYMBOLS[1], origin],
        ),
    )
    score(wh, SYMBOLS[1], 45, 45 + H, H, models=["kronos"])  # its scores change
    assert scores_digest(wh, "1h") != first
