"""Building blocks shared by the tokenizer and the predictor (spec §3), with their one forward each.

Module and parameter names mirror the official state_dict (Appendix A). Dropout is left out entirely: dropout is
the identity in eval mode, and training (training/losses.py) runs these same forwards.

Every attention runs in one of two ways, chosen by the cache it is given:
  * a window pass (no cache, or a ``KVCache`` still waiting for its prefix): causal attention over whole windows
    [B, T, d] with positions from 0, exactly the original's computation. The reference mode and the training
    losses run only this; the fast mode's prefill runs it once (RMSNorm as one op, bitwise the same on CPU) and
    keeps the keys/values as the cache's prefix.
  * a cached step (a filled ``KVCache``): x [G*S, T, d] extends each of the cache's rows by T positions. Its
    projections run as one GEMM over concatenated, transposed weights (``fused_weights``), q and k are rotated as
    one tensor, the FFN's residual is added inside w2's GEMM and RMSNorm is one op: a step is a few rows through
    every weight, so it costs per op and per byte of weights rather than per FLOP. The results equal the window
    pass's within float rounding.
"""

from __future__ import annotations

import math
import weakref
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor, fused: bool = False) -> Tensor:
        if fused:  # one op: bitwise the chain below on CPU; passes without a cache keep the chain (the original's)
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
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

    def step(self, x: Tensor, residual: Tensor) -> Tensor:
        """``residual + forward(x)`` for a cached step's few rows: w1 and w3 as one GEMM, the residual added by
        w2's GEMM (``fused_gemm``)."""
        gate, up = fused_linear(x, (self.w1, self.w3))
        return fused_gemm(F.silu(gate).mul_(up), (self.w2,), residual)


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


# -- fused projections -----------------------------------------------------------------------------------------
# A cached step multiplies a few rows by every weight. Its GEMMs take the weights concatenated per group of Linears
# and transposed to [in, out] contiguous: on CPU, MKL runs a few-row GEMM 1.5-3x faster on that layout than on
# nn.Linear's [out, in] (and splits it over threads, which it does not for the latter). Built once per group, and
# again only when a weight changes in place (between training steps): keyed on the tensors' version counters.
_FUSED: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], Tensor, Tensor | None]]" = (
    weakref.WeakKeyDictionary()
)


def fused_weights(linears: Sequence[nn.Linear]) -> tuple[Tensor, Tensor | None]:
    """The group's weights concatenated and transposed, [in, sum of out] contiguous, and biases (or None)."""
    params = [p for lin in linears for p in (lin.weight, lin.bias) if p is not None]
    stamp = tuple(v for p in params for v in (p.data_ptr(), p._version))
    hit = _FUSED.get(linears[0])
    if hit is None or hit[0] != stamp:
        w = torch.cat([lin.weight for lin in linears]).t().contiguous()
        b = torch.cat([lin.bias for lin in linears]) if all(lin.bias is not None for lin in linears) else None
        hit = _FUSED[linears[0]] = (stamp, w, b)
    return hit[1], hit[2]


def fused_gemm(x: Tensor, linears: Sequence[nn.Linear], residual: Tensor | None = None) -> Tensor:
    """``cat([lin(x) for lin in linears], -1)`` as one GEMM over the concatenated, transposed weights; with
    ``residual`` (bias-free Linears) ``residual + ...``, the addition inside the GEMM."""
    w, b = fused_weights(linears)
    flat = x.reshape(-1, x.shape[-1])
    if residual is not None:
        assert b is None
        return torch.addmm(residual.reshape(-1, w.shape[1]), flat, w).view(residual.shape)
    return (flat @ w if b is None else torch.addmm(b, flat, w)).view(*x.shape[:-1], -1)


def fused_linear(x: Tensor, linears: Sequence[nn.Linear]) -> tuple[Tensor, ...]:
    """``tuple(lin(x) for lin in linears)`` as one GEMM (``fused_gemm``)."""
    return fused_gemm(x, linears).split([lin.out_features for lin in linears], dim=-1)


def step_linear(x: Tensor, linear: nn.Linear) -> Tensor:
    """``linear(x)`` for a cached step's few rows (see ``fused_weights``)."""
    return fused_gemm(x, (linear,))


# -- the KV cache ----------------------------------------------------------------------------------------------
class KVCache:
    """Keys/values of one attention layer for G series x S rows (row r belongs to series r // S).

    Created empty and waiting for a prefix (``prefill=True``): the next window pass over G windows [G, P, d]
    stores their keys/values [G, heads, P, hd] as the prefix each series' S rows share. Each later call appends
    keys/values of T new positions per row to ``own_*`` [G, heads, S, capacity, hd], laid out so a series' rows
    sit next to each other per head: attention then reads and writes [G*heads, S*T, .] blocks without copies.
    With ``prefill=False`` the rows start without a prefix (positions from 0).
    """

    def __init__(self, series: int, paths: int, capacity: int, prefill: bool = True) -> None:
        self.series, self.paths, self.capacity = series, paths, capacity
        self.awaiting_prefix = prefill
        self.prefix_k: Tensor | None = None
        self.prefix_v: Tensor | None = None
        self.own_k: Tensor | None = None
        self.own_v: Tensor | None = None
        self.length = 0

    @property
    def prefix_len(self) -> int:
        return 0 if self.prefix_k is None else self.prefix_k.shape[2]

    @property
    def position(self) -> int:
        """Position of the next token of every row."""
        return self.prefix_len + self.length

    def _allocate(self, like: Tensor) -> None:
        _, heads, _, hd = like.shape
        self.own_k = like.new_empty((self.series, heads, self.paths, self.capacity, hd))
        self.own_v = torch.empty_like(self.own_k)

    def store_prefix(self, k: Tensor, v: Tensor) -> None:
        """k, v [G, heads, P, hd] of the series' windows."""
        self.prefix_k, self.prefix_v = k.contiguous(), v.contiguous()
        self.awaiting_prefix = False
        self._allocate(k)

    def by_series(self, x: Tensor) -> Tensor:
        """[G*S, heads, T, hd] (rows series-major) -> [G, heads, S, T, hd]."""
        rows, heads, t, hd = x.shape
        return x.view(self.series, rows // self.series, heads, t, hd).transpose(1, 2)

    def append(self, k: Tensor, v: Tensor) -> None:
        """k, v [G*S, heads, T, hd] of T new positions per row."""
        if self.own_k is None:
            self._allocate(k)
        assert self.own_k is not None and self.own_v is not None
        t = k.shape[2]
        if self.length + t > self.capacity:
            raise RuntimeError(f"KV cache overflow: {self.length}+{t} > {self.capacity}")
        self.own_k[:, :, :, self.length : self.length + t] = self.by_series(k)
        self.own_v[:, :, :, self.length : self.length + t] = self.by_series(v)
        self.length += t

    def attend(self, q: Tensor, causal: bool) -> Tensor:
        """Attention of q [G*S, heads, T, hd] over each row's series prefix (one [S*T, hd] x [hd, P] GEMM per
        series and head, batched over G*heads) and the row's own keys (causally among the last T when ``causal``).
        Returns [G*S, T, heads*hd] (heads merged)."""
        assert self.own_k is not None and self.own_v is not None
        g, s = self.series, self.paths
        _, heads, t, hd = q.shape
        n, p = self.length, self.prefix_len
        gh = g * heads
        # Scaling the (small) queries instead of the scores saves a pass over [G*H, S*T, P+n]; for head sizes that
        # are powers of 4 (Kronos: 64) the scale is a power of two and both orders give the same bits.
        qf = (self.by_series(q).contiguous() * (1.0 / math.sqrt(hd))).reshape(gh, s * t, hd)
        parts: list[Tensor] = []
        if p:
            assert self.prefix_k is not None
            parts.append(torch.bmm(qf, self.prefix_k.reshape(gh, p, hd).transpose(1, 2)))  # [GH, S*T, P]
        if n:
            own_k = self.own_k[:, :, :, :n].reshape(gh * s, n, hd)
            s_own = torch.bmm(qf.view(gh * s, t, hd), own_k.transpose(1, 2))  # [GHS, T, n]
            if causal and t > 1:
                q_pos = torch.arange(n - t, n, device=q.device)[:, None]
                k_pos = torch.arange(n, device=q.device)[None, :]
                s_own = s_own.masked_fill(k_pos > q_pos, float("-inf"))
            parts.append(s_own.view(gh, s * t, n))
        scores = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        probs = torch.softmax(scores, dim=-1)
        out = None
        if n:
            own_v = self.own_v[:, :, :, :n].reshape(gh * s, n, hd)
            out = torch.bmm(probs[..., p:].reshape(gh * s, t, n), own_v).view(gh, s * t, hd)
        if p:
            assert self.prefix_v is not None
            o = torch.bmm(probs[..., :p], self.prefix_v.reshape(gh, p, hd))
            out = o if out is None else out + o
        assert out is not None
        return out.view(g, heads, s, t, hd).permute(0, 2, 3, 1, 4).reshape(g * s, t, heads * hd)


def is_step(cache: KVCache | None) -> bool:
    """Whether a forward given ``cache`` is a cached step (else a window pass)."""
    return cache is not None and not cache.awaiting_prefix


# -- attention and the block -----------------------------------------------------------------------------------
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
        """[B, T, heads*hd] -> [B, heads, T, hd]."""
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def merge(self, x: Tensor) -> Tensor:
        """[B, heads, T, hd] -> [B, T, heads*hd]."""
        b, _, t, _ = x.shape
        return x.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)


class SelfAttention(AttentionProjections):
    """Causal multi-head self-attention with RoPE."""

    def forward(self, x: Tensor, cache: KVCache | None = None, rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Window pass over x [B, T, d] (positions from 0), or a cached step of T new positions per row at
        ``cache.position``; ``rope`` = (cos, sin) of those positions when the caller has them already."""
        if not is_step(cache):
            q, k, v = self.split(self.q_proj(x)), self.split(self.k_proj(x)), self.split(self.v_proj(x))
            cos, sin = self.rotary.cos_sin(0, x.shape[1])
            q, k = RotaryEmbedding.apply(q, cos, sin), RotaryEmbedding.apply(k, cos, sin)
            # Contiguous heads: the CPU flash kernel runs 1.3-1.5x faster on them, with bitwise the same result.
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
            if cache is not None:
                cache.store_prefix(k, v)
            return self.out_proj(self.merge(F.scaled_dot_product_attention(q, k, v, is_causal=True)))
        assert cache is not None
        cos, sin = rope if rope is not None else self.rotary.cos_sin(cache.position, x.shape[1])
        b, t, _ = x.shape
        h = self.n_heads
        qkv = fused_gemm(x, (self.q_proj, self.k_proj, self.v_proj)).view(b, t, 3 * h, self.head_dim)
        qkv = qkv.transpose(1, 2)  # [B, 3*heads, T, hd]
        qk = RotaryEmbedding.apply(qkv[:, : 2 * h], cos, sin)  # q and k as one tensor: half the ops
        cache.append(qk[:, h:], qkv[:, 2 * h :])
        return step_linear(cache.attend(qk[:, :h], causal=True), self.out_proj)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Attn(RMSNorm(x)), then x + FFN(RMSNorm(x))."""

    def __init__(self, d_model: int, n_heads: int, ff_dim: int) -> None:
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.self_attn = SelfAttention(d_model, n_heads)
        self.norm2 = RMSNorm(d_model)
        self.ffn = FeedForward(d_model, ff_dim)

    def forward(self, x: Tensor, cache: KVCache | None = None, rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        # The fast mode's passes (a cache: prefill or step) take RMSNorm as one op (bitwise the chain on CPU, one
        # parallel region instead of six); only steps fuse the projections and the FFN's residual.
        fast = cache is not None
        x = x + self.self_attn(self.norm1(x, fused=fast), cache, rope)
        if is_step(cache):
            return self.ffn.step(self.norm2(x, fused=True), residual=x)
        return x + self.ffn(self.norm2(x, fused=fast))


def run_blocks(blocks: Sequence[TransformerBlock], x: Tensor, caches: Sequence[KVCache] | None = None) -> Tensor:
    """A stack of blocks: a window pass, or (with one cache per block) a step. A step's RoPE table is the same
    for every block, so it is computed once."""
    if caches is None:
        caches = [None] * len(blocks)  # type: ignore[list-item]
    first = caches[0]
    rope = blocks[0].self_attn.rotary.cos_sin(first.position, x.shape[1]) if is_step(first) else None
    for block, cache in zip(blocks, caches):
        x = block(x, cache, rope)
    return x
