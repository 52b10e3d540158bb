"""Autoregressive generation of S sample paths per series (spec §7), in a fast and a reference mode.

Reference mode recomputes the whole window for every step and every path, exactly like the original.
Fast mode (``generate_batch``; ``generate`` runs it as a batch of one) is the same computation reorganised:
  * each series' history window is run once and its keys/values are shared by its S paths;
  * each step appends one token per path to KV caches of the main blocks and of the dependency layer, and
    projects logits for the last position only;
  * the final tokenizer decode runs the shared history part once and only the generated rows per path.
Both modes issue the same RNG calls (one multinomial over [S, V] for s1, one for s2, per step), so with the same
generator they draw the same tokens, up to float rounding ties.

Context policies once history + horizon exceed max_context:
  * "exact" (default): the original semantics. When the window slides every position shifts, so cached states
    are stale; fast mode then re-runs the (shared) history part and the generated tokens each step. Exact, but
    each such step costs a window forward.
  * "trim" (an explicit speed option): keep only the last max_context - horizon history tokens, so the window
    never slides and every step stays one cached position. Identical to "exact" when history + horizon <=
    max_context; otherwise the first steps see fewer history bars, so the tokens differ from the original's from
    the first step (close up to 3 %, volume up to 38 % measured on the small config at 400 + 120).

``generate_batch`` runs G series of equal history length at once (G x S rows): one prefill over [G, L], one
decode step over all rows, one tokenizer decode. Each series keeps its own history cache, shared by its S rows,
and draws its sampling noise from its own generator (``sampling.sample_tokens_grouped``), so it draws the same
tokens in any batch as long as float rounding does not flip a draw; the GEMM shapes, hence the last bits of the
decoded bars, depend on G.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import CONTEXT_POLICIES, DEFAULT_CONTEXT_POLICY, MODES, ContextPolicy, Mode  # noqa: F401 (re-exported)
from .errors import HorizonTooLongError
from .layers import RotaryEmbedding
from .model import Kronos
from .sampling import NoiseStream, SamplingParams, draw_noise, sample_tokens, sample_with_noise
from .tokenizer import KronosTokenizer



@dataclass(frozen=True)
class GenerationConfig:
    horizon: int
    n_paths: int = 1
    sampling: SamplingParams = SamplingParams()
    max_context: int = 512
    context_policy: ContextPolicy = DEFAULT_CONTEXT_POLICY
    mode: Mode = "fast"

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise HorizonTooLongError(f"horizon must be >= 1, got {self.horizon}")
        if self.n_paths < 1:
            raise ValueError(f"n_paths must be >= 1, got {self.n_paths}")
        if self.max_context < 2:
            raise ValueError(f"max_context must be >= 2, got {self.max_context}")
        if self.context_policy not in CONTEXT_POLICIES:
            raise ValueError(f"context_policy must be one of {CONTEXT_POLICIES}, got {self.context_policy!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        check_horizon(self.horizon, self.max_context, self.context_policy)


def check_horizon(horizon: int, max_context: int, policy: str) -> None:
    # The final decode window holds at most max_context tokens and must contain the whole horizon; "trim"
    # also needs at least one history token in the window.
    limit = max_context if policy == "exact" else max_context - 1
    if horizon > limit:
        raise HorizonTooLongError(
            f"horizon {horizon} is longer than max_context {max_context} allows with context policy "
            f"{policy!r} (at most {limit}); lower the horizon or raise max_context"
        )


@dataclass
class Generated:
    s1: Tensor  # [S, H] int64
    s2: Tensor  # [S, H] int64
    bars: Tensor  # [S, H, 6] float32, normalised space


@torch.inference_mode()
def generate(
    model: Kronos,
    tokenizer: KronosTokenizer,
    hist_s1: Tensor,
    hist_s2: Tensor,
    x_stamp: Tensor,
    y_stamp: Tensor,
    cfg: GenerationConfig,
    generator: torch.Generator | None,
) -> Generated:
    """Sample cfg.n_paths continuations of one series' history tokens [L] (full-history encoding).

    x_stamp [L, 5] and y_stamp [H, 5] are integer time features; y_stamp[H-1] is never used (as in the original).
    """
    if cfg.context_policy == "trim":
        keep = min(hist_s1.shape[0], cfg.max_context - cfg.horizon)
        hist_s1, hist_s2, x_stamp = hist_s1[-keep:], hist_s2[-keep:], x_stamp[-keep:]
    run = _generate_fast if cfg.mode == "fast" else _generate_reference
    return run(model, tokenizer, hist_s1, hist_s2, x_stamp, y_stamp, cfg, generator)


def _generate_reference(model: Kronos, tokenizer: KronosTokenizer, hist_s1: Tensor, hist_s2: Tensor,
                        x_stamp: Tensor, y_stamp: Tensor, cfg: GenerationConfig,
                        generator: torch.Generator | None) -> Generated:  # fmt: skip
    L, H, S, C = hist_s1.shape[0], cfg.horizon, cfg.n_paths, cfg.max_context
    seq1 = hist_s1.new_zeros((S, L + H))
    seq2 = hist_s2.new_zeros((S, L + H))
    seq1[:, :L], seq2[:, :L] = hist_s1, hist_s2
    stamps = torch.cat((x_stamp, y_stamp), dim=0).unsqueeze(0)
    for i in range(H):
        n = L + i
        start = n - min(n, C)
        ctx = model.context(seq1[:, start:n], seq2[:, start:n], stamps[:, start:n])
        s1 = sample_tokens(model.s1_logits(ctx)[:, -1], cfg.sampling, generator)  # all positions, as the original
        s2 = sample_tokens(model.s2_logits(ctx, s1), cfg.sampling, generator)
        seq1[:, n], seq2[:, n] = s1, s2
    start = L + H - min(L + H, C)
    bars = tokenizer.decode(seq1[:, start:], seq2[:, start:])[:, -H:]
    return Generated(seq1[:, L:], seq2[:, L:], bars)


def _generate_fast(model: Kronos, tokenizer: KronosTokenizer, hist_s1: Tensor, hist_s2: Tensor,
                   x_stamp: Tensor, y_stamp: Tensor, cfg: GenerationConfig,
                   generator: torch.Generator | None) -> Generated:  # fmt: skip
    return generate_batch(model, tokenizer, hist_s1[None], hist_s2[None], x_stamp[None], y_stamp[None], cfg,
                          [generator])[0]  # fmt: skip


# -- many series at once -------------------------------------------------------------------------------------
@dataclass
class _GroupCache:
    """Keys/values of one attention layer for G series x S rows (row r belongs to series r // S).

    ``prefix_*`` [G, heads, P, hd] hold each series' history window, shared by its S rows; ``own_*``
    [G, heads, S, capacity, hd] the rows' generated tokens, laid out so that a series' rows sit next to each other
    per head: both attention parts then read and write [G*heads, S*T, .] blocks without permuted copies.
    """

    prefix_k: Tensor | None
    prefix_v: Tensor | None
    own_k: Tensor
    own_v: Tensor
    length: int = 0

    @classmethod
    def allocate(cls, prefix: tuple[Tensor, Tensor] | None, series: int, paths: int, capacity: int, heads: int,
                 head_dim: int, like: Tensor) -> "_GroupCache":  # fmt: skip
        own = like.new_empty((series, heads, paths, capacity, head_dim))
        pk, pv = prefix if prefix is not None else (None, None)
        return cls(pk, pv, own, torch.empty_like(own))

    @property
    def prefix_len(self) -> int:
        return 0 if self.prefix_k is None else self.prefix_k.shape[2]

    @property
    def position(self) -> int:
        return self.prefix_len + self.length

    def append(self, k: Tensor, v: Tensor) -> None:
        """k, v [G, heads, S, T, hd]."""
        t = k.shape[3]
        if self.length + t > self.own_k.shape[3]:
            raise RuntimeError(f"KV cache overflow: {self.length}+{t} > {self.own_k.shape[3]}")
        self.own_k[:, :, :, self.length : self.length + t] = k
        self.own_v[:, :, :, self.length : self.length + t] = v
        self.length += t


def _by_series(x: Tensor, series: int) -> Tensor:
    """[G*S, H, T, hd] (rows series-major) -> [G, H, S, T, hd]."""
    rows, heads, t, hd = x.shape
    return x.view(series, rows // series, heads, t, hd).transpose(1, 2)


def _group_attention(q: Tensor, cache: _GroupCache, causal: bool) -> Tensor:
    """Attention for G series: q [G, H, S, T, hd] over each series' prefix (one
    [S*T, hd] x [hd, P] GEMM per series and head, batched over G*H) and each row's first ``length`` own keys
    (causally among the last T when ``causal``). Returns [G, H, S, T, hd]."""
    g, heads, s, t, hd = q.shape
    n, p = cache.length, cache.prefix_len
    gh = g * heads
    # Scaling the (small) queries instead of the scores saves a pass over [G*H, S*T, P+n]; for head sizes that are
    # powers of 4 (Kronos: 64) the scale is a power of two and both orders give the same bits.
    qf = (q * (1.0 / math.sqrt(hd))).reshape(gh, s * t, hd)
    parts: list[Tensor] = []
    if p:
        assert cache.prefix_k is not None
        parts.append(torch.bmm(qf, cache.prefix_k.reshape(gh, p, hd).transpose(1, 2)))  # [GH, S*T, P]
    if n:
        own_k = cache.own_k[:, :, :, :n].reshape(gh * s, n, hd)
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
        own_v = cache.own_v[:, :, :, :n].reshape(gh * s, n, hd)
        out = torch.bmm(probs[..., p:].reshape(gh * s, t, n), own_v).view(gh, s * t, hd)
    if p:
        assert cache.prefix_v is not None
        o = torch.bmm(probs[..., :p], cache.prefix_v.reshape(gh, p, hd))
        out = o if out is None else out + o
    assert out is not None
    return out.view(g, heads, s, t, hd)


def _merge_rows(x: Tensor) -> Tensor:
    """[G, H, S, T, hd] -> [G*S, T, H*hd] (AttentionProjections.merge of the rows)."""
    g, heads, s, t, hd = x.shape
    return x.permute(0, 2, 3, 1, 4).reshape(g * s, t, heads * hd)


# Per-step projections of a few rows are small GEMMs whose cost is mostly per call: q/k/v, w1/w3 and the
# dependency layer's k/v each run as one GEMM over weights concatenated once (and again only when a weight
# changes in place, e.g. between training steps: keyed on the tensors' version counters).
_FUSED: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], Tensor, Tensor | None]]" = (
    weakref.WeakKeyDictionary()
)


def _fused(linears: Sequence[nn.Linear]) -> tuple[Tensor, Tensor | None]:
    params = [p for lin in linears for p in (lin.weight, lin.bias) if p is not None]
    stamp = tuple(x for p in params for x in (p.data_ptr(), p._version))
    hit = _FUSED.get(linears[0])
    if hit is not None and hit[0] == stamp:
        return hit[1], hit[2]
    w = torch.cat([lin.weight for lin in linears])
    b = torch.cat([lin.bias for lin in linears]) if all(lin.bias is not None for lin in linears) else None
    _FUSED[linears[0]] = (stamp, w, b)
    return w, b


def _linear_split(x: Tensor, linears: Sequence[nn.Linear]) -> tuple[Tensor, ...]:
    w, b = _fused(linears)
    return F.linear(x, w, b).split([lin.out_features for lin in linears], dim=-1)


def _rms(norm: nn.Module, x: Tensor) -> Tensor:
    """RMSNorm as one op (bitwise the module's chain of seven on CPU; the reference mode keeps the module)."""
    return F.rms_norm(x, norm.weight.shape, norm.weight, norm.eps)


def _block_cached(block: nn.Module, x: Tensor, cache: _GroupCache, rope: tuple[Tensor, Tensor]) -> Tensor:
    """A TransformerBlock extending its rows by x [G*S, T, d] over a _GroupCache; ``rope`` = (cos, sin) of the T new
    positions (the same for every block of a stack, so computed once per step)."""
    attn = block.self_attn
    g = cache.own_k.shape[0]
    q, k, v = (attn.split(t) for t in _linear_split(_rms(block.norm1, x), (attn.q_proj, attn.k_proj, attn.v_proj)))
    q, k = RotaryEmbedding.apply(q, *rope), RotaryEmbedding.apply(k, *rope)
    cache.append(_by_series(k, g), _by_series(v, g))
    x = x + attn.out_proj(_merge_rows(_group_attention(_by_series(q, g).contiguous(), cache, causal=True)))
    ffn = block.ffn
    gate, up = _linear_split(_rms(block.norm2, x), (ffn.w1, ffn.w3))
    return x + ffn.w2(F.silu(gate) * up)


def _run_cached(blocks: nn.ModuleList, x: Tensor, caches: Sequence[_GroupCache]) -> Tensor:
    rope = blocks[0].self_attn.rotary.cos_sin(caches[0].position, x.shape[1])
    for block, cache in zip(blocks, caches):
        x = _block_cached(block, x, cache, rope)
    return x


def _prefill_blocks(blocks: nn.ModuleList, x: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """Full causal pass of windows [G, P, d]; each layer's keys/values [G, H, P, hd]."""
    kvs = []
    for block in blocks:
        x, k, v = block.forward_kv(x)
        kvs.append((k.contiguous(), v.contiguous()))
    return x, kvs


def _caches(blocks: nn.ModuleList, kvs: list[tuple[Tensor, Tensor]] | None, series: int, paths: int,
            capacity: int, like: Tensor) -> list[_GroupCache]:  # fmt: skip
    return [
        _GroupCache.allocate(kvs[i] if kvs else None, series, paths, capacity, b.self_attn.n_heads,
                             b.self_attn.head_dim, like)  # fmt: skip
        for i, b in enumerate(blocks)
    ]


@dataclass
class _GroupState:
    layers: list[_GroupCache]
    dep: _GroupCache
    last: Tensor  # normed hidden state of the newest position: [G, d] after a prefill, [G*S, d] after a step


def _group_prefill(model: Kronos, s1: Tensor, s2: Tensor, stamp: Tensor, paths: int, capacity: int) -> _GroupState:
    """Run G windows [G, P] (positions from 0) once; their caches are then shared by ``paths`` rows each, with
    room for ``capacity`` more tokens per row."""
    x, kvs = _prefill_blocks(model.transformer, model.embed(s1, s2, stamp))
    ctx = model.norm(x)
    ca = model.dep_layer.cross_attn
    dep_kv = (ca.split(ca.k_proj(ctx)).contiguous(), ca.split(ca.v_proj(ctx)).contiguous())
    g = s1.shape[0]
    layers = _caches(model.transformer, kvs, g, paths, capacity, ctx)
    dep = _GroupCache.allocate(dep_kv, g, paths, capacity, ca.n_heads, ca.head_dim, ctx)
    return _GroupState(layers, dep, ctx[:, -1])


def _group_extend(model: Kronos, state: _GroupState, s1: Tensor, s2: Tensor, stamp: Tensor) -> None:
    """Append tokens [G*S, T] (stamps [G*S, T, 5]) to every row; ``state.last`` becomes [G*S, d]."""
    ctx = _rms(model.norm, _run_cached(model.transformer, model.embed(s1, s2, stamp), state.layers))
    ca = model.dep_layer.cross_attn
    g = state.dep.own_k.shape[0]
    k, v = _linear_split(ctx, (ca.k_proj, ca.v_proj))
    state.dep.append(_by_series(ca.split(k), g), _by_series(ca.split(v), g))
    state.last = ctx[:, -1]


def _group_s2_logits(model: Kronos, state: _GroupState, s1: Tensor) -> Tensor:
    ca = model.dep_layer.cross_attn
    g = state.dep.own_k.shape[0]
    q = _by_series(ca.split(ca.q_proj(model.embedding.emb_s1(s1).unsqueeze(1))), g).contiguous()
    last = state.last
    if last.shape[0] != s1.shape[0]:  # right after a prefill: one state per series, shared by its rows
        last = last.repeat_interleave(s1.shape[0] // g, dim=0)
    attn = _merge_rows(_group_attention(q, state.dep, causal=False))  # [G*S, 1, d]
    dep = model.dep_layer
    return model.head.proj_s2(_rms(dep.norm, last + dep.cross_attn.out_proj(attn)[:, 0]))


def _group_decode(tokenizer: KronosTokenizer, prefix: tuple[Tensor, Tensor] | None, s1: Tensor, s2: Tensor,
                  series: int) -> Tensor:  # fmt: skip
    """Tokenizer decode of G prefixes [G, P] shared by their rows [G*S, T] -> the rows' bars [G*S, T, 6]: equals
    rows P.. of ``KronosTokenizer.decode`` on each row's cat(prefix, row), decoding each prefix once."""
    rows, t = s1.shape
    kvs = None
    if prefix is not None and prefix[0].shape[1]:
        _, kvs = _prefill_blocks(tokenizer.decoder, tokenizer.post_quant_embed(tokenizer.ids_to_code(*prefix)))
    h = tokenizer.post_quant_embed(tokenizer.ids_to_code(s1, s2))
    caches = _caches(tokenizer.decoder, kvs, series, rows // series, t, h)
    return tokenizer.head(_run_cached(tokenizer.decoder, h, caches))


@torch.inference_mode()
def generate_batch(
    model: Kronos,
    tokenizer: KronosTokenizer,
    hist_s1: Tensor,
    hist_s2: Tensor,
    x_stamp: Tensor,
    y_stamp: Tensor,
    cfg: GenerationConfig,
    generators: Sequence[torch.Generator | None],
) -> list[Generated]:
    """Fast-mode ``generate`` for G series of one history length: tokens [G, L], x_stamp [G, L, 5], y_stamp
    [G, H, 5]; one generator per series (None: torch's default generator, as ``torch.multinomial``)."""
    if cfg.mode != "fast":
        raise ValueError("generate_batch runs fast mode only; use generate() per series for the reference mode")
    G = hist_s1.shape[0]
    if len(generators) != G:
        raise ValueError(f"{len(generators)} generators for {G} series")
    if cfg.context_policy == "trim":
        keep = min(hist_s1.shape[1], cfg.max_context - cfg.horizon)
        hist_s1, hist_s2, x_stamp = hist_s1[:, -keep:], hist_s2[:, -keep:], x_stamp[:, -keep:]
    L, H, S, C = hist_s1.shape[1], cfg.horizon, cfg.n_paths, cfg.max_context
    R = G * S
    gen1 = hist_s1.new_zeros((R, H))
    gen2 = hist_s2.new_zeros((R, H))
    row_stamp = y_stamp.repeat_interleave(S, dim=0)  # [R, H, 5]
    # CPU: draw the sampling noise ahead on another thread (NoiseStream); two draws per step, s1 then s2.
    vocab = model.head.proj_s1.out_features
    ahead = hist_s1.device.type == "cpu" and model.head.proj_s2.out_features == vocab
    noise = NoiseStream(generators, S, vocab, 2 * H, model.head.proj_s1.weight) if ahead else None

    def next_noise(logits: Tensor) -> Tensor:
        return noise.next() if noise is not None else draw_noise(generators, S, logits.shape[-1], logits)

    state: _GroupState | None = None
    try:
        for i in range(H):
            n = L + i
            if i == 0:
                p = min(L, C)
                state = _group_prefill(model, hist_s1[:, L - p :], hist_s2[:, L - p :], x_stamp[:, L - p :], S, H)
            elif n <= C:
                assert state is not None
                _group_extend(model, state, gen1[:, i - 1 : i], gen2[:, i - 1 : i], row_stamp[:, i - 1 : i])
            elif S == 1:  # the window slid, one path per series: nothing to share, one causal pass over it
                start = n - C
                cat = lambda h, g: torch.cat((h[:, start:], g[:, :i]), dim=1)  # noqa: E731
                state = _group_prefill(model, cat(hist_s1, gen1), cat(hist_s2, gen2), cat(x_stamp, row_stamp), S, 0)
            else:  # the window slid ("exact" policy): re-run it, history part per series, then the rows
                start = n - C
                state = _group_prefill(model, hist_s1[:, start:], hist_s2[:, start:], x_stamp[:, start:], S, i)
                _group_extend(model, state, gen1[:, :i], gen2[:, :i], row_stamp[:, :i])
            assert state is not None
            logits = model.s1_logits(state.last)
            if logits.shape[0] != R:
                logits = logits.repeat_interleave(S, dim=0)
            s1 = sample_with_noise(logits, cfg.sampling, next_noise(logits))
            s2_logits = _group_s2_logits(model, state, s1)
            s2 = sample_with_noise(s2_logits, cfg.sampling, next_noise(s2_logits))
            gen1[:, i], gen2[:, i] = s1, s2
    finally:
        if noise is not None:
            noise.close()
    keep = min(L + H, C) - H
    prefix = (hist_s1[:, L - keep :], hist_s2[:, L - keep :]) if keep else None
    bars = _group_decode(tokenizer, prefix, gen1, gen2, G)
    return [Generated(gen1[j * S : (j + 1) * S], gen2[j * S : (j + 1) * S], bars[j * S : (j + 1) * S])
            for j in range(G)]  # fmt: skip
