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
    speed_probe,
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


def _run(n: int, growth: float, drift: float, rng: random.Random) -> tuple[list[float], list[float]]:
    """A soak of n ticks: the code's own cost grows by ``growth`` over the run, the machine slows by ``drift`` (and
    has bursts of slowness a few ticks long); the wall and the probe both move with the machine, each with its own
    noise."""
    walls, probes, burst = [], [], 0
    for i in range(n):
        if burst == 0 and rng.random() < 0.02:
            burst = rng.randint(3, 15)
        speed = (1 + drift * i / n) * (1.4 if burst else 1.0)
        burst = max(0, burst - 1)
        walls.append(12.0 * (1 + growth * i / n) * speed * rng.gauss(1, 0.04))
        probes.append(0.08 * speed * rng.gauss(1, 0.06))
    return walls, probes


def test_a_drifting_machine_is_taken_out_of_the_trend_and_the_code_s_growth_is_kept():
    rng = random.Random(25)
    walls, probes = _run(720, growth=0.0, drift=0.3, rng=rng)
    assert trend_pct(walls) > 20  # the raw wall blames the code for the machine
    assert abs(trend_pct(at_constant_speed(walls, probes))) < 3
    walls, probes = _run(720, growth=0.10, drift=0.0, rng=rng)  # bursts alone tilt the raw line either way
    assert 7 < trend_pct(at_constant_speed(walls, probes)) < 13
    walls, probes = _run(720, growth=0.10, drift=-0.2, rng=rng)  # a machine speeding up hides growth
    assert trend_pct(walls) < 0 and 7 < trend_pct(at_constant_speed(walls, probes)) < 13


def test_the_adjusted_trend_rarely_passes_5_percent_when_nothing_grows():
    """Its false-positive rate under the null (flat code, a machine with bursts, noisy probes), by simulation."""
    rng = random.Random(7)
    over = sum(abs(trend_pct(at_constant_speed(*_run(720, 0.0, rng.uniform(-0.3, 0.3), rng)))) >= 5 for _ in range(200))
    assert over <= 4  # at most 2 % of flat runs would read as a trend


def test_the_probe_and_the_summary_of_a_soak_with_and_without_probes():
    assert 0 < speed_probe(tries=1) < 5
    ticks = [{"wall_s": 10.0 + 0.01 * i, "probe_s": 0.1, "startup_s": 2.0} for i in range(100)]
    got = speed_summary(ticks)
    assert got["probe_trend_pct"] == 0.0
    assert got["wall_trend_pct_at_constant_speed"] == pytest.approx(trend_pct([t["wall_s"] for t in ticks]), abs=0.1)
    assert got["probe_startup_correlation"] is None  # nothing varied
    slow = [
        {"wall_s": 10.0 * (1 + i / 100), "probe_s": 0.1 * (1 + i / 100), "startup_s": 2 + i / 50} for i in range(100)
    ]
    got = speed_summary(slow)
    assert got["probe_startup_correlation"] > 0.99 and abs(got["wall_trend_pct_at_constant_speed"]) < 1
    assert speed_summary([{"wall_s": 10.0}]) == {}  # a soak recorded before the probe


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
