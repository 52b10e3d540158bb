"""The 80 % band's "too narrow" / "too wide" test: the fast subset of benchmarks/bench_coverage_flags.py, the SQL
that pools the hits and the scoreboard cell that shows the judgement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from kronos_assets.metrics.coverage import coverage_batch, coverage_test, path_hits, step_weights
from kronos_assets.publishing.sentences import coverage_judgement, score_cells
from kronos_assets.warehouse import read_sql

H, N_PATHS = 24, 30
EXPECTED = 0.8 * (N_PATHS - 1) / (N_PATHS + 1)  # 74.8 %
# Volatility scales whose 30-path band covers 10 points less / more than EXPECTED at every step (measured by
# benchmarks/bench_coverage_flags.py's scale_for; the tests check the coverage they give).
NARROW, WIDE = 0.799, 1.272


def _hits(rng: np.random.Generator, reps: int, n: int, scale: float) -> np.ndarray:
    """(reps, n, H) hits of the 80 % band of 30 paths (volatility ``scale``) of a unit random walk, one 24-bar
    forecast per bar (consecutive forecasts share 23 bars)."""
    walk = np.cumsum(rng.standard_normal((reps, n + H)), axis=1)
    win = sliding_window_view(walk, H + 1, axis=1)[:, :n, :]
    outcome = win[..., 1:] - win[..., :1]
    paths = np.sort(scale * np.cumsum(rng.standard_normal((reps, n, N_PATHS, H), dtype=np.float32), axis=-1), axis=2)
    lo = 0.1 * paths[:, :, 2] + 0.9 * paths[:, :, 3]  # numpy's linear 10 % quantile of 30 values (2.9th)
    hi = 0.9 * paths[:, :, 26] + 0.1 * paths[:, :, 27]  # and 90 % (26.1th)
    return (outcome >= lo) & (outcome <= hi)


def _flags(hits: np.ndarray) -> tuple[float, float]:
    stat, p = coverage_batch(path_hits(hits), EXPECTED, H)
    return float(np.mean((p < 0.05) & (stat < 0))), float(np.mean((p < 0.05) & (stat > 0)))


def test_a_calibrated_band_is_flagged_about_5_percent_of_the_time_both_ways() -> None:
    # Measured 4.4-6.5 % at 240 origins over 1000-run seeds (the old rule: 0-0.45 %); 400 runs: binomial sd
    # 1.1 points, so 2-10 % is about 3 sd either side.
    narrow, wide = _flags(_hits(np.random.default_rng(26), 400, 240, 1.0))
    assert 0.02 <= narrow + wide <= 0.10
    assert narrow > 0 and wide > 0  # both directions happen at 10 independent horizons


@pytest.mark.parametrize("scale, side", [(NARROW, 0), (WIDE, 1)])
def test_a_10_point_miss_at_10_independent_horizons_is_flagged(scale: float, side: int) -> None:
    # Measured ~94 % (narrow) and ~97 % (wide) at 240 origins; the old rule flagged a 10-point shortfall ~5 %
    # of the time and a 10-point surplus never. 200 runs: 80 % is > 4 binomial sd below what is measured.
    hits = _hits(np.random.default_rng(10 + side), 200, 240, scale)
    assert hits.mean() == pytest.approx(EXPECTED + (0.10 if side else -0.10), abs=0.01)
    rates = _flags(hits)
    assert rates[side] >= 0.80 and rates[1 - side] == 0.0


def test_coverage_test_judges_one_record_and_withholds_below_10_horizons() -> None:
    rng = np.random.default_rng(3)
    narrow = coverage_test(path_hits(_hits(rng, 1, 480, 0.6)[0]), EXPECTED, H)
    assert narrow.judgement == "too narrow" and narrow.n_independent == 20 and narrow.p_value < 0.05
    assert narrow.observed < 0.6 and narrow.expected == pytest.approx(EXPECTED)
    few = coverage_test(path_hits(_hits(rng, 1, 9 * H + 23, 0.6)[0]), EXPECTED, H)
    assert few.judgement is None and few.n_independent == 9
    every = coverage_test(np.ones(240), EXPECTED, H)  # every outcome inside the band at every step
    assert every.judgement == "too wide" and every.statistic == np.inf
    with pytest.raises(ValueError, match="non-finite"):
        coverage_test([0.5, float("nan")], EXPECTED, 1)


def test_step_weights() -> None:
    w = step_weights(3)
    assert w.sum() == pytest.approx(1.0)
    assert w == pytest.approx(np.array([1, 1 / 4, 1 / 9]) / (1 + 1 / 4 + 1 / 9))
    with pytest.raises(ValueError, match="positive integer"):
        step_weights(0)


def test_coverage_path_sql_pools_complete_forecasts_as_step_weights_does() -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE evaluations (symbol VARCHAR, timeframe VARCHAR, origin TIMESTAMPTZ, model VARCHAR, "
        "step INTEGER, horizon INTEGER, covered_80 DOUBLE)"
    )
    con.execute(
        "CREATE TABLE forecasts (symbol VARCHAR, timeframe VARCHAR, origin TIMESTAMPTZ, model VARCHAR, n_paths INTEGER)"
    )
    rng = np.random.default_rng(0)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    hits = (rng.random((5, 4)) < 0.7).astype(float)
    for i, row in enumerate(hits):
        origin = t0 + timedelta(hours=i)
        con.execute("INSERT INTO forecasts VALUES ('BTC/USDT', '1h', ?, 'm', ?)", [origin, 30 if i else 10])
        steps = range(1, 5) if i != 2 else range(1, 4)  # origin 2 not fully scored: left out
        con.executemany(
            "INSERT INTO evaluations VALUES ('BTC/USDT', '1h', ?, 'm', ?, 4, ?)",
            [[origin, s, row[s - 1]] for s in steps],
        )
    got = con.execute(
        read_sql("coverage_path.sql").replace("/* where */", "e.timeframe = '1h'") + " ORDER BY origin"
    ).pl()
    keep = [0, 1, 3, 4]
    assert got["origin"].to_list() == [t0 + timedelta(hours=i) for i in keep]
    assert got["hit_80"].to_numpy() == pytest.approx(path_hits(hits[keep]))
    assert got["expected_80"].to_list() == pytest.approx([0.8 * 9 / 11] + [EXPECTED] * 3)


def test_the_scoreboard_cell_says_which_way_and_the_pooled_coverage() -> None:
    row = {
        "model": "m",
        "n_forecasts": 240,
        "coverage_80": 0.75,
        "expected_coverage_80": EXPECTED,
        "coverage_80_path": 0.641,
        "coverage_80_flag": "too narrow",
    }
    assert coverage_judgement(row) == " · too narrow (64.1 % over the path)"
    assert coverage_judgement(row | {"coverage_80_flag": None}) == ""
    cell = score_cells(row, 10)[5]
    assert cell == "75.0 % (74.8 %) · too narrow (64.1 % over the path)"
    assert "too narrow" not in score_cells(row, 9)[5]  # too few horizons: no judgement shown


@pytest.mark.parametrize("n, terms", [(240, 20), (240, 240), (8760, 730), (5, 9)])
def test_the_cosine_projections_by_fft_equal_the_basis_matrix(n: int, terms: int) -> None:
    """The coverage test's long-run variance over a year of origins: the FFT (O(n log n)) gives what the terms x n
    cosine matrix gave, to 1e-12 (terms beyond n - 1 included)."""
    from kronos_assets.metrics.compare import _cosines, cosine_projections

    x = np.random.default_rng(n).normal(size=(3, n))
    assert cosine_projections(x, terms) == pytest.approx(x @ _cosines(n, terms).T, rel=1e-12, abs=1e-12)
