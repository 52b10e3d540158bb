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
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import AttentionProjections, TransformerBlock

T_ = TypeVar("T_")


# -- packed weights ----------------------------------------------------------------------------------------------
_PACKED: "weakref.WeakKeyDictionary[nn.Module, dict[str, _Pack]]" = weakref.WeakKeyDictionary()
_FROZEN = threading.local()  # .token: this thread's current ``weights_frozen`` block (None outside)


@dataclass
class _Pack:
    stamp: tuple[int, ...]
    value: object
    checked_in: object = None  # the ``weights_frozen`` block that last checked the stamp


@contextmanager
def weights_frozen() -> Iterator[None]:
    """Within the block (in this thread) the weights do not change, so ``packed`` checks each packing's
    parameters once rather than on every call (~35 us for a block, ~10 calls per AR step)."""
    outer = getattr(_FROZEN, "token", None)
    _FROZEN.token = outer or object()
    try:
        yield
    finally:
        _FROZEN.token = outer


def packed(module: nn.Module, name: str, build: Callable[[], T_], sources: Sequence[nn.Module] = ()) -> T_:
    """``build()``'s packing of the weights of ``module`` (and of ``sources``), kept while the module lives and
    rebuilt when one of their parameters is replaced or changed in place (between training steps): keyed on
    their pointers and version counters."""
    per_module = _PACKED.setdefault(module, {})
    hit = per_module.get(name)
    token = getattr(_FROZEN, "token", None)
    if hit is not None and token is not None and hit.checked_in is token:
        return hit.value  # type: ignore[return-value]
    params = [p for m in (module, *sources) for p in m.parameters()]
    stamp = tuple(v for p in params for v in (p.data_ptr(), p._version))
    if hit is None or hit.stamp != stamp:
        with torch.no_grad():
            hit = per_module[name] = _Pack(stamp, build())
    hit.checked_in = token
    return hit.value  # type: ignore[return-value]


class Proj:
    """A group of Linears as one projection for the fast mode: weights concatenated and transposed to [in, out],
    contiguous (MKL runs few-row GEMMs 1.3-3x faster on that layout than on nn.Linear's [out, in]).
    ``proj(x, residual)`` is ``residual + cat([lin(x) for lin in linears], -1)`` for rows x [M, in], within
    float rounding, the residual added inside the GEMM. (MKL's pre-packed weights, torch.ops.mkl._mkl_linear,
    measured no faster on a whole Kronos-mini request, and not bitwise addmm's result.)"""

    def __init__(self, linears: Sequence[nn.Linear]) -> None:
        w = torch.cat([lin.weight.detach() for lin in linears])
        has_bias = all(lin.bias is not None for lin in linears)
        b = torch.cat([lin.bias.detach() for lin in linears]) if has_bias else None  # type: ignore[union-attr]
        self.wt, self.bias = w.t().contiguous(), b
        self.out_features = w.shape[0]

    def scale_first(self, n: int, scale: float) -> None:
        """Scale the first n outputs (q among q, k, v)."""
        self.wt[:, :n] *= scale
        if self.bias is not None:
            self.bias[:n] *= scale

    def __call__(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if residual is not None:
            y = torch.addmm(residual, x, self.wt)
            return y if self.bias is None else y.add_(self.bias)
        return x @ self.wt if self.bias is None else torch.addmm(self.bias, x, self.wt)


def projection(linears: Sequence[nn.Linear], name: str = "proj", scale: float = 1.0) -> Proj:
    """The ``Proj`` of Linears (kept on the first one, under ``name``; rebuilt when any of them changes), its
    first Linear's outputs times ``scale``."""

    def build() -> Proj:
        proj = Proj(linears)
        if scale != 1.0:
            proj.scale_first(linears[0].out_features, scale)
        return proj

    return packed(linears[0], name, build, linears[1:])


def step_linear(x: Tensor, linear: nn.Linear) -> Tensor:
    """``linear(x)`` for a cached pass's few rows (``Proj``)."""
    flat = x.reshape(-1, x.shape[-1])
    return projection([linear])(flat).view(*x.shape[:-1], linear.out_features)


def rms(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """RMSNorm in five ops: bitwise ``layers.RMSNorm``'s float32 chain."""
    return torch.mul(x, torch.rsqrt(torch.mean(x * x, -1, keepdim=True).add_(eps))).mul_(weight)


@dataclass(frozen=True)
class BlockPack:
    heads: int
    head_dim: int
    norm1: Tensor
    eps1: float
    qkv: Proj  # q*scale, k, v
    out: Proj
    norm2: Tensor
    eps2: float
    w13: Proj  # w1 then w3
    w2: Proj


def _pack_block(block: TransformerBlock) -> BlockPack:
    att, ffn = block.self_attn, block.ffn
    qkv = Proj([att.q_proj, att.k_proj, att.v_proj])
    qkv.scale_first(att.q_proj.out_features, 1.0 / math.sqrt(att.head_dim))  # the scores need no pass of their own
    return BlockPack(
        att.n_heads,
        att.head_dim,
        block.norm1.weight.detach().clone(),
        block.norm1.eps,
        qkv,
        Proj([att.out_proj]),
        block.norm2.weight.detach().clone(),
        block.norm2.eps,
        Proj([ffn.w1, ffn.w3]),
        Proj([ffn.w2]),
    )


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
def _block_pack(block: TransformerBlock) -> BlockPack:
    return packed(block, "step", lambda: _pack_block(block))


def _rotate_into(qk: Tensor, cos: Tensor, sin: Tensor, dst: Tensor) -> None:
    """RoPE on q and k at once, qk [..., T, 2, heads, hd] -> dst (a view of that shape, head-major underneath):
    x * cos + (x2, x1) * (-sin1, sin2) is x * cos + (-x2, x1) * sin bitwise (``rope_tables``)."""
    t, hd = cos.shape
    half = hd // 2
    swapped = torch.cat((qk[..., half:], qk[..., :half]), dim=-1)
    torch.mul(qk, cos.view(t, 1, 1, hd), out=dst)
    dst.addcmul_(swapped, sin.view(t, 1, 1, hd))


def _finish_block(p: BlockPack, attn: Tensor, x: Tensor) -> Tensor:
    """The rest of a block after attention, on rows [M, d]: output projection and FFN, residuals in the GEMMs."""
    x = p.out(attn, residual=x)
    gu = p.w13(rms(x, p.norm2, p.eps2))
    ff = gu.shape[1] // 2
    return p.w2(F.silu(gu[:, :ff]).mul_(gu[:, ff:]), residual=x)


def block_step(block: TransformerBlock, x: Tensor, cache: KVCache, cos: Tensor, sin: Tensor) -> Tensor:
    """``block``'s forward for T new positions per row, x [G*S, T, d], extending ``cache``; ``rope_tables`` of
    those positions."""
    p = _block_pack(block)
    rows, t, d = x.shape
    g, s, heads, hd = cache.series, cache.paths, p.heads, p.head_dim
    x2 = x.reshape(rows * t, d)
    y = p.qkv(rms(x2, p.norm1, p.eps1)).view(g, s, t, 3, heads, hd)
    qk = x.new_empty((2, g, heads, s, t, hd))  # rotated q and k, head-major as attention reads them
    _rotate_into(y[:, :, :, :2], cos, sin, qk.permute(1, 3, 4, 0, 2, 5))
    cache.append(qk[1], y[:, :, :, 2].permute(0, 3, 1, 2, 4))
    return _finish_block(p, from_heads(cache.attend(qk[0], causal=True)), x2).view(rows, t, d)


def block_window(block: TransformerBlock, x: Tensor, cache: KVCache, cos: Tensor, sin: Tensor) -> Tensor:
    """``block``'s window pass over x [B, T, d] (positions from 0; ``rope_tables`` of them) on the packed weights,
    for the fast mode's prefills: the windows' keys and values become ``cache``'s prefix. Equals the module's
    forward within float rounding, in fewer, larger ops."""
    p = _block_pack(block)
    b, t, d = x.shape
    heads, hd = p.heads, p.head_dim
    x2 = x.reshape(b * t, d)
    y = p.qkv(rms(x2, p.norm1, p.eps1)).view(b, t, 3, heads, hd)
    qkv = x.new_empty((3, b, heads, t, hd))  # head-major, as attention reads them
    _rotate_into(y[:, :, :2], cos, sin, qkv[:2].permute(1, 3, 0, 2, 4))
    qkv[2].copy_(y[:, :, 2].transpose(1, 2))
    cache.store_prefix(qkv[1], qkv[2])
    attn = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True, scale=1.0)  # q is pre-scaled
    return _finish_block(p, attn.transpose(1, 2).reshape(b * t, d), x2).view(b, t, d)


def rope_tables(block: TransformerBlock, start: int, length: int) -> tuple[Tensor, Tensor]:
    """cos and sin (first half negated) of positions start.. for ``block_step``/``block_window``."""
    cos, sin = block.self_attn.rotary.cos_sin(start, length)
    half = sin.shape[-1] // 2
    return cos, torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)


def run_blocks(blocks: Sequence[TransformerBlock], x: Tensor, caches: Sequence[KVCache] | None = None) -> Tensor:
    """A stack of blocks: without caches the modules' window pass (the reference mode, training); with caches
    waiting for their prefix the fast mode's prefill (``block_window``); with filled caches a cached pass. The
    RoPE table is the same for every block, so it is computed once."""
    if caches is None:
        for block in blocks:
            x = block(x)
        return x
    window = not is_step(caches[0])
    cos, sin = rope_tables(blocks[0], 0 if window else caches[0].position, x.shape[1])
    run = block_window if window else block_step
    for block, cache in zip(blocks, caches):
        x = run(block, x, cache, cos, sin)
    return x


def project_heads(x: Tensor, att: AttentionProjections, cache: KVCache, t: int) -> Tensor:
    """Pre-scaled queries [G, heads, S, t, hd] (contiguous) of rows x [G*S*t, d] for ``att``."""
    q = projection([att.q_proj], "scaled", 1.0 / math.sqrt(att.head_dim))
    return to_heads(q(x), cache, t, att.n_heads).contiguous()
