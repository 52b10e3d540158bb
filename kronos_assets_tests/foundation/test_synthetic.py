from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from scipy.stats import kurtosis

from kronos_assets.market.schema import validate_candles
from kronos_assets.market.synthetic import SyntheticMarket
from kronos_assets_tests.conftest import real_candles

UTC = timezone.utc
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _fetch(m, symbol, tf, start, end, now=NOW):
    return m.fetch(symbol, tf, start, end, now)


def test_same_window_same_candles_alone_or_inside_a_longer_one():
    a = _fetch(
        SyntheticMarket(), "BTC/USDT", "1h", datetime(2024, 3, 5, 7, tzinfo=UTC), datetime(2024, 3, 9, tzinfo=UTC)
    )
    longer = _fetch(
        SyntheticMarket(), "BTC/USDT", "1h", datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)
    )
    inside = longer.filter(
        (pl.col("ts") >= datetime(2024, 3, 5, 7, tzinfo=UTC)) & (pl.col("ts") < datetime(2024, 3, 9, tzinfo=UTC))
    )
    assert a.height == 4 * 24 - 7
    assert a.equals(inside)


def test_a_new_market_instance_reuses_the_walk_since_the_first_day_and_gives_the_same_candles(monkeypatch):
    """Every run builds its own market: the day-start prices walked since EPOCH (seconds per symbol) are walked
    once per process, not once per instance."""
    from kronos_assets.market import synthetic

    window = ("BTC/USDT", "1h", datetime(2025, 11, 3, tzinfo=UTC), datetime(2025, 11, 4, tzinfo=UTC))
    first = _fetch(SyntheticMarket(), *window)
    days: list[int] = []
    real = synthetic._day
    monkeypatch.setattr(synthetic, "_day", lambda sseed, day_index: days.append(day_index) or real(sseed, day_index))
    again = _fetch(SyntheticMarket(), *window)
    assert again.equals(first) and again.height == 24
    assert days == [(datetime(2025, 11, 3).date() - synthetic.EPOCH).days]  # the window's one day, no walk


def test_each_regime_knot_is_drawn_once_however_many_days_use_it(monkeypatch):
    """A knot's generator costs more than the rest of its work; days sharing a knot share its value."""
    from kronos_assets.market import synthetic

    seeds: list[tuple] = []
    real = np.random.default_rng
    monkeypatch.setattr(synthetic.np.random, "default_rng", lambda seed=None: seeds.append(tuple(seed)) or real(seed))
    sseed = synthetic._symbol_seed(11, "KNOT/USDT")  # walked by no other test: nothing of it cached yet
    for day_index in range(60):
        synthetic._day(sseed, day_index)
    knots = [s for s in seeds if s[1] != 0]  # stream 0 is the day's own generator
    assert knots and len(knots) == len(set(knots))


def test_symbols_and_seeds_differ():
    w = (datetime(2024, 3, 5, tzinfo=UTC), datetime(2024, 3, 6, tzinfo=UTC))
    btc = _fetch(SyntheticMarket(), "BTC/USDT", "1h", *w)
    eth = _fetch(SyntheticMarket(), "ETH/USDT", "1h", *w)
    other = _fetch(SyntheticMarket(seed=8), "BTC/USDT", "1h", *w)
    assert not np.allclose(btc["close"], eth["close"]) and not np.allclose(btc["close"], other["close"])


def test_candles_are_consistent_continuous_and_timeframes_agree():
    start, end = datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 8, tzinfo=UTC)
    m = SyntheticMarket()
    h1 = validate_candles(_fetch(m, "SOL/USDT", "1h", start, end), "synthetic")
    assert h1.height == 7 * 24
    # Each bar opens at the previous close, across midnight too.
    assert np.allclose(h1["open"][1:].to_numpy(), h1["close"][:-1].to_numpy())
    h4 = _fetch(m, "SOL/USDT", "4h", start, end)
    agg = h1.group_by_dynamic("ts", every="4h").agg(
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        pl.col("volume").sum(),
    )
    for col in ("open", "high", "low", "close", "volume"):
        assert np.allclose(agg[col].to_numpy(), h4[col].to_numpy()), col
    assert (h1["amount"] > 0).all()


def test_forming_bar_is_never_returned():
    now = datetime(2025, 5, 5, 10, 30, tzinfo=UTC)
    df = SyntheticMarket().fetch(
        "BTC/USDT", "1h", datetime(2025, 5, 5, tzinfo=UTC), datetime(2025, 5, 6, tzinfo=UTC), now
    )
    assert df["ts"][-1] == datetime(2025, 5, 5, 9, tzinfo=UTC)  # 10:00 bar closes at 11:00


def _stats(close: np.ndarray, hours: np.ndarray, volume: np.ndarray) -> dict[str, float]:
    r = np.diff(np.log(close))
    a = np.abs(r - r.mean())

    def acf(x, k):
        x = x - x.mean()
        return float((x[:-k] * x[k:]).mean() / x.var())

    season = np.array([a[hours[1:] == h].mean() for h in range(24)])
    return {
        "std": float(r.std()),
        "kurtosis": float(kurtosis(r)),
        "acf1": acf(a, 1),
        "acf24": acf(a, 24),
        "acf168": acf(a, 168),
        "season": float(season.max() / season.min()),
        "vol_corr": float(np.corrcoef(np.log(volume[1:] + 1e-9), a)[0, 1]),
    }


def test_statistics_resemble_real_btc_1h():
    real = real_candles("binance_BTCUSDT_1h_20200920_20250919.csv.gz")
    real = real.filter(pl.col("ts") >= datetime(2022, 1, 1, tzinfo=UTC))
    syn = _fetch(
        SyntheticMarket(), "BTC/USDT", "1h", datetime(2022, 1, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC)
    )
    rs = _stats(real["close"].to_numpy(), real["ts"].dt.hour().to_numpy(), real["volume"].to_numpy())
    ss = _stats(syn["close"].to_numpy(), syn["ts"].dt.hour().to_numpy(), syn["volume"].to_numpy())
    # Same order of magnitude of hourly volatility, fat tails, long-lived volatility clustering, a daily rhythm
    # and volume that rises with the size of moves: the properties a forecaster of real candles relies on.
    assert 0.5 < ss["std"] / rs["std"] < 2.0, (ss, rs)
    assert ss["kurtosis"] > 5 and rs["kurtosis"] > 5 and 0.3 < ss["kurtosis"] / rs["kurtosis"] < 3, (ss, rs)
    for lag in ("acf1", "acf24", "acf168"):
        assert ss[lag] > 0.05 and abs(ss[lag] - rs[lag]) < 0.15, (lag, ss, rs)
    assert ss["acf1"] > ss["acf24"] > ss["acf168"]
    assert 1.3 < ss["season"] < 3.0 and 1.3 < rs["season"] < 3.0
    assert ss["vol_corr"] > 0.25 and rs["vol_corr"] > 0.25


def test_unsupported_timeframe_is_refused():
    with pytest.raises(Exception, match="unknown timeframe"):
        SyntheticMarket().fetch("BTC/USDT", "3m", NOW - timedelta(days=1), NOW, NOW)
