"""Kronos: the decoder-only predictor over (s1, s2) token pairs with its dependency layer (spec §5).

``context``/``s2_logits`` recompute a whole window like the original (reference mode); generate.py's fast mode
keeps keys/values of the main blocks and of the dependency layer so each new token costs one position.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.cross_attn = CrossAttention(d_model, DEP_HEADS)
        self.norm = RMSNorm(d_model)


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

    def embed(self, s1: Tensor, s2: Tensor, stamp: Tensor) -> Tensor:
        return self.embedding(s1, s2) + self.time_emb(stamp)

    def s1_logits(self, h: Tensor) -> Tensor:
        return self.head.proj_s1(h)

    def _s2_from_attention(self, attn: Tensor, last: Tensor) -> Tensor:
        dep = self.dep_layer
        a = dep.cross_attn.out_proj(dep.cross_attn.merge(attn))[:, 0]
        return self.head.proj_s2(dep.norm(last + a))

    # -- reference: recompute the window -------------------------------------------------------------------
    def context(self, s1: Tensor, s2: Tensor, stamp: Tensor) -> Tensor:
        """Normed context [R, W, d] of a window (positions from 0), recomputed from scratch."""
        x = self.embed(s1, s2, stamp)
        for block in self.transformer:
            x = block(x)
        return self.norm(x)

    def s2_logits(self, context: Tensor, s1: Tensor) -> Tensor:
        """s2 logits [R, V] of the last position given sampled s1 [R]: one raw emb_s1 query over all of context."""
        ca = self.dep_layer.cross_attn
        q = ca.split(ca.q_proj(self.embedding.emb_s1(s1).unsqueeze(1)))
        k, v = ca.split(ca.k_proj(context)), ca.split(ca.v_proj(context))
        return self._s2_from_attention(F.scaled_dot_product_attention(q, k, v), context[:, -1])
