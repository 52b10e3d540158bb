"""Per-forecast scores against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kronos_assets.forecasting.summary import path_volatility
from kronos_assets.metrics import ROW_KEYS, crps_samples, score_paths

LAST = 100.0


def closes(log_returns: np.ndarray | list[float]) -> np.ndarray:
    return LAST * np.exp(np.asarray(log_returns, dtype=np.float64))


def test_rows_have_exact_keys_and_steps() -> None:
    paths = closes([[0.01, 0.02, 0.0], [-0.01, 0.0, 0.03]])
    rows = score_paths(paths, closes([0.0, 0.01, 0.02]), LAST)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(tuple(r) == ROW_KEYS for r in rows)
    assert all(r["brier_vol_amp"] is None for r in rows)


def test_crps_single_sample_equals_absolute_log_error() -> None:
    rows = score_paths(np.array([[105.0, 90.0]]), np.array([101.0, 95.0]), LAST)
    assert rows[0]["crps"] == pytest.approx(abs(math.log(105 / 100) - math.log(101 / 100)), abs=1e-15)
    assert rows[1]["crps"] == pytest.approx(abs(math.log(90 / 100) - math.log(95 / 100)), abs=1e-15)


def test_crps_known_discrete_sample_by_hand() -> None:
    # X = {0, 0.1, 0.2}, y = 0.05: mean|X-y| = (0.05+0.05+0.15)/3 = 0.25/3;
    # sum_{i,j}|Xi-Xj| = 2*(0.1+0.2+0.1) = 0.8, / (2*3*2) = 0.8/12. CRPS = 0.25/3 - 0.8/12 = 1/60.
    rows = score_paths(closes([[0.0], [0.1], [0.2]]), closes([0.05]), LAST)
    assert rows[0]["crps"] == pytest.approx(1 / 60, abs=1e-12)


def test_crps_matches_brute_force_double_sum() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(13, 5))
    y = rng.normal(size=5)
    m = x.shape[0]
    brute = np.abs(x - y).mean(axis=0) - np.abs(x[:, None, :] - x[None, :, :]).sum(axis=(0, 1)) / (2 * m * (m - 1))
    np.testing.assert_allclose(crps_samples(x, y), brute, atol=1e-12)


def test_pinball_tiny_hand_example() -> None:
    # X = {0, .1, .2, .3, .4}: linear quantiles at .25/.5/.75 are .1/.2/.3. y = .25:
    # .25*(.25-.1) = .0375; .5*(.25-.2) = .025; (1-.75)*(.3-.25) = .0125; mean = .075/3 = .025.
    paths = closes([[0.0], [0.1], [0.2], [0.3], [0.4]])
    rows = score_paths(paths, closes([0.25]), LAST, quantile_levels=(0.25, 0.5, 0.75))
    assert rows[0]["pinball"] == pytest.approx(0.025, abs=1e-12)


def test_intervals_pit_and_p_up_on_a_small_sample() -> None:
    # 21 samples -0.03, -0.02, ..., 0.17 (index i -> -0.03 + 0.01 i); linear quantile at level q is index 20 q:
    # 0.25/0.75 -> .02/.12, 0.1/0.9 -> -.01/.15, 0.05/0.95 -> -.02/.16.
    x = np.arange(21)[:, None] * 0.01 - 0.03
    rows = score_paths(closes(x), closes([0.105]), LAST)
    r = rows[0]
    assert r["width_50"] == pytest.approx(0.10, abs=1e-12)
    assert r["width_80"] == pytest.approx(0.16, abs=1e-12)
    assert r["width_90"] == pytest.approx(0.18, abs=1e-12)
    assert (r["covered_50"], r["covered_80"], r["covered_90"]) == (1.0, 1.0, 1.0)
    # below 0.105: -0.03..0.10 = 14 samples
    assert r["pit"] == pytest.approx(14 / 21)
    # above last close (strictly): 0.01..0.17 = 17 samples; the 0.0 sample is a tie and does not count
    assert r["p_up"] == pytest.approx(17 / 21)
    assert r["brier_up"] == pytest.approx((17 / 21 - 1.0) ** 2)
    outside = score_paths(closes(x), closes([0.175]), LAST)[0]
    assert (outside["covered_50"], outside["covered_80"], outside["covered_90"]) == (0.0, 0.0, 0.0)


def test_pit_counts_ties_as_half() -> None:
    rows = score_paths(closes([[0.0], [0.1], [0.1], [0.2]]), closes([0.1]), LAST)
    # one below, two ties -> (1 + 0.5*2)/4
    assert rows[0]["pit"] == pytest.approx(0.5)


def test_calibrated_gaussian_forecasts_cover_nominally_and_pit_is_uniform() -> None:
    rng = np.random.default_rng(20240601)
    n_cases, m, scale = 3000, 400, 0.01
    paths = closes(scale * rng.standard_normal((m, n_cases)))
    realised = closes(scale * rng.standard_normal(n_cases))
    rows = score_paths(paths, realised, LAST)
    for name, nominal in ((50, 0.5), (80, 0.8), (90, 0.9)):
        coverage = np.mean([r[f"covered_{name}"] for r in rows])
        assert abs(coverage - nominal) < 0.03, (name, coverage)
    pit = np.array([r["pit"] for r in rows])
    counts = np.bincount(np.minimum((pit * 10).astype(int), 9), minlength=10)
    expected = n_cases / 10
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9, counts  # chi2(9) 0.999 quantile
    # a CRPS sanity check: E CRPS of the true N(0, s^2) at N(0, s^2) realisations is s/sqrt(pi)
    assert np.mean([r["crps"] for r in rows]) == pytest.approx(scale / math.sqrt(math.pi), rel=0.05)


def test_perfect_forecaster_scores_zero() -> None:
    realised = np.array([101.0, 100.0, 98.5, 102.25])
    paths = np.tile(realised, (50, 1))
    rows = score_paths(paths, realised, LAST)
    for r in rows:
        assert r["crps"] == 0.0
        assert r["pinball"] == 0.0
        assert r["abs_error"] == 0.0 and r["sq_error"] == 0.0 and r["ape"] == 0.0
        assert (r["covered_50"], r["covered_80"], r["covered_90"]) == (1.0, 1.0, 1.0)
        assert (r["width_50"], r["width_80"], r["width_90"]) == (0.0, 0.0, 0.0)
        assert r["direction_hit"] == 1.0  # including the exactly flat step 2 (both signs 0)
        assert r["brier_up"] == 0.0
        assert r["pit"] == 0.5
        assert r["median"] == r["realised"]


def test_constant_forecaster_at_last_close() -> None:
    realised = np.array([103.0, 100.0, 95.0])
    paths = np.full((20, 3), LAST)
    rows = score_paths(paths, realised, LAST)
    for r, y in zip(rows, realised, strict=True):
        assert r["crps"] == pytest.approx(abs(math.log(y / LAST)), abs=1e-15)
        assert r["abs_error"] == pytest.approx(abs(y - LAST))
        assert r["ape"] == pytest.approx(100 * abs(y - LAST) / y)
        assert r["p_up"] == 0.0
        assert r["brier_up"] == (1.0 if y > LAST else 0.0)
        assert (r["width_50"], r["width_80"], r["width_90"]) == (0.0, 0.0, 0.0)
    # documented direction handling: a flat median misses every real move and hits only a flat realisation
    assert [r["direction_hit"] for r in rows] == [0.0, 1.0, 0.0]
    assert [r["covered_90"] for r in rows] == [0.0, 1.0, 0.0]
    assert [r["pit"] for r in rows] == [1.0, 0.5, 0.0]


def test_direction_hit_signs() -> None:
    paths = closes([[0.02, -0.02, 0.01, 0.0], [0.04, -0.01, 0.03, 0.0], [0.03, -0.03, 0.02, 0.0]])
    rows = score_paths(paths, closes([0.01, 0.01, 0.0, -0.01]), LAST)
    # up/up hit, down/up miss, up/flat miss, flat/down miss
    assert [r["direction_hit"] for r in rows] == [1.0, 0.0, 0.0, 0.0]


def test_brier_vol_amp_on_last_step_only_and_consistent_with_summary() -> None:
    realised = np.array([101.0, 99.0, 102.0, 100.5])
    vol = float(path_volatility(realised[None, :], LAST)[0])
    expected_vol = float(np.std(np.diff(np.log(np.r_[LAST, realised])), ddof=1))
    assert vol == pytest.approx(expected_vol)
    paths = np.tile(realised, (5, 1))
    below = score_paths(paths, realised, LAST, p_vol_amp=0.3, recent_vol=vol * 0.9)  # amplified
    above = score_paths(paths, realised, LAST, p_vol_amp=0.3, recent_vol=vol * 1.1)  # not amplified
    assert [r["brier_vol_amp"] for r in below[:-1]] == [None] * 3
    assert below[-1]["brier_vol_amp"] == pytest.approx(0.49)
    assert above[-1]["brier_vol_amp"] == pytest.approx(0.09)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"close_paths": np.ones(3)}, "2-D"),
        ({"close_paths": np.ones((0, 3))}, "2-D"),
        ({"realised_close": np.ones(2)}, "horizon 3"),
        ({"realised_close": np.ones((1, 3))}, "horizon 3"),
        ({"close_paths": np.array([[1.0, np.nan, 1.0]])}, "non-finite"),
        ({"realised_close": np.array([1.0, np.inf, 1.0])}, "non-finite"),
        ({"close_paths": np.array([[1.0, 0.0, 1.0]])}, "positive"),
        ({"realised_close": np.array([1.0, -1.0, 1.0])}, "positive"),
        ({"last_close": 0.0}, "last_close"),
        ({"last_close": float("nan")}, "last_close"),
        ({"last_close": "abc"}, "last_close"),
        ({"quantile_levels": (0.0, 0.5)}, "quantile_levels"),
        ({"quantile_levels": ()}, "quantile_levels"),
        ({"p_vol_amp": 0.5}, "together"),
        ({"recent_vol": 0.01}, "together"),
        ({"p_vol_amp": 1.5, "recent_vol": 0.01}, "probability"),
        ({"p_vol_amp": 0.5, "recent_vol": -0.01}, "recent_vol"),
        (
            {"close_paths": np.ones((2, 1)), "realised_close": np.ones(1), "p_vol_amp": 0.5, "recent_vol": 0.1},
            "at least 2",
        ),
    ],
)
def test_bad_inputs_raise(kwargs: dict, message: str) -> None:
    args = {"close_paths": np.ones((2, 3)), "realised_close": np.ones(3), "last_close": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        score_paths(**args)
