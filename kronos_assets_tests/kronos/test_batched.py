"""Many series in one model batch: a series' tokens depend only on itself and its seed; its paths agree within
float rounding across batch sizes and bitwise for equal batch sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kronos_assets.kronos.config import KRONOS_MINI, TOKENIZER_2K
from kronos_assets.kronos.generate import GenerationConfig, generate, generate_batch
from kronos_assets.kronos.model import Kronos
from kronos_assets.kronos.predictor import KronosPredictor
from kronos_assets.kronos.sampling import SamplingParams, sample_tokens, sample_tokens_grouped
from kronos_assets.kronos.tokenizer import KronosTokenizer

from .conftest import candles, future

SAMPLING = SamplingParams(temperature=1.0, top_k=0, top_p=0.9)


def _histories(tok: KronosTokenizer, g: int, n: int, horizon: int, seed: int = 0):  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(seed)
    s1, s2 = tok.encode(torch.randn(g, n, 6, generator=gen))
    stamps = torch.stack([torch.randint(0, hi, (g, n + horizon), generator=gen) for hi in (60, 24, 7, 32, 13)], -1)
    return s1, s2, stamps[:, :n], stamps[:, n:]


def _gens(seeds: list[int | None]) -> list[torch.Generator | None]:
    return [None if s is None else torch.Generator().manual_seed(s) for s in seeds]


def _pick(hist: tuple, idx: list[int]) -> tuple:
    return tuple(t[idx] for t in hist)


@pytest.mark.parametrize("params", [SAMPLING, SamplingParams(top_k=5), SamplingParams(temperature=0.7, top_p=1.0)])
def test_grouped_sampling_draws_what_each_block_draws_alone(params: SamplingParams) -> None:
    logits = torch.randn(3 * 7, 50, generator=torch.Generator().manual_seed(0)) * 3
    grouped = sample_tokens_grouped(logits, params, _gens([1, 2, 3]))
    for j in range(3):
        alone = sample_tokens(logits[j * 7 : (j + 1) * 7], params, torch.Generator().manual_seed(j + 1))
        assert torch.equal(grouped[j * 7 : (j + 1) * 7], alone)
    # None draws from torch's default generator, as torch.multinomial does
    torch.manual_seed(5)
    default = sample_tokens_grouped(logits[:7], params, [None])
    torch.manual_seed(5)
    assert torch.equal(default, sample_tokens(logits[:7], params, None))


@pytest.mark.parametrize(
    "length,horizon,max_context,policy",
    [(30, 10, 64, "exact"), (30, 10, 32, "exact"), (50, 6, 32, "trim"), (8, 8, 8, "exact")],
)
def test_batch_of_one_is_the_single_fast_path(
    networks: tuple, length: int, horizon: int, max_context: int, policy: str
) -> None:
    model, tok = networks
    hist = _histories(tok, 1, length, horizon)
    cfg = GenerationConfig(
        horizon=horizon, n_paths=5, sampling=SAMPLING, max_context=max_context, context_policy=policy
    )  # type: ignore[arg-type]
    single = generate(model, tok, *(t[0] for t in hist), cfg, torch.Generator().manual_seed(4))
    batch = generate_batch(model, tok, *hist, cfg, _gens([4]))[0]
    assert torch.equal(single.s1, batch.s1) and torch.equal(single.s2, batch.s2)
    assert torch.equal(single.bars, batch.bars)


@pytest.mark.parametrize("max_context,policy", [(64, "exact"), (32, "exact"), (32, "trim")])
def test_a_series_draws_the_same_in_any_batch_of_the_same_size(networks: tuple, max_context: int, policy: str) -> None:
    model, tok = networks
    hist = _histories(tok, 4, 30, 8)
    cfg = GenerationConfig(horizon=8, n_paths=6, sampling=SAMPLING, max_context=max_context, context_policy=policy)  # type: ignore[arg-type]
    full = generate_batch(model, tok, *hist, cfg, _gens([10, 11, 12, 13]))
    for j in range(4):
        same_size = generate_batch(model, tok, *_pick(hist, [j, 0, 1, 2]), cfg, _gens([10 + j, 1, 2, 3]))[0]
        assert torch.equal(full[j].s1, same_size.s1) and torch.equal(full[j].s2, same_size.s2)
        assert torch.equal(full[j].bars, same_size.bars)
        alone = generate_batch(model, tok, *_pick(hist, [j]), cfg, _gens([10 + j]))[0]
        assert torch.equal(full[j].s1, alone.s1) and torch.equal(full[j].s2, alone.s2)
        torch.testing.assert_close(full[j].bars, alone.bars, rtol=1e-5, atol=1e-5)
        ref_cfg = GenerationConfig(
            horizon=8, n_paths=6, sampling=SAMPLING, max_context=max_context, context_policy=policy, mode="reference"
        )  # type: ignore[arg-type]
        ref = generate(model, tok, *(t[j] for t in hist), ref_cfg, torch.Generator().manual_seed(10 + j))
        assert torch.equal(full[j].s1, ref.s1) and torch.equal(full[j].s2, ref.s2)  # the reference tokens
        torch.testing.assert_close(full[j].bars, ref.bars, rtol=1e-4, atol=1e-4)
    assert not torch.equal(full[0].s1, full[1].s1)


def test_generate_batch_checks_its_inputs(networks: tuple) -> None:
    model, tok = networks
    hist = _histories(tok, 2, 10, 3)
    cfg = GenerationConfig(horizon=3, n_paths=2, sampling=SAMPLING, max_context=32)
    with pytest.raises(ValueError, match="1 generators for 2 series"):
        generate_batch(model, tok, *hist, cfg, _gens([1]))
    with pytest.raises(ValueError, match="fast mode only"):
        generate_batch(model, tok, *hist, GenerationConfig(horizon=3, mode="reference"), _gens([1, 2]))


def test_sample_many_does_not_depend_on_the_rest_of_the_call(networks: tuple) -> None:
    model, tok = networks
    pred = KronosPredictor(model, tok, device="cpu", max_context=64, batch_size=3, workers=2)
    frames = [
        candles(40, seed=1),
        candles(40, seed=2),
        candles(75, seed=3),
        candles(40, seed=4),
        candles(40, seed=5),
        candles(100, seed=6),
    ]
    futs = [future(f, 5) for f in frames]
    seeds = [7, 8, 9, 10, 11, 12]
    together = pred.predict_paths(frames, futs, n_paths=4, seeds=seeds)
    pred.workers = 1
    assert all(
        np.array_equal(a.paths, b.paths)
        for a, b in zip(together, pred.predict_paths(frames, futs, n_paths=4, seeds=seeds))
    )
    for i in (0, 2, 4, 5):  # alone; and in another order with other company
        alone = pred.forecast(frames[i], futs[i], n_paths=4, seeds=seeds[i], keep_tokens=True)
        with_tokens = pred.predict_paths(frames, futs, n_paths=4, seeds=seeds, keep_tokens=True)[i]
        assert torch.equal(alone.generated.s1, with_tokens.generated.s1)
        assert torch.equal(alone.generated.s2, with_tokens.generated.s2)
        np.testing.assert_allclose(together[i].paths, alone.paths, rtol=1e-5)
    shuffled = pred.predict_paths(frames[::-1], futs[::-1], n_paths=4, seeds=seeds[::-1])
    for a, b in zip(together, shuffled[::-1]):
        np.testing.assert_allclose(a.paths, b.paths, rtol=1e-5)
    assert not np.array_equal(together[0].paths, together[1].paths)


def test_kronos_mini_dimensions_one_path(networks: tuple) -> None:
    """At d_model 256 MKL rounds GEMMs of a few rows differently from larger ones: a series keeps its tokens in
    any company, and its paths agree within float rounding."""
    torch.manual_seed(0)
    pred = KronosPredictor(
        Kronos(KRONOS_MINI), KronosTokenizer(TOKENIZER_2K), device="cpu", max_context=64, batch_size=4, workers=1
    )
    frames = [candles(48, seed=s) for s in (1, 2, 3)]
    futs = [future(f, 3) for f in frames]
    for n_paths in (1, 3):
        together = pred.predict_paths(frames, futs, n_paths=n_paths, seeds=[1, 2, 3], keep_tokens=True)
        alone = pred.forecast(frames[1], futs[1], n_paths=n_paths, seeds=2, keep_tokens=True)
        assert torch.equal(together[1].generated.s1, alone.generated.s1)
        assert torch.equal(together[1].generated.s2, alone.generated.s2)
        np.testing.assert_allclose(together[1].paths, alone.paths, rtol=1e-5)


def test_reference_mode_runs_one_series_at_a_time(predictor: KronosPredictor) -> None:
    df = candles(40)
    fast = predictor.predict_paths([df, df], [future(df, 4)] * 2, n_paths=3, seeds=[5, 6])
    ref = predictor.predict_paths([df, df], [future(df, 4)] * 2, n_paths=3, seeds=[5, 6], mode="reference")
    for f, r in zip(fast, ref):
        np.testing.assert_allclose(f.paths, r.paths, rtol=1e-3)


def test_batch_settings_are_validated_and_recorded(networks: tuple) -> None:
    model, tok = networks
    with pytest.raises(ValueError, match="batch_size"):
        KronosPredictor(model, tok, device="cpu", batch_size=0)
    with pytest.raises(ValueError, match="workers"):
        KronosPredictor(model, tok, device="cpu", workers=0)
    assert KronosPredictor(model, tok, device="cpu", batch_size=5).provenance()["batch_size"] == 5
