"""The ad-hoc forecast library: the tail is held out from every forecaster, scores are the project's metrics, and
every impossible window is refused with a message that says what would work."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np
import polars as pl
import pytest

from kronos_assets.forecasting import kinds
from kronos_assets.forecasting.adhoc import (
    AdhocConfigError,
    adhoc_snapshot,
    context_of,
    forecast_and_score,
    load_market,
    load_upload,
    metrics_markdown,
    nearest_name,
    resolve_model,
    score,
    split_tail,
    takes_device,
)
from kronos_assets.forecasting.baselines import RandomWalkVol
from kronos_assets.forecasting.interface import CLOSE, Sampling
from kronos_assets.forecasting.kinds.garch import GarchSettings
from kronos_assets.market.synthetic import SyntheticMarket
from kronos_assets.publishing.adhoc_chart import adhoc_chart
from kronos_assets.publishing.charts import fan_chart_png

NOW = datetime(2026, 11, 21, 12, 30, tzinfo=UTC)


@lru_cache(maxsize=4)  # the synthetic market is deterministic: build each window once
def _candles(bars: int = 300) -> pl.DataFrame:
    return load_market(SyntheticMarket(seed=7), "BTC/USDT", "1h", bars, NOW)


class Spy(RandomWalkVol):
    """The volatility random walk, remembering the newest bar it was shown."""

    def __init__(self):
        super().__init__()
        self.name = "spy"

    def forecast_batch(self, requests, sampling):
        self.seen = [r.history["ts"].max() for r in requests]
        return super().forecast_batch(requests, sampling)


def test_load_market_gives_the_newest_closed_bars():
    candles = _candles(100)
    assert candles.height == 100
    assert candles["ts"][-1] == datetime(2026, 11, 21, 11, tzinfo=UTC)  # the 12:00 bar is still open at 12:30
    assert candles["ts"].diff().drop_nulls().unique().to_list() == [timedelta(hours=1)]


def test_split_holds_out_the_tail_and_the_model_never_sees_it():
    candles = _candles(300)
    split = split_tail(candles, "1h", lookback=200, horizon=24, holdout=24, max_context=512)
    assert split.history.height == 200 and split.tail.height == 24
    assert split.history["ts"][-1] + timedelta(hours=1) == split.tail["ts"][0]
    assert split.tail["ts"].to_list() == candles["ts"][-24:].to_list()
    assert split.future_ts == split.tail["ts"].to_list()
    spy = Spy()
    results = forecast_and_score(spy, split, Sampling(n_paths=20, horizon=24, seed=3), "BTC/USDT", "1h")
    assert spy.seen == [split.history["ts"][-1]] and spy.seen[0] < split.tail["ts"][0]
    assert [r.model for r in results] == ["spy", "random_walk", "random_walk_vol"]
    # The same settings and seed give the same paths; the spy draws what random_walk_vol draws.
    again = forecast_and_score(Spy(), split, Sampling(n_paths=20, horizon=24, seed=3), "BTC/USDT", "1h")
    np.testing.assert_array_equal(results[0].paths, again[0].paths)
    np.testing.assert_array_equal(results[0].paths, results[2].paths)


def test_a_shorter_holdout_scores_only_the_bars_it_holds_and_extrapolates_the_times():
    split = split_tail(_candles(300), "1h", lookback=100, horizon=10, holdout=4, max_context=512)
    assert split.future_ts[:4] == split.tail["ts"].to_list()
    assert split.future_ts[4:] == [split.tail["ts"][-1] + timedelta(hours=k) for k in range(1, 7)]
    [model, *_] = forecast_and_score(RandomWalkVol(), split, Sampling(n_paths=8, horizon=10, seed=1), "X", "1h")
    assert model.paths.shape == (8, 10, 6) and model.metrics["scored_steps"] == 4


def test_a_baseline_picked_as_the_model_is_not_scored_twice():
    split = split_tail(_candles(300), "1h", lookback=100, horizon=6, holdout=6, max_context=512)
    results = forecast_and_score(RandomWalkVol(), split, Sampling(n_paths=8, horizon=6), "X", "1h")
    assert [r.model for r in results] == ["random_walk_vol", "random_walk"]


def test_scores_are_the_metrics_of_the_median_and_the_bands():
    split = split_tail(_candles(300), "1h", lookback=100, horizon=5, holdout=5, max_context=512)
    last, realised = float(split.history["close"][-1]), split.tail["close"].to_numpy()
    flat = np.full((4, 5, 6), last)
    m = score(flat, split.history, split.tail)
    err = np.abs(realised - last)
    assert m["mae"] == pytest.approx(err.mean()) and m["rmse"] == pytest.approx(np.sqrt((err**2).mean()))
    assert m["mape"] == pytest.approx((100 * err / realised).mean())
    assert m["crps"] == pytest.approx(np.abs(np.log(realised / last)).mean())  # one point: CRPS = abs error
    assert m["p_up"] is None and m["p_up_hit"] is None  # a point forecast makes no P(up): n/a, never 0 %
    perfect = np.zeros((3, 5, 6))
    perfect[..., CLOSE] = realised
    p = score(perfect, split.history, split.tail)
    assert p["mae"] == 0 and p["crps"] == 0 and p["coverage_50"] == p["coverage_90"] == 1.0


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        (300, {"lookback": 600, "max_context": 512}, "lookback 600 is over the model's context of 512 bars"),
        (300, {"lookback": 10}, "lookback 10 is too short"),
        (
            40,
            {"lookback": 32, "horizon": 30, "holdout": 20},
            "horizon 30 + holdout 20 = 50 bars is longer than the file (40 bars)",
        ),
        (100, {"lookback": 90, "holdout": 24}, "use lookback <= 76"),
        (100, {"horizon": 1}, "horizon must be >= 2"),
    ],
)
def test_impossible_windows_are_refused_with_what_would_work(rows, kwargs, message):
    args = {"lookback": 64, "horizon": 24, "holdout": 24, "max_context": 512} | kwargs
    with pytest.raises(AdhocConfigError, match=re.escape(message)):
        split_tail(_candles(rows), "1h", source="the file", **args)


def test_an_unknown_name_is_answered_with_the_nearest_valid_one():
    err = nearest_name("kronos-dem", ["random_walk", "kronos-demo", "kronos-mini"], "model")
    assert "unknown model 'kronos-dem'; did you mean 'kronos-demo'?" in str(err)
    assert "valid: kronos-demo, kronos-mini, random_walk" in str(err)


def test_a_model_resolves_through_the_kinds_as_the_scheduled_graph_builds_it():
    specs = {
        **kinds.BUILTIN,
        "rw48": kinds.ModelSpec("rw48", "random_walk", 48),
        "garch": kinds.ModelSpec("garch", "garch", GarchSettings(window=200)),
    }
    assert resolve_model(specs, "rw48", "cuda") is specs["rw48"]  # no device to set: not asked for, not checked
    garch = kinds.build(resolve_model(specs, "garch", "cpu"))
    assert garch.name == "garch" and garch.settings.window == 200 and context_of(specs["garch"]) is None
    split = split_tail(_candles(300), "1h", lookback=100, horizon=6, holdout=6, max_context=None)
    results = forecast_and_score(kinds.build(specs["rw48"]), split, Sampling(n_paths=8, horizon=6), "X", "1h")
    assert [r.model for r in results] == ["rw48", *kinds.BUILTIN]  # the baselines beside it are the built-in kinds
    with pytest.raises(AdhocConfigError, match=r"unknown model \(or checkpoint folder\) 'gach'; did you mean 'garch'"):
        resolve_model(specs, "gach", "cpu")


def test_a_checkpoint_folder_is_read_by_the_kronos_kind(tmp_path):
    for part in ("model", "tokenizer"):
        (tmp_path / part).mkdir()
        for name in ("config.json", "model.safetensors"):
            (tmp_path / part / name).write_text("{}")
    spec = resolve_model(kinds.BUILTIN, str(tmp_path), "cpu")
    assert (spec.key, spec.kind, spec.options.local_dir, spec.options.device) == (
        tmp_path.name,
        "kronos",
        tmp_path,
        "cpu",
    )
    assert takes_device(spec) and context_of(spec) == 512
    (tmp_path / "tokenizer" / "model.safetensors").unlink()
    with pytest.raises(
        AdhocConfigError,
        match=re.escape(
            f"model folder {str(tmp_path)!r} is not a Kronos checkpoint: "
            f"{tmp_path}/tokenizer/model.safetensors not found"
        ),
    ):
        resolve_model(kinds.BUILTIN, str(tmp_path), "cpu")


def test_uploads_are_read_and_validated_by_the_file_reader(tmp_path):
    candles = _candles(80)
    candles.select(
        pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("timestamp"), "open", "high", "low", "close", "volume"
    ).write_csv(tmp_path / "coin_1h.csv")
    upload = load_upload(tmp_path, "coin_1h.csv")
    assert upload.profile.timeframe == "1h" and upload.candles["close"].to_list() == candles["close"].to_list()
    (tmp_path / "broken.csv").write_text("timestamp,open,high,low,close\n2025-01-01T00:00:00Z,1,0.5,0.9,1\n")
    with pytest.raises(AdhocConfigError, match=r"file 'broken.csv' cannot be used: .*broken.csv"):
        load_upload(tmp_path, "broken.csv")
    with pytest.raises(AdhocConfigError, match="outside|'\\.\\.' leads out"):
        load_upload(tmp_path / "sub", "../coin_1h.csv")
    with pytest.raises(AdhocConfigError, match="not found"):
        load_upload(tmp_path, "missing.csv")


def test_the_chart_draws_the_fan_over_the_held_out_candles():
    split = split_tail(_candles(300), "1h", lookback=200, horizon=24, holdout=24, max_context=512)
    [model, *rest] = forecast_and_score(RandomWalkVol(), split, Sampling(n_paths=16, horizon=24, seed=5), "B", "1h")
    snap = adhoc_snapshot(model, split, "BTC/USDT", "1h", synthetic=True)
    fig = adhoc_chart(snap)
    held = [t for t in fig.data if t.name == "held out (what happened)"]
    assert len(held) == 1 and list(held[0].close) == split.tail["close"].to_list()
    assert [t.name for t in fig.data if t.type == "candlestick"] == ["history", "held out (what happened)"]
    steps = snap["forecasts"]["random_walk_vol"]["steps"]
    q = np.quantile(model.paths[..., CLOSE], [0.05, 0.5, 0.95], axis=0)
    assert [s["q50"] for s in steps] == pytest.approx(q[1]) and [s["q95"] for s in steps] == pytest.approx(q[2])
    png = fan_chart_png(snap)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png != fan_chart_png({**snap, "actual": []})
    table = metrics_markdown([model, *rest])
    assert table.splitlines()[2].startswith("| random_walk_vol | ") and "Scored on 24 held-out bars" in table
