"""The training loop: the loss falls, seeds reproduce, resume equals an uninterrupted run, checkpoints load."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from kronos_assets.forecasting.interface import ForecastRequest, Sampling
from kronos_assets.forecasting.kronos_forecaster import KronosForecaster
from kronos_assets.kronos.hub import load_checkpoint
from kronos_assets.training.run import write_checkpoint
from kronos_assets.training.trainer import ResumeError, Trainer, build_scratch, weights_equal

from .conftest import TINY_MODEL, TINY_TOKENIZER, gbm_candles, tiny_spec, tiny_windows


def _train(spec, seed: int = 0, **kw):
    model, tok = build_scratch(TINY_TOKENIZER, TINY_MODEL, seed)
    return Trainer(model, tok, tiny_windows(), spec, **kw)


def test_loss_falls_on_a_tiny_problem() -> None:
    events = []
    res = _train(tiny_spec(40, 40, log_every=10), callback=events.append).fit()
    tok, pred = res.curve("tokenizer"), res.curve("predictor")
    assert len(tok) == 4 and len(pred) == 4 and len(events) == 8
    assert tok[-1]["parts"]["recon_full"] < 0.6 * tok[0]["parts"]["recon_full"]
    assert pred[-1]["loss"] < pred[0]["loss"] - 0.3
    assert pred[-1]["loss"] < math.log(16)  # better than a uniform guess over the 4-bit vocabulary
    assert all(math.isfinite(h["loss"]) for h in res.history)


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    a = _train(tiny_spec(6, 6)).fit()
    b = _train(tiny_spec(6, 6)).fit()
    assert weights_equal(a.model, b.model) and weights_equal(a.tokenizer, b.tokenizer)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    c = _train(tiny_spec(6, 6, seed=4)).fit()  # other batches
    assert not weights_equal(a.model, c.model)


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path: Path) -> None:
    spec = tiny_spec(10, 10)
    full = _train(spec, state_dir=tmp_path / "full").fit()

    first = _train(spec, state_dir=tmp_path / "cut").fit(max_steps=7)  # stops inside the tokenizer stage
    assert not first.finished
    files = {p.name for p in (tmp_path / "cut").rglob("*") if p.is_file()}
    assert files == {"state.json", "optimizer.safetensors", "config.json", "model.safetensors"}  # no pickle
    # A fresh process: other initial weights, everything must come from the state folder.
    second = _train(spec, seed=99, state_dir=tmp_path / "cut").fit(resume=True, max_steps=8)  # into the predictor
    assert not second.finished and second.resumed_from == {"stage": "tokenizer", "step": 7}
    third = _train(spec, seed=99, state_dir=tmp_path / "cut").fit(resume=True)
    assert third.finished
    assert weights_equal(full.model, third.model) and weights_equal(full.tokenizer, third.tokenizer)
    strip = lambda hist: [{k: v for k, v in h.items() if k != "elapsed_s"} for h in hist]  # noqa: E731
    assert strip(full.history) == strip(third.history)


def test_resume_refuses_a_state_of_other_settings(tmp_path: Path) -> None:
    _train(tiny_spec(4, 4, fingerprint="a"), state_dir=tmp_path / "s").fit(max_steps=2)
    with pytest.raises(ResumeError, match="other settings"):
        _train(tiny_spec(4, 4, fingerprint="b"), state_dir=tmp_path / "s").fit(resume=True)


def test_trained_checkpoint_loads_through_the_normal_path(tmp_path: Path) -> None:
    res = _train(tiny_spec(4, 4)).fit()
    write_checkpoint(res.model, res.tokenizer, tmp_path / "ck")
    for part, module in (("model", res.model), ("tokenizer", res.tokenizer)):
        loaded = load_checkpoint(tmp_path / "ck" / part)
        assert loaded.info.kind == part
        assert weights_equal(loaded.module, module)
    fc = KronosForecaster(tmp_path / "ck" / "model", tmp_path / "ck" / "tokenizer", device="cpu", max_context=64)
    frame = gbm_candles(40)
    last = frame["ts"][-1]
    req = ForecastRequest(
        "A/USDT", "1h", last, frame, [last + (frame["ts"][1] - frame["ts"][0]) * (i + 1) for i in range(4)], seed=1
    )
    paths = fc.forecast_batch([req], Sampling(n_paths=3, horizon=4))[0]
    assert paths.shape == (3, 4, 6) and np.isfinite(paths).all()
