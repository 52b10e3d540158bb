"""The soak benchmark's bookkeeping (benchmarks/bench_soak.py): how a tick's wall is split by its printed lines,
which runs the daily retention round may prune on the replay clock, and the trend figure issue 25 asks for."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from benchmarks.bench_soak import (
    ReplayClock,
    at_constant_speed,
    phases,
    slope,
    speed_summary,
    stage_of,
    trend_pct,
)

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


def _run(n: int, growth: float, drift: float, rng: random.Random) -> list[dict]:
    """A soak of n ticks: the code's own cost (outside the start-up) grows by ``growth`` over the run, the machine
    slows by ``drift`` and has bursts of slowness a few ticks long; the start-up and the rest of each tick both
    move with the machine, each with its own noise."""
    ticks, burst = [], 0
    for i in range(n):
        if burst == 0 and rng.random() < 0.02:
            burst = rng.randint(3, 15)
        speed = (1 + drift * i / n) * (1.4 if burst else 1.0)
        burst = max(0, burst - 1)
        startup = 2.0 * speed * rng.gauss(1, 0.06)
        ticks.append(
            {"startup_s": startup, "wall_s": startup + 10.0 * (1 + growth * i / n) * speed * rng.gauss(1, 0.04)}
        )
    return ticks


def _trends(ticks: list[dict]) -> tuple[float, float]:
    """The raw least-squares trend and the one at constant machine speed (speed_summary's, without its Theil-Sen)."""
    walls = [t["wall_s"] for t in ticks]
    return trend_pct(walls), trend_pct(at_constant_speed(walls, [t["startup_s"] for t in ticks]))


def test_a_drifting_machine_is_taken_out_of_the_trend_and_the_code_s_growth_is_kept():
    rng = random.Random(25)
    raw, adjusted = _trends(_run(720, growth=0.0, drift=0.3, rng=rng))
    assert raw > 20 and abs(adjusted) < 3  # the raw wall blames the code for the machine
    raw, adjusted = _trends(_run(720, growth=0.10, drift=0.0, rng=rng))  # bursts alone tilt the raw line either way
    assert 5 < adjusted < 12  # 10 % of the 10 s outside the start-up: 8.3 % of the wall
    raw, adjusted = _trends(_run(720, growth=0.10, drift=-0.2, rng=rng))  # a machine speeding up hides growth
    assert raw < 0 and 5 < adjusted < 12


def test_the_adjusted_trend_rarely_passes_5_percent_when_nothing_grows():
    """Its false-positive rate under the null (flat code, a machine with bursts and drift), by simulation; the raw
    trend's, for comparison."""
    rng = random.Random(7)
    runs = [_trends(_run(720, 0.0, rng.uniform(-0.3, 0.3), rng)) for _ in range(200)]
    assert sum(abs(adjusted) >= 5 for _, adjusted in runs) <= 4  # at most 2 % of flat runs read as a trend
    assert sum(abs(raw) >= 5 for raw, _ in runs) >= 100  # where the raw line reads one in most


def test_the_summary_of_a_steady_machine_and_of_too_few_ticks():
    ticks = [{"wall_s": 10.0 + 0.01 * i, "startup_s": 2.0} for i in range(100)]
    got = speed_summary(ticks)
    assert got["startup_trend_pct"] == 0.0 and got["startup_rest_correlation"] is None  # nothing moved
    assert got["wall_trend_pct_at_constant_speed"] == pytest.approx(trend_pct([t["wall_s"] for t in ticks]), abs=0.1)
    slow = [{"wall_s": 12.0 * (1 + i / 100), "startup_s": 2.0 * (1 + i / 100)} for i in range(100)]
    got = speed_summary(slow)
    assert got["startup_rest_correlation"] > 0.99 and abs(got["wall_trend_pct_at_constant_speed"]) < 1
    assert speed_summary(ticks[:2]) == {}


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
