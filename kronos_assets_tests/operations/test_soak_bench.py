"""The soak benchmark's bookkeeping (benchmarks/bench_soak.py): how a tick's wall is split by its printed lines,
which runs the daily retention round may prune on the replay clock, and the trend figure issue 25 asks for."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from benchmarks.bench_soak import ReplayClock, phases, slope, stage_of, trend_pct

T0 = datetime(2026, 3, 1, 0, 5, tzinfo=timezone.utc)


def test_phases_split_the_wall_by_the_printed_lines():
    lines = [
        (3.0, "profile demo (...)"),
        (3.1, "full Dagster log: ..."),
        (8.0, "[run 1] BTC/USDT, ETH/USDT 1h: candles 2026-02-28..2026-03-01 (2 symbol-days not stored whole)"),
        (10.0, "      done in 1.9 s"),
        (10.5, "[run 2] BTC/USDT, ETH/USDT 1h: forecast, score and publish bars ..."),
        (16.0, "      done in 5.4 s"),
        (16.2, "2 runs in 13.0 s"),
    ]
    got = phases(lines, wall=18.0)
    assert got == pytest.approx({"startup_s": 3.0, "planning_s": 5.5, "in_runs_s": 7.5, "end_s": 2.0})
    assert sum(v for k, v in got.items()) == pytest.approx(18.0)


def test_phases_of_a_tick_with_nothing_new():
    lines = [(2.0, "profile demo (...)"), (4.0, "1h: forecasts, scores and publication up to ... already stored")]
    assert phases(lines, wall=5.0) == pytest.approx(
        {"startup_s": 2.0, "planning_s": 2.0, "in_runs_s": 0.0, "end_s": 1.0}
    )


def test_retention_cutoff_follows_the_replay_clock():
    """Runs carry wall-clock times while --now moves an hour a tick: the round prunes the runs of ticks whose
    replay time is more than run_days old, and nothing while no tick is that old."""
    clock = ReplayClock()
    clock.marks = [(T0 - timedelta(days=365), 1000.0)] + [(T0 + i * timedelta(hours=1), 2000.0 + i) for i in range(400)]
    assert clock.wall_cutoff(T0 + timedelta(hours=24) - timedelta(days=14)) == 2000.0  # the pre-grown runs go
    assert clock.wall_cutoff(T0 + timedelta(hours=360) - timedelta(days=14)) == 2000.0 + 24
    fresh = ReplayClock(marks=clock.marks[1:])
    assert fresh.wall_cutoff(T0 + timedelta(hours=24) - timedelta(days=14)) is None


def test_trend_is_the_least_squares_change_over_the_run_in_percent_of_the_mean():
    assert slope([10.0, 11.0, 12.0, 13.0]) == pytest.approx(1.0)
    assert trend_pct([10.0, 11.0, 12.0, 13.0]) == pytest.approx(100 * 3 / 11.5)
    assert trend_pct([12.0, 8.0, 12.0, 8.0, 12.0, 8.0, 12.0, 8.0]) == pytest.approx(
        100 * slope([12.0, 8.0] * 4) * 7 / 10
    )
    assert trend_pct([5.0] * 24) == 0.0


@pytest.mark.parametrize(
    "step, stage",
    [
        ("1h__raw_candles", "candles"),
        ("1h__clean_candles_fresh", "candles"),
        ("1h__forecasts_forecasts_sane", "forecasts"),
        ("1h__evaluations", "evaluations"),
        ("1h__published", "publish"),
        ("1h__track_record", "track_record"),
        ("prune_old_runs", "other"),
    ],
)
def test_steps_count_with_their_stage(step, stage):
    assert stage_of(step) == stage
