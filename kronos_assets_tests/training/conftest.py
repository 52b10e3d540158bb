"""Fixtures of the training tests: tiny networks, GBM candle frames and a tiny training spec."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import numpy as np
import polars as pl
import pytest
import torch

from kronos_assets.kronos.config import KronosConfig, TokenizerConfig
from kronos_assets.training.config import StageSettings
from kronos_assets.training.data import WindowSet, series_from_frame
from kronos_assets.training.trainer import TrainSpec

TINY_TOKENIZER = TokenizerConfig(
    d_model=16, n_heads=2, ff_dim=32, n_enc_layers=2, n_dec_layers=2, s1_bits=4, s2_bits=4, group_size=4
)
TINY_MODEL = KronosConfig(d_model=16, n_layers=1, n_heads=2, ff_dim=32, s1_bits=4, s2_bits=4)
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def gbm_candles(
    n: int = 600, seed: int = 0, start: datetime = START, step: timedelta = timedelta(hours=1), level: float = 100.0
) -> pl.DataFrame:
    """Candles in the project's schema with volatility clustering (so there is something to learn)."""
    rng = np.random.default_rng(seed)
    vol = 0.01 * np.exp(np.cumsum(rng.normal(0, 0.05, n)).clip(-1, 1))
    close = level * np.exp(np.cumsum(rng.normal(0, 1, n) * vol))
    open_ = np.concatenate([[level], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 1, n) * vol)
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 1, n) * vol)
    volume = rng.uniform(10, 20, n) * (1 + 50 * vol)
    return pl.DataFrame(
        {
            "ts": [start + step * i for i in range(n)],
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "amount": volume * close,
            "exchange": ["synthetic"] * n,
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("us").dt.replace_time_zone("UTC"))


def tiny_windows(n: int = 600, lookback: int = 24, horizon: int = 8, **kw) -> WindowSet:
    series = [
        series_from_frame("A/USDT", gbm_candles(n, 0), "1h"),
        series_from_frame("B/USDT", gbm_candles(n, 1, level=5.0), "1h"),
    ]
    return WindowSet(series, lookback, horizon, **kw)


def tiny_spec(tok_steps: int = 12, pred_steps: int = 12, **kw) -> TrainSpec:
    base = dict(log_every=4, save_every=5, val_windows=0, seed=3, fingerprint="tiny")
    base.update(kw)
    return TrainSpec(
        StageSettings(tok_steps, 8, 3e-3, warmup=2, grad_clip=2.0),
        StageSettings(pred_steps, 8, 3e-3, warmup=2, grad_clip=3.0),
        **base,
    )


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # Tiny networks on a shared 2-core machine: one intra-op thread is both fastest and deterministic.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
