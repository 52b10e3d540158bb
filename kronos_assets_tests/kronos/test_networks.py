"""Tokenizer and predictor internals against the spec's formulas (§3-§5, §9 items 1-8)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kronos_assets.kronos.decoding import decode_rows
from kronos_assets.kronos.generate import prefill
from kronos_assets.kronos.layers import RMSNorm, RotaryEmbedding
from kronos_assets.kronos.model import Kronos
from kronos_assets.kronos.tokenizer import KronosTokenizer

from .conftest import TINY_MODEL, TINY_TOKENIZER, tiny_networks


def test_ids_are_lsb_first_per_half_and_zero_maps_to_bit_0() -> None:
    tok = KronosTokenizer(TINY_TOKENIZER).eval()
    with torch.no_grad():
        tok.quant_embed.weight.zero_()
        bias = torch.full((20,), -1.0)
        bias[[0, 2, 13]] = 1.0  # s1 bits 0 and 2, s2 bit 3
        bias[5] = 0.0  # exact zero quantises to -1 -> bit 0
        tok.quant_embed.bias.copy_(bias)
    s1, s2 = tok.encode(torch.randn(2, 3, 6))
    assert (s1 == 0b101).all() and (s2 == 0b1000).all() and s1.dtype == torch.int64
    code = tok.ids_to_code(s1[:1, :1], s2[:1, :1])[0, 0]
    want = torch.where(bias > 0, 1.0, -1.0) / math.sqrt(20)
    assert torch.equal(code, want)


def test_encode_signs_equal_code_signs_for_random_weights() -> None:
    _, tok = tiny_networks(3)
    x = torch.randn(1, 9, 6)
    z = tok.quant_embed(_encoder_hidden(tok, x))
    s1, s2 = tok.encode(x)
    assert torch.equal(tok.ids_to_code(s1, s2) > 0, z > 0)
    assert int(s1.max()) < 1024 and int(s2.max()) < 1024


def _encoder_hidden(tok: KronosTokenizer, x: torch.Tensor) -> torch.Tensor:
    h = tok.embed(x)
    for block in tok.encoder:
        h = block(h)
    return h  # no final norm in the tokenizer


def test_decode_is_causal_and_continuation_decodes_only_new_rows() -> None:
    _, tok = tiny_networks(1)
    g = torch.Generator().manual_seed(0)
    prefix = torch.randint(0, 1024, (2, 11), generator=g)
    cont = torch.randint(0, 1024, (2, 4, 5), generator=g)
    full = tok.decode(*(torch.cat([prefix[i].expand(4, -1), cont[i]], 1) for i in (0, 1)))
    with torch.inference_mode():  # the fast path's decode: the shared prefix once, then each row's tokens
        part = decode_rows(tok, (prefix[:1], prefix[1:]), cont[0], cont[1], 1)
    torch.testing.assert_close(part, full[:, 11:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tok.decode(prefix[:1], prefix[1:])[0], full[0, :11])  # earlier rows ignore later ones


def test_coarse_decode_uses_pre_projection_with_sqrt20_scale() -> None:
    _, tok = tiny_networks(2)
    s1 = torch.tensor([[1, 1023, 0]])
    bits = torch.stack([(s1 >> j) & 1 for j in range(10)], -1).float() * 2 - 1
    h = tok.post_quant_embed_pre(bits / math.sqrt(20))
    for block in tok.decoder:
        h = block(h)
    torch.testing.assert_close(tok.decode_coarse(s1), tok.head(h))


def test_rmsnorm_and_rope_conventions() -> None:
    norm = RMSNorm(4)
    x = torch.tensor([[1.0, -2.0, 3.0, 0.5]])
    torch.testing.assert_close(norm(x), x / torch.sqrt((x**2).mean() + 1e-5))
    rope = RotaryEmbedding(4)  # inv_freq = [1, 1/100]
    cos, sin = rope.cos_sin(0, 2)
    q = torch.tensor([1.0, 2.0, 3.0, 4.0]).expand(2, 4)
    out = RotaryEmbedding.apply(q, cos, sin)
    assert torch.equal(out[0], q[0])  # position 0 is the identity
    a, b = 1.0, 0.01  # half-split: pairs are (0, 2) and (1, 3)
    want = torch.tensor(
        [
            1 * math.cos(a) - 3 * math.sin(a),
            2 * math.cos(b) - 4 * math.sin(b),
            3 * math.cos(a) + 1 * math.sin(a),
            4 * math.cos(b) + 2 * math.sin(b),
        ]
    )
    torch.testing.assert_close(out[1], want)


def test_embedding_scales_by_sqrt_d_and_adds_time_features_in_order() -> None:
    model = Kronos(TINY_MODEL).eval()
    s1, s2 = torch.tensor([[3]]), torch.tensor([[7]])
    stamp = torch.tensor([[[59, 23, 6, 31, 12]]])  # minute, hour, weekday, day, month
    e = model.embedding
    d = TINY_MODEL.d_model
    want = e.fusion_proj(torch.cat([e.emb_s1.weight[3] * math.sqrt(d), e.emb_s2.weight[7] * math.sqrt(d)]))
    te = model.time_emb
    want = want + te.minute_embed.weight[59] + te.hour_embed.weight[23] + te.weekday_embed.weight[6]
    want = want + te.day_embed.weight[31] + te.month_embed.weight[12]
    torch.testing.assert_close(model.embed(s1, s2, stamp)[0, 0], want)


def _window(n: int, rows: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s1 = torch.randint(0, 1024, (rows, n), generator=g)
    s2 = torch.randint(0, 1024, (rows, n), generator=g)
    stamp = torch.stack([torch.randint(0, hi, (rows, n), generator=g) for hi in (60, 24, 7, 32, 13)], -1)
    return s1, s2, stamp


def test_dependency_layer_formula() -> None:
    model, _ = tiny_networks(4)
    s1, s2, stamp = _window(10)
    ctx = model.context(s1, s2, stamp)
    picked = torch.tensor([17])
    ca, d = model.dep_layer.cross_attn, TINY_MODEL.d_model
    q = ca.q_proj(model.embedding.emb_s1.weight[17]).view(4, 1, d // 4)  # raw emb_s1 row, 4 heads
    k = ca.k_proj(ctx[0]).view(10, 4, d // 4).transpose(0, 1)
    v = ca.v_proj(ctx[0]).view(10, 4, d // 4).transpose(0, 1)
    att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d // 4), -1) @ v  # all positions, no mask, no RoPE
    a = ca.out_proj(att.transpose(0, 1).reshape(1, d))
    want = model.head.proj_s2(model.dep_layer.norm(ctx[0, -1] + a))
    torch.testing.assert_close(model.s2_logits(ctx, picked), want, rtol=1e-5, atol=1e-5)


def test_prefill_and_extend_match_the_full_window() -> None:
    """The fast path's caches (generate.py) against a full recompute: one window shared by 4 rows, extended by
    one token and then by a chunk of two."""
    model, _ = tiny_networks(5)
    hist1, hist2, hist_stamp = _window(12, seed=1)
    new1, new2, new_stamp = _window(3, rows=4, seed=2)
    rows_stamp = new_stamp[:1].expand(4, -1, -1)
    with torch.inference_mode():
        state = prefill(model, hist1, hist2, hist_stamp, paths=4, capacity=3)
        whole = model.context(hist1, hist2, hist_stamp)
        torch.testing.assert_close(model.s1_logits(state.last)[0], model.s1_logits(whole)[0, -1])
        model.context(new1[:, :1], new2[:, :1], rows_stamp[:, :1], state)
        model.context(new1[:, 1:], new2[:, 1:], rows_stamp[:, 1:], state)
        full = model.context(
            torch.cat([hist1.expand(4, -1), new1], 1),
            torch.cat([hist2.expand(4, -1), new2], 1),
            torch.cat([hist_stamp, new_stamp[:1]], 1),
        )
        torch.testing.assert_close(state.last, full[:, -1], rtol=1e-5, atol=1e-5)
        picked = torch.tensor([1, 2, 3, 4])
        cached = model.s2_logits(state.last, picked, state.dep)
        torch.testing.assert_close(cached, model.s2_logits(full, picked), rtol=1e-5, atol=1e-5)


def test_attention_is_causal_with_positions_from_window_start() -> None:
    model, _ = tiny_networks(6)
    s1, s2, stamp = _window(8)
    a = model.context(s1, s2, stamp)
    s1b = s1.clone()
    s1b[0, -1] = (s1[0, -1] + 1) % 1024
    b = model.context(s1b, s2, stamp)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])  # earlier positions ignore later tokens
    shifted = model.context(s1[:, 1:], s2[:, 1:], stamp[:, 1:])  # drop one: positions restart at 0
    assert not torch.allclose(shifted[:, -1], a[:, -1])
    assert not F.cosine_similarity(shifted[0, -1], a[0, -1], dim=0).isnan()


def test_dependency_layer_refuses_queries_it_cannot_align() -> None:
    model, _ = tiny_networks(7)
    s1, s2, stamp = _window(6)
    ctx = model.context(s1, s2, stamp)
    with pytest.raises(ValueError, match="3 queries over 6 context rows"):
        model.dep_layer(ctx[:, :3], ctx[:, :3], ctx)
