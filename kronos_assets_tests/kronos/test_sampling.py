"""Sampling filters (spec §6): temperature, top-k with ties, top-p with the spec's worked example."""

from __future__ import annotations

import math

import pytest
import torch

from kronos_assets.kronos.errors import SamplingSettingsError
from kronos_assets.kronos.sampling import NoiseStream, SamplingParams, draw_noise, filter_logits, sample_tokens

INF = float("-inf")


def test_top_p_worked_example_keeps_four_tokens() -> None:
    probs = torch.tensor([0.563, 0.207, 0.126, 0.076, 0.028])
    logits = probs.log()[torch.tensor([3, 0, 4, 1, 2])]  # shuffled: the filter must map back to positions
    out = filter_logits(logits, top_k=0, top_p=0.9)
    kept = torch.isfinite(out)
    assert kept.tolist() == [True, True, False, True, True]  # all but the 0.028 token
    assert torch.equal(out[kept], logits[kept])


def test_top_p_always_keeps_the_top_token_and_one_is_a_no_op() -> None:
    logits = torch.tensor([[5.0, 0.0, -1.0]])
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).tolist() == [[True, False, False]]
    assert torch.equal(filter_logits(logits, top_p=1.0), logits)


def test_top_k_keeps_ties_and_overrides_top_p() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, 2.0, 0.0]])
    assert torch.isfinite(filter_logits(logits, top_k=2, top_p=0.01)).tolist() == [[False, True, True, True, False]]
    assert torch.isfinite(filter_logits(logits, top_k=1)).sum() == 1
    assert torch.equal(filter_logits(logits, top_k=99), logits)


def test_temperature_scales_logits_before_softmax() -> None:
    logits = torch.tensor([[2.0, 0.0]])
    gen = torch.Generator().manual_seed(0)
    n = 4000
    for t, p_first in ((1.0, 1 / (1 + math.exp(-2))), (0.5, 1 / (1 + math.exp(-4))), (4.0, 1 / (1 + math.exp(-0.5)))):
        draws = sample_tokens(logits.expand(n, 2).contiguous(), SamplingParams(t, 0, 1.0), gen)
        assert abs((draws == 0).float().mean().item() - p_first) < 0.03


def test_greedy_and_seeded_sampling() -> None:
    logits = torch.randn(8, 50)
    greedy = sample_tokens(logits, SamplingParams(1.0, 1, 1.0), torch.Generator().manual_seed(1))
    assert torch.equal(greedy, logits.argmax(-1))
    p = SamplingParams(1.0, 0, 0.9)
    a = sample_tokens(logits, p, torch.Generator().manual_seed(5))
    b = sample_tokens(logits, p, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.dtype == torch.int64 and a.shape == (8,)


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"top_k": -1}, {"top_p": 0.0}, {"top_p": 1.5}])
def test_bad_settings(kwargs: dict) -> None:
    with pytest.raises(SamplingSettingsError):
        SamplingParams(**kwargs)


def _spec_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Spec §6 step 2 literally: sort, softmax cumsum, mark > top_p, shift right, keep the top token."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    drop = torch.softmax(sorted_logits, dim=-1).cumsum(-1) > top_p
    drop[..., 1:] = drop[..., :-1].clone()
    drop[..., 0] = False
    return logits.masked_fill(drop.scatter(-1, order, drop), INF)


@pytest.mark.parametrize("scale", [0.3, 1.0, 5.0])
def test_top_p_equals_the_spec_algorithm_on_random_logits(scale: float) -> None:
    g = torch.Generator().manual_seed(int(scale * 10))
    logits = torch.randn(64, 1024, generator=g) * scale
    for top_p in (0.05, 0.5, 0.9, 0.99):
        assert torch.equal(filter_logits(logits, 0, top_p), _spec_top_p(logits, top_p))


def test_noise_drawn_ahead_on_a_thread_is_the_inline_noise() -> None:
    like = torch.empty(0)
    inline_gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    inline = [draw_noise(inline_gens, 3, 64, like) for _ in range(7)]
    with NoiseStream([torch.Generator().manual_seed(s) for s in (1, 2)], 3, 64, 7, like, ahead=2) as stream:
        ahead = [stream.next() for _ in range(7)]
    assert all(torch.equal(a, b) for a, b in zip(inline, ahead))
    # a stream abandoned half-way stops its thread; a consumer past the end waits only until its deadline
    stream = NoiseStream([torch.Generator()], 1, 8, 100, like, ahead=1, timeout_s=0.2)
    stream.next()
    stream.close()
    assert not stream._thread.is_alive()
    short = NoiseStream([torch.Generator()], 1, 8, 1, like, timeout_s=0.2)
    short.next()
    with pytest.raises(RuntimeError, match="no sampling noise within 0.2 s"):
        short.next()
    short.close()
