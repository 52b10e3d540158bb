"""Kronos: the decoder-only predictor over (s1, s2) token pairs with its dependency layer (spec §5).

``context`` and ``s2_logits`` are the network's whole forward. Without caches they recompute windows like the
original (the reference mode and the training losses); with the ``KVCache``s of a ``DecodeState`` (one per block
and one for the dependency layer) they run the fast mode's prefill and its one-position steps (generate.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cached import (
    KVCache,
    from_heads,
    is_step,
    packed,
    project_heads,
    projection,
    rms,
    run_blocks,
    step_linear,
    to_heads,
)
from .config import DEP_HEADS, KronosConfig
from .layers import AttentionProjections, RMSNorm, TransformerBlock

# Time feature order of a stamp row, and table sizes (day and month are 1-based, row 0 unused).
STAMP_FIELDS = ("minute", "hour", "weekday", "day", "month")
_STAMP_SIZES = (60, 24, 7, 32, 13)


class HierarchicalEmbedding(nn.Module):
    def __init__(self, vocab_s1: int, vocab_s2: int, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.emb_s1 = nn.Embedding(vocab_s1, d_model)
        self.emb_s2 = nn.Embedding(vocab_s2, d_model)
        self.fusion_proj = nn.Linear(2 * d_model, d_model)

    def forward(self, s1: Tensor, s2: Tensor) -> Tensor:
        scale = math.sqrt(self.d_model)
        return self.fusion_proj(torch.cat((self.emb_s1(s1) * scale, self.emb_s2(s2) * scale), dim=-1))

    def fast(self, s1: Tensor, s2: Tensor) -> Tensor:
        """``forward`` within float rounding, as two table lookups and an addition: the fusion projection is
        linear, so each vocabulary's scaled rows are projected once (``packed``) instead of every token."""
        t1, t2 = packed(self, "tables", self._tables)
        return F.embedding(s1, t1).add_(F.embedding(s2, t2))

    def _tables(self) -> tuple[Tensor, Tensor]:
        d, scale = self.d_model, math.sqrt(self.d_model)
        w = self.fusion_proj.weight
        t1 = (self.emb_s1.weight * scale) @ w[:, :d].t()
        return t1, torch.addmm(self.fusion_proj.bias, self.emb_s2.weight * scale, w[:, d:].t())


class TemporalEmbedding(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        for name, size in zip(STAMP_FIELDS, _STAMP_SIZES):
            self.add_module(f"{name}_embed", nn.Embedding(size, d_model))

    def forward(self, stamp: Tensor) -> Tensor:
        stamp = stamp.long()
        out = self.minute_embed(stamp[..., 0])
        out = out + self.hour_embed(stamp[..., 1])
        out = out + self.weekday_embed(stamp[..., 2])
        out = out + self.day_embed(stamp[..., 3])
        return out + self.month_embed(stamp[..., 4])


class CrossAttention(AttentionProjections):
    """The dependency layer's attention: 4 heads, non-causal at inference.

    Its query has length 1 at inference, so RoPE (computed for the query length) rotates nothing; the buffer is
    kept only because the checkpoints store it.
    """


class DependencyAwareLayer(nn.Module):
    """s2's conditioning on the sampled s1: the raw ``emb_s1`` row of s1 queries the normed context (no RoPE
    rotation), residual the context row it predicts from (spec §5.5)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.cross_attn = CrossAttention(d_model, DEP_HEADS)
        self.norm = RMSNorm(d_model)

    def remember(self, context: Tensor, cache: KVCache) -> None:
        """Keys/values of new context rows into ``cache``: a prefill's windows [G, P, d] become its prefix, a
        step's rows [G*S, T, d] are appended."""
        ca = self.cross_attn
        rows, t, d = context.shape
        kv = projection([ca.k_proj, ca.v_proj])(context.reshape(rows * t, d))  # k and v as one GEMM
        if is_step(cache):
            cache.append(to_heads(kv[:, :d], cache, t, ca.n_heads), to_heads(kv[:, d:], cache, t, ca.n_heads))
        else:
            kv = kv.view(rows, t, 2, ca.n_heads, ca.head_dim)
            cache.store_prefix(kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2))

    def forward(
        self, query: Tensor, residual: Tensor, context: Tensor | None = None, cache: KVCache | None = None
    ) -> Tensor:
        """query and residual [B, Tq, d]. Query row t attends to the context up to its own position, queries
        aligned with the context's last rows: Tq = 1 (inference) sees the whole context [B, Tk, d], Tq = Tk
        (training, teacher forcing) is causal. With a filled ``cache`` instead of ``context`` (Tq = 1): the
        cached rows' keys/values."""
        ca = self.cross_attn
        if cache is not None:
            d = query.shape[-1]
            attn = from_heads(cache.attend(project_heads(query.reshape(-1, d), ca, cache, 1), causal=False))
            out = projection([ca.out_proj])(attn, residual=residual.reshape(-1, d))
            return rms(out, self.norm.weight, self.norm.eps).view(residual.shape)
        q = ca.split(ca.q_proj(query))
        assert context is not None
        tq, tk = query.shape[1], context.shape[1]
        if tq not in (1, tk):
            raise ValueError(f"{tq} queries over {tk} context rows: need 1 or one per row")
        k, v = ca.split(ca.k_proj(context)), ca.split(ca.v_proj(context))
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=tq > 1)
        return self.norm(residual + ca.out_proj(ca.merge(attn)))


class DualHead(nn.Module):
    def __init__(self, vocab_s1: int, vocab_s2: int, d_model: int) -> None:
        super().__init__()
        self.proj_s1 = nn.Linear(d_model, vocab_s1)
        self.proj_s2 = nn.Linear(d_model, vocab_s2)


class Kronos(nn.Module):
    def __init__(self, config: KronosConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        v1, v2 = 2**c.s1_bits, 2**c.s2_bits
        self.embedding = HierarchicalEmbedding(v1, v2, c.d_model)
        self.time_emb = TemporalEmbedding(c.d_model)
        self.transformer = nn.ModuleList(TransformerBlock(c.d_model, c.n_heads, c.ff_dim) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.d_model)
        self.dep_layer = DependencyAwareLayer(c.d_model)
        self.head = DualHead(v1, v2, c.d_model)

    def embed(self, s1: Tensor, s2: Tensor, stamp: Tensor, fast: bool = False, time: Tensor | None = None) -> Tensor:
        tokens = self.embedding.fast(s1, s2) if fast else self.embedding(s1, s2)
        return tokens.add_(self.time_emb(stamp) if time is None else time)

    def s1_logits(self, h: Tensor, step: bool = False) -> Tensor:
        """s1 logits of context rows h [..., d]; ``step``: a cached step's few rows (``step_linear``)."""
        return step_linear(h, self.head.proj_s1) if step else self.head.proj_s1(h)

    def context(
        self, s1: Tensor, s2: Tensor, stamp: Tensor, state: DecodeState | None = None, time: Tensor | None = None
    ) -> Tensor:
        """Normed context of tokens [B, T] with stamps [B, T, 5]: [B, T, d].

        Without ``state``: windows from position 0, recomputed from scratch. With a ``DecodeState`` waiting for
        its prefix: the same pass over G windows, whose keys/values the state keeps for its rows. With a filled
        state: T new tokens per row [G*S, T] after those it holds. With a state, ``state.last`` becomes the newest
        row. ``time``: ``time_emb(stamp)`` when the caller has it already (a step's rows: computed once for all
        steps, bitwise the same)."""
        x = self.embed(s1, s2, stamp, state is not None, time)
        x = run_blocks(self.transformer, x, state.layers if state is not None else None)
        ctx = self.norm(x) if state is None else rms(x, self.norm.weight, self.norm.eps)
        if state is not None:
            self.dep_layer.remember(ctx, state.dep)
            state.last = ctx[:, -1]
        return ctx

    def s2_logits(self, context: Tensor, s1: Tensor, cache: KVCache | None = None) -> Tensor:
        """s2 logits given the s1 of the next token:
        * s1 [R], context [R, W, d]: logits [R, V] of the window's last position (inference, recomputed);
        * s1 [R], context the newest rows [R, d] (or [G, d], one per series, right after a prefill) and
          ``cache`` the dependency layer's (``DecodeState.dep``): the same, over the cached rows (fast mode);
        * s1 [B, T], context [B, T, d]: logits [B, T, V] of every position, row t conditioned on s1[:, t]
          (teacher forcing, training)."""
        if s1.ndim == 2:
            return self.head.proj_s2(self.dep_layer(self.embedding.emb_s1(s1), context, context))
        query = self.embedding.emb_s1(s1).unsqueeze(1)
        if cache is None:
            return self.head.proj_s2(self.dep_layer(query, context[:, -1:], context))[:, 0]
        if context.shape[0] != s1.shape[0]:  # one row per series, shared by its rows
            context = context.repeat_interleave(s1.shape[0] // context.shape[0], dim=0)
        return step_linear(self.dep_layer(query, context[:, None], cache=cache), self.head.proj_s2)[:, 0]

    def decode_state(self, series: int, paths: int, capacity: int) -> DecodeState:
        """Empty caches for G series x ``paths`` rows: the next ``context`` call's windows become each series'
        shared prefix, then each row has room for ``capacity`` more tokens."""
        caches = [KVCache(series, paths, capacity) for _ in self.transformer]
        return DecodeState(caches, KVCache(series, paths, capacity))


@dataclass
class DecodeState:
    """The fast mode's caches: one per main block and one for the dependency layer."""

    layers: list[KVCache]
    dep: KVCache
    last: Tensor | None = None  # normed newest context row: [G, d] after a prefill, [G*S, d] after a step
