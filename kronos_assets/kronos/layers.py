"""Building blocks shared by the tokenizer and the predictor (spec §3), with a KV cache for fast generation.

Module and parameter names mirror the official state_dict (Appendix A). Dropout is left out entirely: the
modules are inference-only and dropout is the identity in eval mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # Normalise in float32 and cast back before the weight, as the original does.
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.type_as(x) * self.weight


class FeedForward(nn.Module):
    """SwiGLU without biases: w2(silu(w1 x) * w3 x)."""

    def __init__(self, d_model: int, ff_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, ff_dim, bias=False)
        self.w3 = nn.Linear(d_model, ff_dim, bias=False)
        self.w2 = nn.Linear(ff_dim, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def rope_inv_freq(head_dim: int) -> Tensor:
    return 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))


class RotaryEmbedding(nn.Module):
    """NeoX (half-split) RoPE. Positions restart at 0 at the first token of the current window."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.register_buffer("inv_freq", rope_inv_freq(head_dim))  # persistent: it is in the checkpoints

    def cos_sin(self, start: int, length: int) -> tuple[Tensor, Tensor]:
        # An elementwise outer product of float32 positions, so any slice equals the full-window table bitwise.
        t = torch.arange(start, start + length, device=self.inv_freq.device, dtype=self.inv_freq.dtype)
        freqs = torch.outer(t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    @staticmethod
    def apply(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin


@dataclass
class KVCache:
    """Keys/values of one attention layer: a prefix shared by every row, then each row's own continuation.

    The shared prefix ([H, P, hd]) is the history window, computed once per series; the rows ([R, H, cap, hd]) are
    the sample paths. Keeping the prefix unexpanded saves R copies and lets one GEMM serve all rows.
    """

    shared_k: Tensor | None
    shared_v: Tensor | None
    own_k: Tensor
    own_v: Tensor
    length: int = 0

    @classmethod
    def allocate(cls, shared_k: Tensor | None, shared_v: Tensor | None, rows: int, capacity: int,
                 heads: int, head_dim: int, like: Tensor) -> "KVCache":  # fmt: skip
        own = like.new_empty((rows, heads, capacity, head_dim))
        return cls(shared_k, shared_v, own, torch.empty_like(own))

    @property
    def prefix_len(self) -> int:
        return 0 if self.shared_k is None else self.shared_k.shape[1]

    @property
    def position(self) -> int:
        """Window position of the next token to append."""
        return self.prefix_len + self.length

    def append(self, k: Tensor, v: Tensor) -> None:
        t = k.shape[2]
        if self.length + t > self.own_k.shape[2]:
            raise RuntimeError(f"KV cache overflow: {self.length}+{t} > {self.own_k.shape[2]}")
        self.own_k[:, :, self.length : self.length + t] = k
        self.own_v[:, :, self.length : self.length + t] = v
        self.length += t


def cached_attention(q: Tensor, cache: KVCache, causal: bool) -> Tensor:
    """Attention of q [R, H, T, hd] over the shared prefix and the first ``cache.length`` own keys.

    With causal=True the T queries are the last T own positions and see only own keys up to themselves.
    """
    rows, heads, t, hd = q.shape
    scale = 1.0 / math.sqrt(hd)
    n = cache.length
    parts: list[Tensor] = []
    p = cache.prefix_len
    if p:
        # Fold rows into the query axis: one [H, R*T, hd] x [H, hd, P] GEMM instead of R broadcast copies.
        qf = q.permute(1, 0, 2, 3).reshape(heads, rows * t, hd)
        s_shared = torch.bmm(qf, cache.shared_k.transpose(1, 2)).view(heads, rows, t, p).permute(1, 0, 2, 3)
        parts.append(s_shared)
    if n:
        s_own = torch.matmul(q, cache.own_k[:, :, :n].transpose(-1, -2))
        if causal and t > 1:
            q_pos = torch.arange(n - t, n, device=q.device)[:, None]
            k_pos = torch.arange(n, device=q.device)[None, :]
            s_own = s_own.masked_fill(k_pos > q_pos, float("-inf"))
        parts.append(s_own)
    scores = (parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)) * scale
    probs = torch.softmax(scores, dim=-1)
    out = None
    if n:
        out = torch.matmul(probs[..., p:], cache.own_v[:, :, :n])
    if p:
        pf = probs[..., :p].permute(1, 0, 2, 3).reshape(heads, rows * t, p)
        o_shared = torch.bmm(pf, cache.shared_v).view(heads, rows, t, hd).permute(1, 0, 2, 3)
        out = o_shared if out is None else out + o_shared
    assert out is not None
    return out


class AttentionProjections(nn.Module):
    """The parameters every Kronos attention shares (state-dict names q_proj/k_proj/v_proj/out_proj/rotary, all
    projections with biases) and the head split/merge around them."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.rotary = RotaryEmbedding(self.head_dim)

    def split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def merge(self, x: Tensor) -> Tensor:
        b, _, t, _ = x.shape
        return x.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)


class SelfAttention(AttentionProjections):
    """Causal multi-head self-attention with RoPE."""

    def _qkv(self, x: Tensor, start: int) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = self.split(self.q_proj(x)), self.split(self.k_proj(x)), self.split(self.v_proj(x))
        cos, sin = self.rotary.cos_sin(start, x.shape[1])
        return RotaryEmbedding.apply(q, cos, sin), RotaryEmbedding.apply(k, cos, sin), v

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Full causal pass over a window starting at position 0; also returns (k, v) for a cache."""
        q, k, v = self._qkv(x, 0)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(self.merge(out)), k, v

    def forward_cached(self, x: Tensor, cache: KVCache) -> Tensor:
        """Extend each row by x [R, T, d]; the new tokens attend to the cache and causally to each other."""
        q, k, v = self._qkv(x, cache.position)
        cache.append(k, v)
        return self.out_proj(self.merge(cached_attention(q, cache, causal=True)))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Attn(RMSNorm(x)), then x + FFN(RMSNorm(x))."""

    def __init__(self, d_model: int, n_heads: int, ff_dim: int) -> None:
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.self_attn = SelfAttention(d_model, n_heads)
        self.norm2 = RMSNorm(d_model)
        self.ffn = FeedForward(d_model, ff_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_kv(x)[0]

    def forward_kv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, k, v = self.self_attn(self.norm1(x))
        x = x + a
        return x + self.ffn(self.norm2(x)), k, v

    def forward_cached(self, x: Tensor, cache: KVCache) -> Tensor:
        x = x + self.self_attn.forward_cached(self.norm1(x), cache)
        return x + self.ffn(self.norm2(x))


def prefill_stack(blocks: nn.ModuleList, x: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """Run a single-row window [1, P, d] through the blocks, keeping each layer's keys/values ([H, P, hd])."""
    kvs = []
    for block in blocks:
        x, k, v = block.forward_kv(x)
        kvs.append((k[0].contiguous(), v[0].contiguous()))
    return x, kvs


def make_caches(kvs: list[tuple[Tensor, Tensor]] | None, blocks: nn.ModuleList, rows: int, capacity: int,
                like: Tensor) -> list[KVCache]:  # fmt: skip
    caches = []
    for i, block in enumerate(blocks):
        attn = block.self_attn
        sk, sv = kvs[i] if kvs else (None, None)
        caches.append(KVCache.allocate(sk, sv, rows, capacity, attn.n_heads, attn.head_dim, like))
    return caches
