"""The fast mode's cached passes: KV caches, and the blocks' forward over them on packed weights.

A cached pass extends each of a cache's rows by a few positions (one per AR step, or a decoded chunk). It is a
few rows through every weight, so on CPU it costs per op (Python, dispatch, allocation) and per byte of weights,
not per FLOP: ``block_step`` runs a TransformerBlock in ~20 ops instead of the module forward's ~80 (views
included), on weights packed once per module (``packed``):
  * q, k and v come out of one GEMM over [d, 3d] weights transposed to [in, out] (MKL runs few-row GEMMs
    1.3-3x faster on that layout), and RoPE rotates q and k at once, written straight into the head-major layout
    attention reads;
  * q is pre-scaled by 1/sqrt(head_dim) in the weights (a power of two for Kronos' 64-wide heads: bitwise the
    same scores);
  * keys of the shared prefix are kept transposed [G*heads, hd, P], so scoring is a plain GEMM (2x faster);
  * RMSNorm is the reference chain written as five ops (bitwise the same), which on CPU runs 2-4x faster than
    ``F.rms_norm``'s composite.
Results equal the window pass (layers.py) within float rounding; the tests compare tokens and logits.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import AttentionProjections, TransformerBlock

T_ = TypeVar("T_")


# -- packed weights ----------------------------------------------------------------------------------------------
_PACKED: "weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[tuple[int, ...], object]]]" = (
    weakref.WeakKeyDictionary()
)


def packed(module: nn.Module, name: str, build: Callable[[], T_]) -> T_:
    """``build()``'s packing of ``module``'s weights, kept while the module lives and rebuilt when a parameter is
    replaced or changed in place (between training steps): keyed on their pointers and version counters."""
    stamp = tuple(v for p in module.parameters() for v in (p.data_ptr(), p._version))
    per_module = _PACKED.setdefault(module, {})
    hit = per_module.get(name)
    if hit is None or hit[0] != stamp:
        with torch.no_grad():
            hit = per_module[name] = (stamp, build())
    return hit[1]  # type: ignore[return-value]


def transposed(linears: Sequence[nn.Linear], scale: float = 1.0) -> tuple[Tensor, Tensor | None]:
    """The Linears' weights concatenated and transposed to [in, sum of out], contiguous (times ``scale``), and
    their biases (or None)."""
    w = torch.cat([lin.weight for lin in linears]).t().contiguous()
    has_bias = all(lin.bias is not None for lin in linears)
    b = torch.cat([lin.bias for lin in linears]) if has_bias else None  # type: ignore[misc]
    if scale != 1.0:
        w, b = w * scale, (b * scale if b is not None else None)
    return w, b


def step_linear(x: Tensor, linear: nn.Linear) -> Tensor:
    """``linear(x)`` for a cached pass's few rows, on the transposed weight."""
    w, b = packed(linear, "t", lambda: transposed([linear]))
    flat = x.reshape(-1, x.shape[-1])
    return (flat @ w if b is None else torch.addmm(b, flat, w)).view(*x.shape[:-1], w.shape[1])


def rms(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """RMSNorm in five ops: bitwise ``layers.RMSNorm``'s float32 chain."""
    return torch.mul(x, torch.rsqrt(torch.mean(x * x, -1, keepdim=True).add_(eps))).mul_(weight)


@dataclass(frozen=True)
class BlockPack:
    heads: int
    head_dim: int
    norm1: Tensor
    eps1: float
    qkv: Tensor  # [d, 3d]: q*scale, k, v
    qkv_bias: Tensor
    out: Tensor  # [d, d]
    out_bias: Tensor
    norm2: Tensor
    eps2: float
    w13: Tensor  # [d, 2*ff]: w1 then w3
    w2: Tensor  # [ff, d]


def _pack_block(block: TransformerBlock) -> BlockPack:
    att = block.self_attn
    d, hd = att.n_heads * att.head_dim, att.head_dim
    scale = 1.0 / math.sqrt(hd)
    w = torch.cat((att.q_proj.weight * scale, att.k_proj.weight, att.v_proj.weight))
    b = torch.cat((att.q_proj.bias * scale, att.k_proj.bias, att.v_proj.bias))
    out_w, out_b = transposed([att.out_proj])
    w13, _ = transposed([block.ffn.w1, block.ffn.w3])
    w2, _ = transposed([block.ffn.w2])
    assert out_b is not None
    return BlockPack(att.n_heads, hd, block.norm1.weight.detach().clone(), block.norm1.eps, w.t().contiguous(),
                     b.contiguous(), out_w, out_b, block.norm2.weight.detach().clone(), block.norm2.eps, w13,
                     w2)  # fmt: skip


# -- the KV cache --------------------------------------------------------------------------------------------------
class KVCache:
    """Keys/values of one attention layer for G series x S rows (row r belongs to series r // S).

    Created empty and waiting for a prefix (``prefill=True``): the next window pass over G windows [G, P, d]
    stores their keys/values as the prefix each series' S rows share. Each later cached pass appends T new
    positions per row to ``own_*`` [G, heads, S, capacity, hd], head-major by series so that attention reads and
    writes [G*heads, S*T, .] blocks without copies. With ``prefill=False`` the rows start without a prefix.
    """

    def __init__(self, series: int, paths: int, capacity: int, prefill: bool = True) -> None:
        self.series, self.paths, self.capacity = series, paths, capacity
        self.awaiting_prefix = prefill
        self.prefix_kt: Tensor | None = None  # [G*heads, hd, P]
        self.prefix_v: Tensor | None = None  # [G*heads, P, hd]
        self.own_k: Tensor | None = None
        self.own_v: Tensor | None = None
        self.length = 0

    @property
    def prefix_len(self) -> int:
        return 0 if self.prefix_v is None else self.prefix_v.shape[1]

    @property
    def position(self) -> int:
        """Position of the next token of every row."""
        return self.prefix_len + self.length

    def store_prefix(self, k: Tensor, v: Tensor) -> None:
        """k, v [G, heads, P, hd] of the series' windows."""
        g, heads, p, hd = k.shape
        self.prefix_kt = k.reshape(g * heads, p, hd).transpose(1, 2).contiguous()
        self.prefix_v = v.reshape(g * heads, p, hd).contiguous()
        self.awaiting_prefix = False
        self._allocate(heads, hd, k)

    def _allocate(self, heads: int, hd: int, like: Tensor) -> None:
        self.own_k = like.new_empty((self.series, heads, self.paths, self.capacity, hd))
        self.own_v = torch.empty_like(self.own_k)

    def append(self, k: Tensor, v: Tensor) -> None:
        """k, v [G, heads, S, T, hd] (any strides) of T new positions per row."""
        if self.own_k is None:
            self._allocate(k.shape[1], k.shape[4], k)
        assert self.own_k is not None and self.own_v is not None
        t = k.shape[3]
        if self.length + t > self.capacity:
            raise RuntimeError(f"KV cache overflow: {self.length}+{t} > {self.capacity}")
        self.own_k[:, :, :, self.length : self.length + t].copy_(k)
        self.own_v[:, :, :, self.length : self.length + t].copy_(v)
        self.length += t

    def attend(self, q: Tensor, causal: bool) -> Tensor:
        """Attention of pre-scaled q [G, heads, S, T, hd] (contiguous) over each row's series prefix and the
        row's own keys (causally among the last T when ``causal``) -> [G, heads, S, T, hd]."""
        assert self.own_k is not None and self.own_v is not None
        g, heads, s, t, hd = q.shape
        n, p = self.length, self.prefix_len
        gh = g * heads
        own_k = self.own_k[:, :, :, :n].reshape(gh * s, n, hd)
        s_own = torch.bmm(q.view(gh * s, t, hd), own_k.transpose(1, 2))  # [GHS, T, n]
        if causal and t > 1:
            q_pos = torch.arange(n - t, n, device=q.device)[:, None]
            s_own.masked_fill_(torch.arange(n, device=q.device)[None, :] > q_pos, float("-inf"))
        if p:
            assert self.prefix_kt is not None and self.prefix_v is not None
            scores = torch.cat((torch.bmm(q.view(gh, s * t, hd), self.prefix_kt), s_own.view(gh, s * t, n)), -1)
        else:
            scores = s_own.view(gh, s * t, n)
        probs = torch.softmax(scores, dim=-1)
        own_v = self.own_v[:, :, :, :n].reshape(gh * s, n, hd)
        out = torch.bmm(probs[..., p:].reshape(gh * s, t, n), own_v).view(gh, s * t, hd)
        if p:
            out = torch.baddbmm(out, probs[..., :p], self.prefix_v)
        return out.view(g, heads, s, t, hd)


def is_step(cache: KVCache | None) -> bool:
    """Whether a forward given ``cache`` is a cached pass (else a window pass)."""
    return cache is not None and not cache.awaiting_prefix


def to_heads(y: Tensor, cache: KVCache, t: int, heads: int) -> Tensor:
    """Rows' projections [G*S*T, heads*hd] -> [G, heads, S, T, hd] (a strided view)."""
    return y.view(cache.series, cache.paths, t, heads, -1).permute(0, 3, 1, 2, 4)


def from_heads(o: Tensor) -> Tensor:
    """[G, heads, S, T, hd] -> [G*S*T, heads*hd]."""
    g, heads, s, t, hd = o.shape
    return o.permute(0, 2, 3, 1, 4).reshape(g * s * t, heads * hd)


# -- the block -----------------------------------------------------------------------------------------------------
def block_step(block: TransformerBlock, x: Tensor, cache: KVCache, cos: Tensor, sin: Tensor) -> Tensor:
    """``block``'s forward for T new positions per row, x [G*S, T, d], extending ``cache``. cos [T, hd] and sin
    [T, hd] with its first half negated (``rope_tables``) of those positions."""
    p = packed(block, "step", lambda: _pack_block(block))
    rows, t, d = x.shape
    g, s, heads, hd = cache.series, cache.paths, p.heads, p.head_dim
    x2 = x.reshape(rows * t, d)
    y = torch.addmm(p.qkv_bias, rms(x2, p.norm1, p.eps1), p.qkv).view(g, s, t, 3, heads, hd)
    # RoPE on q and k at once: x * cos + (x2, x1) * (-sin1, sin2) is x * cos + (-x2, x1) * sin bitwise, written
    # straight into the head-major layout attention reads.
    half = hd // 2
    qk = x.new_empty((2, g, heads, s, t, hd))
    dst = qk.permute(1, 3, 4, 0, 2, 5)  # as [G, S, T, 2, heads, hd]
    swapped = torch.cat((y[..., :2, :, half:], y[..., :2, :, :half]), dim=-1)
    torch.mul(y[:, :, :, :2], cos.view(t, 1, 1, hd), out=dst)
    dst.addcmul_(swapped, sin.view(t, 1, 1, hd))
    cache.append(qk[1], y[:, :, :, 2].permute(0, 3, 1, 2, 4))
    attn = from_heads(cache.attend(qk[0], causal=True))
    x2 = torch.addmm(x2, attn, p.out).add_(p.out_bias)
    gu = torch.mm(rms(x2, p.norm2, p.eps2), p.w13)
    ff = p.w2.shape[0]
    return torch.addmm(x2, F.silu(gu[:, :ff]).mul_(gu[:, ff:]), p.w2).view(rows, t, d)


def block_window(block: TransformerBlock, x: Tensor, cache: KVCache) -> Tensor:
    """``block``'s window pass over x [B, T, d] (positions from 0) on the packed weights, for the fast mode's
    prefills: the windows' keys and values become ``cache``'s prefix. Equals the module's forward within float
    rounding, in fewer, larger ops (q, k, v as one GEMM; RoPE written head-major; the residuals inside the GEMMs)."""
    p = packed(block, "step", lambda: _pack_block(block))
    b, t, d = x.shape
    heads, hd = p.heads, p.head_dim
    x2 = x.reshape(b * t, d)
    y = torch.addmm(p.qkv_bias, rms(x2, p.norm1, p.eps1), p.qkv).view(b, t, 3, heads, hd)
    cos, sin = rope_tables(block, 0, t)
    half = hd // 2
    qkv = x.new_empty((3, b, heads, t, hd))  # head-major, as attention reads them
    dst = qkv[:2].permute(1, 3, 0, 2, 4)  # as [B, T, 2, heads, hd]
    swapped = torch.cat((y[..., :2, :, half:], y[..., :2, :, :half]), dim=-1)
    torch.mul(y[:, :, :2], cos.view(t, 1, 1, hd), out=dst)
    dst.addcmul_(swapped, sin.view(t, 1, 1, hd))
    qkv[2].copy_(y[:, :, 2].transpose(1, 2))
    cache.store_prefix(qkv[1], qkv[2])
    attn = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True, scale=1.0)  # q is pre-scaled
    x2 = torch.addmm(x2, attn.transpose(1, 2).reshape(b * t, d), p.out).add_(p.out_bias)
    gu = torch.mm(rms(x2, p.norm2, p.eps2), p.w13)
    ff = p.w2.shape[0]
    return torch.addmm(x2, F.silu(gu[:, :ff]).mul_(gu[:, ff:]), p.w2).view(b, t, d)


def rope_tables(block: TransformerBlock, start: int, length: int) -> tuple[Tensor, Tensor]:
    """cos and sin (first half negated) of positions start.. for ``block_step``/``block_window``."""
    cos, sin = block.self_attn.rotary.cos_sin(start, length)
    half = sin.shape[-1] // 2
    return cos, torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)


def run_blocks(blocks: Sequence[TransformerBlock], x: Tensor, caches: Sequence[KVCache] | None = None) -> Tensor:
    """A stack of blocks: without caches the modules' window pass (the reference mode, training); with caches
    waiting for their prefix the fast mode's prefill (``block_window``); with filled caches a cached pass. A
    cached pass's RoPE table is the same for every block, so it is computed once."""
    if caches is None:
        for block in blocks:
            x = block(x)
        return x
    if not is_step(caches[0]):
        for block, cache in zip(blocks, caches):
            x = block_window(block, x, cache)
        return x
    cos, sin = rope_tables(blocks[0], caches[0].position, x.shape[1])
    for block, cache in zip(blocks, caches):
        x = block_step(block, x, cache, cos, sin)
    return x


def project_heads(x: Tensor, att: AttentionProjections, cache: KVCache, t: int) -> Tensor:
    """Pre-scaled queries [G, heads, S, t, hd] (contiguous) of rows x [G*S*t, d] for ``att``."""
    scale = 1.0 / math.sqrt(att.head_dim)
    w, b = packed(att, "q", lambda: transposed([att.q_proj], scale))
    assert b is not None
    return to_heads(torch.addmm(b, x, w), cache, t, att.n_heads).contiguous()
