"""The GARCH(1,1)-t baseline: fitted past-only at each origin, seeded paths of close, a failed fit falls back."""

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from kronos_assets.configuration.settings import TimeframeSettings
from kronos_assets.evaluation.records import evaluation_rows, forecast_frames, load_close_paths
from kronos_assets.forecasting.interface import CLOSE, PATH_FIELDS, ForecastRequest, Sampling, run_forecaster
from kronos_assets.forecasting.kinds import garch
from kronos_assets.forecasting.kinds.garch import GarchForecaster, GarchSettings, fit
from kronos_assets.forecasting.requests import build_requests
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.conftest import real_candles

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
SAMPLING = Sampling(n_paths=40, horizon=6, seed=3)
TF = TimeframeSettings("1h", T0.date(), history_bars=400, horizon=6)


def garch_returns(n: int, omega=0.05, alpha=0.1, beta=0.85, nu=6.0, seed=0) -> np.ndarray:
    """Percent log returns from a known GARCH(1,1)-t."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(nu, n) * np.sqrt((nu - 2) / nu)
    r, var = np.empty(n), omega / (1 - alpha - beta)
    for t in range(n):
        r[t] = np.sqrt(var) * z[t]
        var = omega + alpha * r[t] ** 2 + beta * var
    return r


def candles(closes: np.ndarray) -> pl.DataFrame:
    n = closes.size
    return pl.DataFrame(
        {
            "ts": [T0 + i * HOUR for i in range(n)],
            "open": closes,
            "high": closes * 1.001,
            "low": closes * 0.999,
            "close": closes,
            "volume": np.full(n, 10.0),
            "amount": closes * 10.0,
            "exchange": ["synthetic"] * n,
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def prices(n=600, seed=0) -> np.ndarray:
    return 100 * np.exp(np.concatenate([[0.0], np.cumsum(garch_returns(n - 1, seed=seed) / 100)]))


def request(frame: pl.DataFrame, seed: int = 11, symbol: str = "BTC/USDT") -> ForecastRequest:
    origin = frame["ts"][-1] + HOUR
    return ForecastRequest(symbol, "1h", origin, frame, [origin + i * HOUR for i in range(SAMPLING.horizon)], seed)


def test_fit_recovers_the_persistence_of_a_known_garch():
    f = fit(garch_returns(3000, seed=1))
    assert 0.88 < f.alpha + f.beta < 0.99 and 0.03 < f.alpha < 0.2 and 3 < f.nu < 15


def test_same_history_and_seed_give_the_same_paths_alone_or_in_a_batch():
    a, b = candles(prices(seed=0)), candles(prices(seed=1))
    one = GarchForecaster().forecast_batch([request(a)], SAMPLING)[0]
    batch = GarchForecaster().forecast_batch([request(b, symbol="ETH/USDT"), request(a)], SAMPLING)
    np.testing.assert_array_equal(one, batch[1])
    other_seed = GarchForecaster().forecast_batch([request(a, seed=12)], SAMPLING)[0]
    assert not np.array_equal(one[..., CLOSE], other_seed[..., CLOSE])


def test_paths_are_close_only_and_stored_and_scored_like_any_model(tmp_path):
    frame = candles(prices())
    (fc,) = run_forecaster(GarchForecaster("garch"), [request(frame)], SAMPLING)
    assert fc.paths.shape == (SAMPLING.n_paths, SAMPLING.horizon, len(PATH_FIELDS))
    assert np.isfinite(fc.paths[..., CLOSE]).all() and (fc.paths[..., CLOSE] > 0).all()
    assert np.isnan(np.delete(fc.paths, CLOSE, axis=-1)).all()  # nothing made up for fields it does not forecast
    assert fc.provenance["garch"]["fit"] == "ok" and fc.provenance["window"] == 1000
    assert fc.provenance["garch"]["n_returns"] == frame.height - 1

    wh = Warehouse(tmp_path / "wh.duckdb")
    frames = forecast_frames([fc], SAMPLING)
    wh.replace_many(frames, "model = ?", ["garch"])
    steps = wh.query("SELECT mean_volume, median_volume, q50 FROM forecast_steps ORDER BY step")
    assert steps["mean_volume"].null_count() == SAMPLING.horizon and steps["q50"].null_count() == 0
    (head,) = load_close_paths(wh, "BTC/USDT", "1h", [fc.request.origin]).iter_rows(named=True)
    realised = pl.DataFrame({"ts": list(fc.request.future_ts), "close": [float(frame["close"][-1])] * 6})
    rows = evaluation_rows(head, realised, "BTC/USDT", "1h", HOUR, fc.request.future_ts[-1])
    assert len(rows) == SAMPLING.horizon and all(np.isfinite(r["crps"]) for r in rows)


def test_constant_prices_fall_back_to_the_random_walk_with_volatility_and_say_so():
    frame = candles(np.full(300, 42.0))
    (fc,) = run_forecaster(GarchForecaster("garch"), [request(frame)], SAMPLING)
    np.testing.assert_array_equal(fc.paths[..., CLOSE], 42.0)  # zero volatility: the walk stays put
    record = fc.provenance["garch"]
    assert record["fit"] == "failed" and record["fallback"] == "random_walk_vol"
    assert "constant prices" in record["reason"]


def test_a_fit_that_does_not_converge_is_detected():
    with pytest.raises(ValueError, match="did not converge"):
        fit(garch_returns(800, seed=2), max_iter=2)


def test_whatever_the_optimiser_raises_only_that_origin_falls_back(monkeypatch):
    good, bad = candles(prices(seed=0)), candles(prices(seed=1))
    real_fit = garch.fit

    def flaky(returns, *a, **k):
        if returns.size == bad.height - 1 and np.allclose(returns, np.diff(np.log(bad["close"].to_numpy())) * 100):
            raise np.linalg.LinAlgError("singular matrix")
        return real_fit(returns, *a, **k)

    monkeypatch.setattr(garch, "fit", flaky)
    fcs = run_forecaster(GarchForecaster("garch"), [request(good), request(bad, symbol="ETH/USDT")], SAMPLING)
    assert fcs[0].provenance["garch"]["fit"] == "ok"
    assert fcs[1].provenance["garch"] == {
        "fit": "failed",
        "fallback": "random_walk_vol",
        "reason": "LinAlgError: singular matrix",
        "n_returns": bad.height - 1,
    }
    assert np.isfinite(fcs[1].paths[..., CLOSE]).all()


def test_fits_see_only_bars_up_to_the_origin_and_at_most_the_window():
    frame = candles(prices(800))
    bars = [frame["ts"][500], frame["ts"][600]]
    reqs, skipped = build_requests(frame, "BTC/USDT", TF, bars, "garch", 5)
    assert not skipped
    # The future changes wildly: paths made at past origins do not move.
    shocked = frame.with_columns(
        pl.when(pl.col("ts") > bars[1]).then(pl.col("close") * 3).otherwise(pl.col("close")).alias("close")
    )
    reqs2, _ = build_requests(shocked, "BTC/USDT", TF, bars, "garch", 5)
    g = GarchForecaster("garch", GarchSettings(window=300))
    for r1, r2 in zip(reqs, reqs2):
        assert r1.history["ts"][-1] < r1.origin
        np.testing.assert_array_equal(g.forecast_batch([r1], SAMPLING)[0], g.forecast_batch([r2], SAMPLING)[0])
        assert g.request_provenance(r1)["garch"]["n_returns"] == 300


def test_the_last_bar_before_the_origin_does_matter():
    """The check above is not vacuous: the newest bar the origin may see changes the fit and the paths."""
    frame = candles(prices())
    moved = frame.with_columns(
        pl.when(pl.col("ts") == frame["ts"][-1]).then(pl.col("close") * 1.05).otherwise(pl.col("close")).alias("close")
    )
    g = GarchForecaster()
    a, b = (g.forecast_batch([request(f)], SAMPLING)[0][..., CLOSE] for f in (frame, moved))
    assert not np.allclose(a, b)


def test_real_hourly_bitcoin_fits_without_falling_back():
    """Hourly crypto often fits at alpha + beta = 1 (integrated GARCH, arch's bound): a usable fit, not a failure."""
    df = real_candles("binance_BTCUSDT_1h_20200920_20250919.csv.gz")
    # early January 2025: the boundary binds
    start = df["ts"].to_list().index(datetime(2025, 1, 1, tzinfo=timezone.utc))
    closes = df["close"].to_numpy()[start - 480 : start + 168]
    g = GarchForecaster()
    reqs = [request(candles(closes[k - 480 : k])) for k in range(480, closes.size, 8)]
    g.forecast_batch(reqs, SAMPLING)
    fits = [g.request_provenance(r)["garch"] for r in reqs]
    assert [f for f in fits if f["fit"] != "ok"] == []
    assert any(abs(f["params"]["alpha"] + f["params"]["beta"] - 1) < 1e-4 for f in fits)  # the boundary is hit


def test_an_older_warehouse_takes_null_volume_summaries_and_a_current_one_is_not_rewritten(tmp_path):
    """Files made when volume summaries were NOT NULL are relaxed once, keeping their rows; opening a current file
    leaves it byte-identical (reads never write)."""
    import hashlib

    import duckdb

    from kronos_assets.warehouse import read_sql

    path = tmp_path / "old.duckdb"
    old_schema = read_sql("schema.sql").replace(
        "mean_volume DOUBLE, median_volume DOUBLE", "mean_volume DOUBLE NOT NULL, median_volume DOUBLE NOT NULL"
    )
    assert old_schema != read_sql("schema.sql")
    with duckdb.connect(str(path)) as con:
        con.execute(old_schema)
        con.execute(
            "INSERT INTO forecast_steps VALUES ('X/Y', '1h', now(), 'm', 1, now(), 1, 1, 1, 1, 1, 1, 1, 1, 1, 5, 5)"
        )
    frame = candles(prices())
    (fc,) = run_forecaster(GarchForecaster("garch"), [request(frame)], SAMPLING)
    wh = Warehouse(path)
    wh.replace_many(forecast_frames([fc], SAMPLING), "model = ?", ["garch"])
    counts = wh.query(
        "SELECT model, count(*) AS n, count(mean_volume) AS v FROM forecast_steps GROUP BY ALL ORDER BY 1"
    )
    assert counts.rows() == [("garch", 6, 0), ("m", 1, 1)]

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    Warehouse(path).query("SELECT count(*) FROM forecasts")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
