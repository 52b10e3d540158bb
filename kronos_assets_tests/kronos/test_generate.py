"""Fast (KV-cached) generation against the reference full-recompute loop, and the context policies."""

from __future__ import annotations

import pytest
import torch

from kronos_assets.kronos import generate as gen_module
from kronos_assets.kronos.errors import HorizonTooLongError
from kronos_assets.kronos.generate import GenerationConfig, generate
from kronos_assets.kronos.model import Kronos
from kronos_assets.kronos.sampling import SamplingParams
from kronos_assets.kronos.tokenizer import KronosTokenizer

SAMPLING = SamplingParams(temperature=1.0, top_k=0, top_p=0.9)


def _history(tok: KronosTokenizer, n: int, horizon: int, seed: int = 0):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    s1, s2 = tok.encode(torch.randn(1, n, 6, generator=g))
    stamps = torch.stack([torch.randint(0, hi, (n + horizon,), generator=g) for hi in (60, 24, 7, 32, 13)], -1)
    return s1[0], s2[0], stamps[:n], stamps[n:]


def _run(nets: tuple[Kronos, KronosTokenizer], hist: tuple, seed: int, **cfg):  # type: ignore[no-untyped-def]
    model, tok = nets
    return generate(model, tok, *hist, GenerationConfig(sampling=SAMPLING, **cfg), torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "length,horizon,max_context",
    [
        (30, 10, 64),  # window never fills: the spec's exactness regime
        (30, 10, 40),  # fills exactly at the last step
        (30, 10, 32),  # slides for the last steps (exact policy recomputes)
        (50, 6, 32),  # history longer than the window from the start
    ],
)
def test_fast_draws_the_reference_tokens(networks: tuple, length: int, horizon: int, max_context: int) -> None:
    hist = _history(networks[1], length, horizon)
    for seed in (0, 1):
        for n_paths in (6, 1):  # one path: a slid window is one causal pass instead of shared history + rows
            cfg = {"horizon": horizon, "n_paths": n_paths, "max_context": max_context, "context_policy": "exact"}
            ref = _run(networks, hist, seed, mode="reference", **cfg)
            fast = _run(networks, hist, seed, mode="fast", **cfg)
            assert torch.equal(fast.s1, ref.s1) and torch.equal(fast.s2, ref.s2)
            torch.testing.assert_close(fast.bars, ref.bars, rtol=1e-4, atol=1e-4)
            assert fast.bars.shape == (n_paths, horizon, 6)
            assert n_paths == 1 or len({tuple(r) for r in fast.s1.tolist()}) > 1  # paths differ from each other


def test_same_seed_same_paths_other_seed_other_paths(networks: tuple) -> None:
    hist = _history(networks[1], 20, 8)
    a = _run(networks, hist, 3, horizon=8, n_paths=4)
    b = _run(networks, hist, 3, horizon=8, n_paths=4)
    c = _run(networks, hist, 4, horizon=8, n_paths=4)
    assert torch.equal(a.s1, b.s1) and torch.equal(a.bars, b.bars)
    assert not torch.equal(a.s1, c.s1)


def test_trim_policy_never_slides(networks: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tok = networks
    hist = _history(tok, 40, 8)
    calls = []
    real_prefill = gen_module.prefill

    def counting_prefill(model, s1, *a, **k):  # type: ignore[no-untyped-def]
        calls.append(s1.shape[1])
        return real_prefill(model, s1, *a, **k)

    monkeypatch.setattr(gen_module, "prefill", counting_prefill)
    trim = _run(networks, hist, 0, horizon=8, n_paths=3, max_context=32, context_policy="trim")
    assert calls == [24]  # one prefill of max_context - horizon history tokens
    calls.clear()
    exact = _run(networks, hist, 0, horizon=8, n_paths=3, max_context=32, context_policy="exact")
    assert len(calls) == 8  # the exact policy re-runs the slid window every step
    # trim == exact run on the last max_context - horizon history tokens
    cut = tuple(t[-24:] for t in hist[:3]) + (hist[3],)
    again = _run(networks, cut, 0, horizon=8, n_paths=3, max_context=32, context_policy="exact")
    assert torch.equal(trim.s1, again.s1) and torch.equal(trim.s2, again.s2)
    assert not torch.equal(trim.s1, exact.s1)
    ref = _run(networks, hist, 0, horizon=8, n_paths=3, max_context=32, context_policy="trim", mode="reference")
    assert torch.equal(trim.s1, ref.s1)


def test_policies_agree_when_everything_fits(networks: tuple) -> None:
    hist = _history(networks[1], 20, 8)
    a = _run(networks, hist, 9, horizon=8, n_paths=3, max_context=28, context_policy="trim")
    b = _run(networks, hist, 9, horizon=8, n_paths=3, max_context=28, context_policy="exact")
    assert torch.equal(a.s1, b.s1) and torch.equal(a.bars, b.bars)


def test_horizon_limits(networks: tuple) -> None:
    hist = _history(networks[1], 20, 8)
    with pytest.raises(HorizonTooLongError, match="horizon 9.*max_context 8"):
        GenerationConfig(horizon=9, max_context=8, context_policy="exact")
    with pytest.raises(HorizonTooLongError, match="trim"):
        GenerationConfig(horizon=8, max_context=8, context_policy="trim")
    out = _run(networks, hist, 0, horizon=8, n_paths=2, max_context=8, context_policy="exact")  # decode = horizon
    assert out.bars.shape == (2, 8, 6)
