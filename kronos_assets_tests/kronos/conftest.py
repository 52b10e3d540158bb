"""Fixtures of the Kronos tests: tiny networks with random weights, checkpoints saved in tmp, candle frames."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl
import pytest
import torch

from kronos_assets.kronos.config import KronosConfig, TokenizerConfig
from kronos_assets.kronos.hub import save_checkpoint
from kronos_assets.kronos.model import Kronos
from kronos_assets.kronos.predictor import KronosPredictor
from kronos_assets.kronos.tokenizer import KronosTokenizer

TINY_TOKENIZER = TokenizerConfig(d_model=32, n_heads=2, ff_dim=64, n_enc_layers=3, n_dec_layers=3)
TINY_MODEL = KronosConfig(d_model=32, n_layers=2, n_heads=2, ff_dim=64)
START = datetime(2024, 3, 1, tzinfo=timezone.utc)


def tiny_networks(seed: int = 0) -> tuple[Kronos, KronosTokenizer]:
    """Random tiny networks, rescaled so that tests comparing sampled tokens mean something.

    With default init the N(0,1) embedding rows (x sqrt(d)) swamp attention and the logits are nearly flat, so
    two different contexts would still draw the same tokens. Small embeddings and a 10x head make the next-token
    distribution peaked and clearly context-dependent.
    """
    torch.manual_seed(seed)
    model, tokenizer = Kronos(TINY_MODEL).eval(), KronosTokenizer(TINY_TOKENIZER).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                module.weight.mul_(0.05)
        model.head.proj_s1.weight.mul_(10)
        model.head.proj_s2.weight.mul_(10)
    return model, tokenizer


def candles(n: int = 120, seed: int = 0, start: datetime = START, step: timedelta = timedelta(hours=1)) -> pl.DataFrame:
    """A GBM candle frame in the project's schema (ts UTC, OHLCV, amount)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.005, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.005, n))
    volume = rng.uniform(10, 20, n)
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
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))


def future(df: pl.DataFrame, horizon: int, step: timedelta = timedelta(hours=1)) -> list[datetime]:
    last = df["ts"][-1]
    return [last + step * (i + 1) for i in range(horizon)]


@pytest.fixture(scope="session")
def networks() -> tuple[Kronos, KronosTokenizer]:
    return tiny_networks()


@pytest.fixture(scope="session")
def predictor(networks: tuple[Kronos, KronosTokenizer]) -> KronosPredictor:
    model, tokenizer = networks
    return KronosPredictor(model, tokenizer, device="cpu", max_context=64)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, networks: tuple[Kronos, KronosTokenizer]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    model, tokenizer = networks
    return {
        "model": save_checkpoint(model, root / "model"),
        "tokenizer": save_checkpoint(tokenizer, root / "tokenizer"),
    }


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # The tiny networks run thousands of small ops; with several intra-op threads on a shared 2-core machine
    # OpenMP barriers dominate (measured 5-10x slower under load). Restored after each test.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
