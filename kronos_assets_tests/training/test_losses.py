"""Training forwards: the s2 head is trained as inference runs it; BSQ entropies; straight-through gradients."""

from __future__ import annotations

import math

import torch

from kronos_assets.kronos.model import Kronos
from kronos_assets.kronos.tokenizer import KronosTokenizer
from kronos_assets.training.losses import predictor_losses, soft_entropies, tokenizer_losses
from kronos_assets.training.trainer import init_weights

from .conftest import TINY_MODEL, TINY_TOKENIZER


def _stamps(b: int, t: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    cols = [torch.randint(0, n, (b, t), generator=g) for n in (60, 24, 7)]
    cols += [torch.randint(1, 32, (b, t), generator=g), torch.randint(1, 13, (b, t), generator=g)]
    return torch.stack(cols, dim=-1)


def test_teacher_forced_s2_logits_equal_inference_at_every_position() -> None:
    torch.manual_seed(0)
    model = Kronos(TINY_MODEL)
    init_weights(model, std=0.2)
    model.eval()
    b, t = 3, 12
    s1, s2 = torch.randint(0, 16, (b, t)), torch.randint(0, 16, (b, t))
    stamp = _stamps(b, t)
    with torch.no_grad():
        ctx = model.context(s1[:, :-1], s2[:, :-1], stamp[:, :-1])
        logits = model.s2_logits(ctx, s1[:, 1:])  # every position at once, as predictor_losses
        for pos in range(t - 1):
            window = model.context(s1[:, : pos + 1], s2[:, : pos + 1], stamp[:, : pos + 1])
            ref = model.s2_logits(window, s1[:, pos + 1])
            torch.testing.assert_close(logits[:, pos], ref, rtol=1e-5, atol=1e-5)


def test_predictor_loss_is_the_mean_of_both_cross_entropies() -> None:
    torch.manual_seed(0)
    model = Kronos(TINY_MODEL)
    init_weights(model)
    s1, s2 = torch.randint(0, 16, (2, 9)), torch.randint(0, 16, (2, 9))
    out = predictor_losses(model, s1, s2, _stamps(2, 9))
    assert torch.isclose(out.loss, (out.ce_s1 + out.ce_s2) / 2)
    assert abs(float(out.ce_s1.detach()) - math.log(16)) < 0.1  # near-uniform at init


def test_soft_entropies_bounds() -> None:
    d, g = 8, 4
    zero = torch.zeros(5, d)  # every bit undecided
    se, ce = soft_entropies(zero, 1 / math.sqrt(d), g, 100.0)
    assert math.isclose(float(se), d * math.log(2), rel_tol=1e-5)
    assert math.isclose(float(ce), d * math.log(2), rel_tol=1e-5)
    corner = torch.ones(5, d) / math.sqrt(d)  # all on one code: confident, no codebook usage
    se, ce = soft_entropies(corner, 1 / math.sqrt(d), g, 100.0)
    assert float(se) < 1e-3 and float(ce) < 1e-3


def test_tokenizer_gradients_pass_the_quantiser() -> None:
    torch.manual_seed(0)
    tok = KronosTokenizer(TINY_TOKENIZER)
    init_weights(tok)
    x = torch.randn(2, 10, 6)
    out = tokenizer_losses(tok, x)
    out.loss.backward()
    assert tok.embed.weight.grad is not None and float(tok.embed.weight.grad.abs().sum()) > 0
    assert tok.post_quant_embed_pre.weight.grad is not None
    assert float(out.codebook_entropy.detach()) <= TINY_TOKENIZER.codebook_dim * math.log(2) + 1e-4
