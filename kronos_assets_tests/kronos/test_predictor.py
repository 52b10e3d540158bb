"""Predictor: input checks, normalisation, missing volume/amount, seeds, batches of different lengths."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
import torch

from kronos_assets.kronos.config import KronosConfig
from kronos_assets.kronos.errors import (
    HorizonTooLongError,
    KronosInputError,
    MissingColumnsError,
    NonFiniteInputError,
    TimestampOrderError,
)
from kronos_assets.kronos.inputs import prepare_series, time_features
from kronos_assets.kronos.model import Kronos
from kronos_assets.kronos.predictor import KronosPredictor
from kronos_assets.kronos.runtime import resolve_device

from .conftest import START, candles, future


def test_normalisation_uses_population_std_over_all_rows_and_clips() -> None:
    df = candles(50)
    df = _bad(df, "volume", 10, float(df["volume"][10] * 1000))
    p = prepare_series(df, future(df, 3))
    raw = df.select("open", "high", "low", "close", "volume", "amount").to_numpy().astype(np.float32)
    mean, std = raw.mean(0), raw.std(0)  # ddof 0, float32
    np.testing.assert_array_equal(p.mean, mean)
    np.testing.assert_array_equal(p.std, std)
    want = np.clip((raw - mean) / (std + np.float32(1e-5)), -5, 5)
    np.testing.assert_allclose(p.x, want, rtol=1e-6)
    assert p.x[10, 4] == 5.0  # the volume outlier is clipped
    back = p.denormalise(p.x)
    ok = np.abs(want) < 5
    np.testing.assert_allclose(back[ok], raw[ok], rtol=1e-5)
    assert back.dtype == np.float64


def test_time_features_wall_clock_monday_zero() -> None:
    ts = np.array(["2024-03-01T13:45", "2023-12-31T23:59", "1999-02-28T00:00"], dtype="datetime64[us]")
    assert time_features(ts).tolist() == [[45, 13, 4, 1, 3], [59, 23, 6, 31, 12], [0, 0, 6, 28, 2]]
    df = candles(5).with_columns(pl.col("ts").dt.convert_time_zone("Asia/Tokyo"))  # UTC+9: local fields
    p = prepare_series(df, future(df, 2))
    assert p.x_stamp[0].tolist() == [0, 9, 4, 1, 3]  # 2024-03-01 00:00 UTC is Friday 09:00 in Tokyo


def test_missing_volume_gives_zero_volume_and_amount(predictor: KronosPredictor) -> None:
    df = candles(60).drop("volume", "amount")
    p = prepare_series(df, future(df, 4))
    assert (p.mean[4:] == 0).all() and (p.std[4:] == 0).all() and (p.x[:, 4:] == 0).all()
    fc = predictor.forecast(df, future(df, 4), n_paths=3, seeds=1)
    assert np.abs(fc.paths[..., 4:]).max() <= 5 * 1e-5 + 1e-9  # only predictions x 1e-5 survive


def test_missing_or_null_amount_is_volume_times_mean_price() -> None:
    df = candles(30)
    derived = (df["volume"] * (df["open"] + df["high"] + df["low"] + df["close"]) / 4).to_numpy().astype(np.float32)
    for frame in (df.drop("amount"), df.with_columns(pl.lit(None, dtype=pl.Float64).alias("amount"))):
        p = prepare_series(frame, future(frame, 2))
        np.testing.assert_allclose(p.denormalise(p.x)[:, 5], derived, rtol=1e-5)
    partial = df.with_columns(pl.when(pl.int_range(30) < 5).then(None).otherwise(pl.col("amount")).alias("amount"))
    p = prepare_series(partial, future(df, 2))
    amt = p.denormalise(p.x)[:, 5]
    np.testing.assert_allclose(amt[:5], derived[:5], rtol=1e-4)
    np.testing.assert_allclose(amt[5:], df["amount"].to_numpy()[5:], rtol=1e-4)


def _bad(df: pl.DataFrame, col: str, row: int, value: float | None) -> pl.DataFrame:
    return df.with_columns(pl.when(pl.int_range(df.height) == row).then(value).otherwise(pl.col(col)).alias(col))


@pytest.mark.parametrize(
    "mutate,fut,error,match",
    [
        (lambda d: d.drop("close"), None, MissingColumnsError, "close"),
        (lambda d: d.drop("ts"), None, MissingColumnsError, "ts"),
        (lambda d: _bad(d, "close", 3, float("nan")), None, NonFiniteInputError, "'close'"),
        (lambda d: _bad(d, "high", 3, None), None, NonFiniteInputError, "'high'"),
        (lambda d: _bad(d, "volume", 7, float("inf")), None, NonFiniteInputError, "'volume'"),
        (lambda d: _bad(d, "volume", 7, None), None, NonFiniteInputError, "'volume'"),
        (lambda d: d.reverse(), None, TimestampOrderError, "not sorted"),
        (lambda d: pl.concat([d, d.tail(1)]), None, TimestampOrderError, "duplicate"),
        (lambda d: d, lambda f: [f[0] - timedelta(days=1), *f[1:]], TimestampOrderError, "not after the last bar"),
        (lambda d: d, lambda f: f[::-1], TimestampOrderError, "future_ts"),
        (lambda d: d, lambda f: [], KronosInputError, "no future timestamps"),
        (lambda d: d.head(0), None, KronosInputError, "empty"),
        (lambda d: d.with_columns(pl.col("ts").cast(pl.Utf8)), None, KronosInputError, "datetimes"),
    ],
)
def test_bad_inputs_raise_value_errors_naming_the_problem(  # type: ignore[no-untyped-def]
    predictor: KronosPredictor, mutate, fut, error, match
) -> None:
    df = candles(40)
    f = future(df, 5)
    with pytest.raises(error, match=match) as exc:
        predictor.forecast(mutate(df), fut(f) if fut else f, n_paths=2)
    assert isinstance(exc.value, ValueError)


def test_horizon_longer_than_the_context_allows(predictor: KronosPredictor) -> None:
    df = candles(40)
    with pytest.raises(HorizonTooLongError, match="max_context 64"):
        predictor.forecast(df, future(df, 65), n_paths=1)  # the final decode window must hold the horizon


@pytest.mark.parametrize("policy,window", [("exact", 64), ("trim", 58)])
def test_a_long_history_is_cut_before_it_is_normalised(networks: tuple, policy: str, window: int) -> None:
    """The model sees, and is normalised on, only the window it forecasts from: a long frame whose old bars sit
    at a far other price level gives bitwise the forecast of its last window."""
    model, tokenizer = networks
    pred = KronosPredictor(model, tokenizer, device="cpu", max_context=64, context_policy=policy)  # type: ignore[arg-type]
    recent = candles(window, seed=4, start=START + timedelta(hours=500))
    old = candles(500, seed=5).with_columns(pl.col("open", "high", "low", "close") * 10)
    long = pl.concat([old, recent])
    assert pred.history_window(6) == window
    a = pred.forecast(long, future(long, 6), n_paths=3, seeds=2)
    b = pred.forecast(recent, future(recent, 6), n_paths=3, seeds=2)
    np.testing.assert_array_equal(a.paths, b.paths)
    np.testing.assert_array_equal(a.history_close, recent["close"].to_numpy())
    stats_of_all = prepare_series(long, future(long, 6))  # what normalising the whole frame would give
    assert not np.allclose(stats_of_all.mean, pred.prepare(long, future(long, 6)).mean)


def test_seed_fixes_the_paths(predictor: KronosPredictor) -> None:
    df = candles(80)
    a = predictor.forecast(df, future(df, 6), n_paths=5, seeds=11, temperature=0.8, top_p=0.95)
    b = predictor.forecast(df, future(df, 6), n_paths=5, seeds=11, temperature=0.8, top_p=0.95)
    c = predictor.forecast(df, future(df, 6), n_paths=5, seeds=12, temperature=0.8, top_p=0.95)
    np.testing.assert_array_equal(a.paths, b.paths)
    assert not np.array_equal(a.paths, c.paths)
    assert a.paths.shape == (5, 6, 6) and a.paths.dtype == np.float64 and np.isfinite(a.paths).all()


def test_batches_of_different_lengths_match_single_runs(predictor: KronosPredictor) -> None:
    frames = [candles(30, seed=1), candles(75, seed=2), candles(100, seed=3)]  # 100 + 5 > max_context 64
    futs = [future(f, 5) for f in frames]
    batch = predictor.predict_paths(frames, futs, n_paths=4, seeds=[1, 2, 3])
    for i, (f, t) in enumerate(zip(frames, futs)):
        alone = predictor.forecast(f, t, n_paths=4, seeds=i + 1)
        np.testing.assert_array_equal(batch[i].paths, alone.paths)
        assert batch[i].paths.shape == (4, 5, 6)


def test_reference_mode_matches_fast_mode(predictor: KronosPredictor) -> None:
    df = candles(40)
    fast = predictor.forecast(df, future(df, 6), n_paths=4, seeds=5, mode="fast")
    ref = predictor.forecast(df, future(df, 6), n_paths=4, seeds=5, mode="reference")
    np.testing.assert_allclose(fast.paths, ref.paths, rtol=1e-4)


def test_paths_and_json(predictor: KronosPredictor) -> None:
    df = candles(60)
    fc = predictor.forecast(df, future(df, 6), n_paths=8, seeds=3)
    np.testing.assert_allclose(fc.mean_path, fc.paths.mean(0))
    np.testing.assert_allclose(fc.median_path, np.median(fc.paths, 0))
    np.testing.assert_array_equal(fc.history_close, df["close"].to_numpy())
    doc = json.loads(json.dumps(fc.to_dict()))
    assert len(doc["paths"]) == 8 and len(doc["paths"][0]) == 6 and len(doc["paths"][0][0]) == 6
    assert doc["timestamps"][0] == "2024-03-03T12:00:00Z"
    assert "summary" not in doc  # summaries are the forecasting layer's (the CLI adds them)


def test_mismatched_vocabularies_and_devices(networks: tuple) -> None:
    _, tokenizer = networks
    with pytest.raises(KronosInputError, match="bits"):
        small_vocab = KronosConfig(d_model=16, n_layers=1, n_heads=2, ff_dim=16, s1_bits=8, s2_bits=8)
        KronosPredictor(Kronos(small_vocab), tokenizer)
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")
        assert resolve_device(None).type in ("cpu", "mps")


def test_start_is_utc() -> None:
    assert candles(2)["ts"].dtype == pl.Datetime("us", "UTC")
    assert candles(2)["ts"][0] == datetime(2024, 3, 1, tzinfo=timezone.utc)


def test_num_threads_applies_only_while_sampling(networks: tuple) -> None:
    model, tokenizer = networks
    pred = KronosPredictor(model, tokenizer, device="cpu", max_context=64, num_threads=1)
    torch.set_num_threads(2)
    df = candles(30)
    assert pred.forecast(df, future(df, 3), n_paths=2).paths.shape == (2, 3, 6)
    assert torch.get_num_threads() == 2 and pred.provenance()["num_threads"] == 1
