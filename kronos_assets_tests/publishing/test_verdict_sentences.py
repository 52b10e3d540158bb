"""Verdict sentences that are true (issue 26, item 4): no comparison of the random walk's median with itself, the
span the data cover when it is shorter than the window, and a withheld verdict said as such."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import polars as pl
import pytest

from kronos_assets.evaluation.track_record import verdicts
from kronos_assets.metrics import registry
from kronos_assets_tests.metrics.verdict_record import only_verdicts

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def three_measures(monkeypatch):
    """These frames hold the losses of the three measures whose sentences are tested here: a metric registered
    later with a verdict of its own keeps out of them."""
    monkeypatch.setattr(registry, "METRICS", only_verdicts())


class Pairs:
    """A stand-in warehouse whose loss-pairs query returns these rows."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame

    def query(self, sql: str, params: Any = None) -> pl.DataFrame:
        return self.frame


def pairs(
    model: str,
    n: int,
    crps_model: np.ndarray,
    crps_ref: np.ndarray,
    rel_model: np.ndarray,
    rel_ref: np.ndarray,
    point: bool,
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": ["BTC/USDT"] * n,
            "model": [model] * n,
            "horizon": [24] * n,
            "origin": [T0 + timedelta(hours=i) for i in range(n)],
            "point_forecast": [point] * n,
            "crps_model": crps_model,
            "crps_baseline": crps_ref,
            "rel_error_model": rel_model,
            "rel_error_last_price": rel_ref,
            "brier_model": [0.25] * n,
        }
    )


def test_the_random_walks_median_is_not_compared_with_itself() -> None:
    rng = np.random.default_rng(1)
    n = 240  # 10 days of hourly origins: the 30-day window is a third full
    err = rng.exponential(size=n)
    frame = pairs("random_walk", n, err, rng.exponential(size=n), err, err, point=True)
    (v,) = verdicts(Pairs(frame), "1h", days=30)
    assert v["point_error"] is None
    assert "further off" not in v["sentence"] and "p = 1.00" not in v["sentence"]
    assert "last price" not in v["sentence"]
    # The window says what the data cover: 239 hours between the first and last origin
    assert v["sentence"].startswith("Over the 10.0 days of forecasts scored so far (of a 30-day window)")
    assert "the last 30 days" not in v["sentence"]


def test_a_full_window_says_the_last_30_days() -> None:
    rng = np.random.default_rng(2)
    n = 30 * 24
    frame = pairs(
        "m",
        n,
        rng.exponential(size=n),
        rng.exponential(size=n),
        rng.exponential(size=n),
        rng.exponential(size=n),
        point=False,
    )
    (v,) = verdicts(Pairs(frame), "1h", days=30)
    assert v["sentence"].startswith("Over the last 30 days (720 forecasts")


def test_a_drifting_difference_gets_no_verdict_and_says_why() -> None:
    n = 240
    drift = np.linspace(0.0, 2.0, n)  # the model's CRPS drifts away from the baseline's over the window
    rng = np.random.default_rng(3)
    frame = pairs(
        "m",
        n,
        1.0 + drift,
        np.ones(n) + 0.01 * rng.standard_normal(n),
        rng.exponential(size=n),
        rng.exponential(size=n),
        point=False,
    )
    (v,) = verdicts(Pairs(frame), "1h", days=30)
    assert v["crps"]["p_value"] is None and v["crps"]["verdict"] == "too persistent to judge"
    assert "too persistent" in v["crps"]["why"]
    assert (
        "on CRPS (no verdict: the difference drifts too slowly for this many independent horizons to tell it "
        "from noise)"
    ) in v["sentence"]
