"""The demo checkpoint shipped in kronos_assets/checkpoints/demo: loadable, small, documented, and better than
random weights on held-out demo data."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from kronos_assets.configuration.settings import REPO_ROOT
from kronos_assets.forecasting.kronos_forecaster import KronosForecaster
from kronos_assets.kronos.hub import load_checkpoint
from kronos_assets.training.config import load_training_config
from kronos_assets.training.data import frames_from_synthetic
from kronos_assets.training.evaluate import evaluate_forecasters, kronos_forecaster
from kronos_assets.training.trainer import build_scratch

DEMO = REPO_ROOT / "kronos_assets" / "checkpoints" / "demo"


@pytest.fixture(scope="module")
def demo_run():
    if not (DEMO / "model" / "model.safetensors").is_file():
        pytest.fail(f"{DEMO} is missing; regenerate it with `.venv/bin/kronos-train demo`")
    return load_training_config(REPO_ROOT / "configs" / "training.yaml")["demo"]


def test_demo_checkpoint_loads_and_is_small(demo_run) -> None:
    total = 0
    for part in ("model", "tokenizer"):
        info = load_checkpoint(DEMO / part, kind=part).info
        total += info.size_bytes
    assert total < 5 * 2**20
    card = (DEMO / "MODEL_CARD.md").read_text()
    assert "kronos-train demo" in card and "random_walk_vol" in card and "random-weights" in card
    # the shipped weights are those of the configured architecture
    assert load_checkpoint(DEMO / "model").module.config == demo_run.scratch_model
    assert load_checkpoint(DEMO / "tokenizer").module.config == demo_run.scratch_tokenizer
    assert demo_run.data.lookback == 480  # the 1h history_bars of markets.yaml


def test_demo_checkpoint_beats_random_weights_on_held_out_crps(demo_run) -> None:
    d, ev = demo_run.data, demo_run.evaluation
    start = d.heldout_start
    end = start + timedelta(days=40)
    frames = frames_from_synthetic(d.symbols, d.timeframe, start - timedelta(hours=ev.history_bars + 1), end)
    model, tok = build_scratch(demo_run.scratch_tokenizer, demo_run.scratch_model, demo_run.seed)
    forecasters = {
        "demo": KronosForecaster(DEMO / "model", DEMO / "tokenizer", device="cpu", max_context=ev.max_context),
        "random-weights": kronos_forecaster(model.eval(), tok.eval(), "random-weights", ev.max_context),
    }
    held = evaluate_forecasters(
        forecasters,
        frames,
        d.timeframe,
        start,
        end,
        history_bars=ev.history_bars,
        origins_per_symbol=6,
        sampling=replace(ev.sampling, n_paths=16, seed=3, top_p=0.9, temperature=1.0, top_k=0),
    )
    assert held.n_forecasts == 12
    assert held.scores["demo"]["crps"] < held.scores["random-weights"]["crps"]
