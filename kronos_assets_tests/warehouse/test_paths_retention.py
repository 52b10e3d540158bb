"""Retention of sample paths (warehouse/paths_retention.py): only scored forecasts past the days lose their paths,
and only their paths; scoring afterwards keeps their scores; a kill -9 inside a round loses nothing that stays;
the daily maintenance job runs it on the embedded file too."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from kronos_assets.base.config_files import ConfigError
from kronos_assets.configuration.settings import load_settings
from kronos_assets.defs.maintenance import MAINTENANCE_JOB, build_maintenance
from kronos_assets.evaluation.scoring import Scored, score_bars
from kronos_assets.warehouse import Warehouse, WarehouseConfig
from kronos_assets.warehouse.paths_retention import prunable, prune_paths

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
N, H, PATHS = 60, 2, 3  # hourly origins 0..59, 2-step horizon, 3 paths
MODELS = ("m1", "m2")
SCORED = 55  # origins 0..54 are scored; 55..59 wait for their horizon
DAYS = 1  # with origin 59 the newest: origins 0..34 are past it


def _record(path: Path) -> Warehouse:
    """Forecasts of one series at N hourly origins (two models), their candles, and scores of the first SCORED
    origins computed by the real scoring; then origin 10 of m2 loses its scores (as if never scored) and origin
    11 of m2 its last step's (half scored)."""
    wh = Warehouse(path)

    def fill(con) -> None:
        con.execute(
            f"""
            INSERT INTO clean_candles (symbol, timeframe, ts, open, high, low, close, volume, amount, exchange,
                                       log_range, bars_missing_before)
            SELECT 'BTC/USDT', '1h', ?::TIMESTAMPTZ + to_hours(i), c, c, c, c, 1, c, 'x', 0, 0
            FROM (SELECT i, 100 + sin(i) AS c FROM range({N + H}) r(i))""",
            [T0],
        )
        con.execute(
            f"""
            INSERT INTO forecasts SELECT 'BTC/USDT', '1h', ?::TIMESTAMPTZ + to_hours(i), m, {PATHS}, {H},
                100 + sin(i - 1), 0.5, 0.5, 0.01, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ + to_hours(i - 1), 'x', 7, '{{}}',
                '{{}}'
            FROM range({N}) r(i), (SELECT unnest({list(MODELS)}) AS m)""",
            [T0, T0, T0],
        )
        steps = ", ".join(f"100 + sin(i) + {q}" for q in (-3, -2, -1, 0, 1, 2, 3))
        con.execute(
            f"""
            INSERT INTO forecast_steps SELECT 'BTC/USDT', '1h', ?::TIMESTAMPTZ + to_hours(i), m, s,
                ?::TIMESTAMPTZ + to_hours(i + s - 1), {steps}, 100 + sin(i), 100 + sin(i), 1.5, 1.5
            FROM range({N}) r(i), (SELECT unnest({list(MODELS)}) AS m), (SELECT unnest([1, 2]) AS s)""",
            [T0, T0],
        )
        path = "[100 + sin(i) + p * 0.5 + 0.123456789, 100 + sin(i + 1) - p * 0.5 + 0.987654321]"
        con.execute(
            f"""
            INSERT INTO forecast_paths SELECT 'BTC/USDT', '1h', ?::TIMESTAMPTZ + to_hours(i), m, p,
                {path}, {path}, {path}, {path}, [1.1, 2.2], [3.3, 4.4]
            FROM range({N}) r(i), (SELECT unnest({list(MODELS)}) AS m), range({PATHS}) q(p)""",
            [T0],
        )

    wh.transact("test record", fill)
    score_bars(wh, "BTC/USDT", "1h", HOUR, H, [T0 + (i + H - 1) * HOUR for i in range(SCORED)], Scored())
    wh.transact(
        "half-scored",
        lambda con: con.execute(
            "DELETE FROM evaluations WHERE model = 'm2' AND (origin = ? OR (origin = ? AND step = 2))",
            [T0 + 10 * HOUR, T0 + 11 * HOUR],
        ),
    )
    return wh


def _digest(wh: Warehouse, table: str) -> str:
    return hashlib.sha256(repr(wh.query(f"SELECT * FROM {table} ORDER BY ALL").rows()).encode()).hexdigest()


def _kept(wh: Warehouse) -> dict[str, str]:
    return {t: _digest(wh, t) for t in ("forecasts", "forecast_steps", "evaluations", "clean_candles")}


def _paths_per_forecast(wh: Warehouse) -> dict[tuple[int, str], int]:
    """(origin index, model) -> path rows stored, for every forecast (0: pruned)."""
    df = wh.query(
        "SELECT f.origin, f.model, count(p.path) AS n FROM forecasts f LEFT JOIN forecast_paths p "
        "USING (symbol, timeframe, origin, model) GROUP BY ALL"
    )
    return {(int((o - T0) / HOUR), m): n for o, m, n in df.rows()}


def _expected_pruned() -> set[tuple[int, str]]:
    old = {(i, m) for i in range(N) for m in MODELS if T0 + i * HOUR < T0 + (N - 1) * HOUR - timedelta(days=DAYS)}
    return old - {(10, "m2"), (11, "m2")}  # not (wholly) scored: they keep their paths


def test_only_scored_forecasts_past_the_days_lose_their_paths_and_nothing_else(tmp_path: Path):
    wh = _record(tmp_path / "w.duckdb")
    kept = _kept(wh)
    assert prunable(wh, DAYS) == len(_expected_pruned()) == 68

    first = prune_paths(wh, DAYS, deadline_s=0.0, batch=10)  # the deadline passes after the first batch
    assert (first.forecasts, first.rows, first.batches, first.left) == (10, 10 * PATHS, 1, 58)
    assert "58 left for the next round" in first.summary()
    rest = prune_paths(wh, DAYS, deadline_s=600.0, batch=10)
    assert (rest.forecasts, rest.left) == (58, 0) and rest.batches == 6

    per = _paths_per_forecast(wh)
    assert {k for k, n in per.items() if n == 0} == _expected_pruned()
    assert all(n == PATHS for k, n in per.items() if k not in _expected_pruned())  # the rest whole
    assert _kept(wh) == kept  # forecasts, quantiles, scores and candles as they were
    assert prune_paths(wh, DAYS, deadline_s=600.0).forecasts == 0  # nothing more to do


def test_scoring_after_pruning_keeps_the_scores_of_pruned_forecasts(tmp_path: Path):
    """Scoring reads the paths, so it runs before pruning; re-scoring those bars later (a backfill of the
    evaluations) cannot recompute a pruned forecast's scores and keeps them as stored, without calling it missing."""
    wh = _record(tmp_path / "w.duckdb")
    prune_paths(wh, DAYS, deadline_s=600.0)
    before = _digest(wh, "evaluations")
    scored = Scored()
    score_bars(wh, "BTC/USDT", "1h", HOUR, H, [T0 + (i + H - 1) * HOUR for i in range(SCORED)], scored)
    assert scored.missing == []
    rows = wh.query("SELECT count(*) AS n FROM evaluations")["n"][0]
    assert rows == SCORED * len(MODELS) * H  # every forecast scored at every step: pruned ones kept theirs
    # m2's two half-scored forecasts kept their paths and are scored whole now; the rest is as it was
    assert (
        wh.query(
            "SELECT count(*) AS n FROM (SELECT * FROM evaluations WHERE NOT (model = 'm2' AND origin IN (?, ?)))",
            [T0 + 10 * HOUR, T0 + 11 * HOUR],
        )["n"][0]
        == rows - 2 * H
    )
    assert _digest(wh, "evaluations") != before  # (the two are new)
    score_bars(wh, "BTC/USDT", "1h", HOUR, H, [T0 + (i + H - 1) * HOUR for i in range(SCORED)], Scored())
    again = _digest(wh, "evaluations")
    score_bars(wh, "BTC/USDT", "1h", HOUR, H, [T0 + (i + H - 1) * HOUR for i in range(SCORED)], Scored())
    assert _digest(wh, "evaluations") == again  # idempotent with pruned forecasts in the bars


KILLER = """
import os, signal, sys
from kronos_assets.warehouse import core
from kronos_assets.warehouse.paths_retention import prune_paths

commits = 0
real = core._commit

def commit(con):  # the third batch has deleted its rows; the kill comes before its commit
    global commits
    commits += 1
    if commits == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    real(con)

core._commit = commit
prune_paths(core.Warehouse(sys.argv[1]), int(sys.argv[2]), deadline_s=600.0, batch=10)
"""


@pytest.mark.slow
def test_kill_9_inside_a_round_loses_nothing_that_stays_and_the_next_round_finishes(tmp_path: Path):
    path = tmp_path / "w.duckdb"
    wh = _record(path)
    kept = _kept(wh)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLER), str(path), str(DAYS)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr
    per = _paths_per_forecast(Warehouse(path))
    gone = {k for k, n in per.items() if n == 0}
    assert len(gone) == 20 and gone <= _expected_pruned()  # two batches committed, the third rolled back whole
    assert all(n == PATHS for k, n in per.items() if k not in gone)
    wh = Warehouse(path)
    assert _kept(wh) == kept
    assert prune_paths(wh, DAYS, deadline_s=600.0).forecasts == len(_expected_pruned()) - 20
    assert {k for k, n in _paths_per_forecast(wh).items() if n == 0} == _expected_pruned()


def test_the_daily_maintenance_job_prunes_paths_on_the_embedded_file(tmp_path: Path):
    assert not list(build_maintenance(WarehouseConfig(), None).jobs or [])  # every path kept: no job
    wh = _record(tmp_path / "w.duckdb")
    defs = dg.Definitions.merge(build_maintenance(WarehouseConfig(), DAYS), dg.Definitions(resources={"warehouse": wh}))
    assert defs.resolve_schedule_def(f"{MAINTENANCE_JOB}_schedule").cron_schedule == "37 3 * * *"
    result = defs.resolve_job_def(MAINTENANCE_JOB).execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    counts = result.output_for_node("maintain_warehouse")
    assert counts == {"paths_forecasts_pruned": 68, "paths_rows_deleted": 68 * PATHS, "paths_left": 0}


def test_the_profile_sets_the_days_and_a_bad_value_is_named(tmp_path: Path):
    configs = tmp_path / "configs"
    shutil.copytree(Path(__file__).resolve().parents[2] / "configs", configs)
    assert load_settings("demo", config_dir=configs, home=tmp_path / "h").retention_paths_days is None  # keep all
    profile = configs / "profiles" / "demo.yaml"
    text = profile.read_text()
    profile.write_text(text + "retention: {paths_days: 90}\n")
    assert load_settings("demo", config_dir=configs, home=tmp_path / "h").retention_paths_days == 90
    profile.write_text(text + "retention: {paths_days: 0}\n")
    with pytest.raises(
        ConfigError, match=r"demo.yaml: retention.paths_days: must be a whole number in 1..36500, got 0"
    ):
        load_settings("demo", config_dir=configs, home=tmp_path / "h")
