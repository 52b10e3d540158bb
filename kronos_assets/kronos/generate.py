"""Autoregressive generation of S sample paths per series (spec §7), in a fast and a reference mode.

Reference mode recomputes the whole window for every step and every path, exactly like the original.
Fast mode (``generate_batch``; ``generate`` runs it as a batch of one) is the same computation reorganised:
  * each series' history window is run once and its keys/values are shared by its S paths;
  * each step appends one token per path to KV caches of the main blocks and of the dependency layer, and
    projects logits for the last position only;
  * the tokenizer decode runs the shared history part once and only the generated rows per path, chunk by chunk
    while they are generated (decoding.py).
Both modes run through the same entry points (``Kronos.context``/``s2_logits``, ``KronosTokenizer.decode_hidden``):
the reference mode without caches (the modules' window passes, layers.py), the fast mode with a ``DecodeState``
(cached.py: the same blocks on packed weights, prefills and cached steps), equal within float rounding. Both
modes issue the same RNG calls (one multinomial over [S, V] for s1, one for s2, per step), so with the same
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

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from .cached import weights_frozen
from .config import CONTEXT_POLICIES, DEFAULT_CONTEXT_POLICY, MODES, ContextPolicy, Mode
from .decoding import RowDecoder
from .errors import HorizonTooLongError
from .model import DecodeState, Kronos
from .runtime import torch_threads
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


def _generate_reference(
    model: Kronos,
    tokenizer: KronosTokenizer,
    hist_s1: Tensor,
    hist_s2: Tensor,
    x_stamp: Tensor,
    y_stamp: Tensor,
    cfg: GenerationConfig,
    generator: torch.Generator | None,
) -> Generated:
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


def _generate_fast(
    model: Kronos,
    tokenizer: KronosTokenizer,
    hist_s1: Tensor,
    hist_s2: Tensor,
    x_stamp: Tensor,
    y_stamp: Tensor,
    cfg: GenerationConfig,
    generator: torch.Generator | None,
) -> Generated:
    return generate_batch(
        model, tokenizer, hist_s1[None], hist_s2[None], x_stamp[None], y_stamp[None], cfg, [generator]
    )[0]


# torch intra-op threads of a cached step on CPU. A step is ~150 small ops (all blocks, heads, sampling): split
# over threads, each op costs an OpenMP fork/join, and where idle threads sleep or share the CPU with other processes,
# a wake-up (tens
# of microseconds to a scheduler tick). Measured (bench_kronos B, Kronos-small, 1 path): the caller's 2 threads
# made a quiet machine's run 5-15 % faster (a 1-row step streams 84 MB of weights; 2 threads read more of it per
# second), but with 3 other busy processes on the 2 cores, slower than 1 thread by 1.5x (A) to over 1.2x (B, runs
# past 12 s against 9.8 s). With the tokenizer decode on a background thread during the steps (decoding.py),
# Kronos-mini's 30-path request was 1.2x slower with 2-thread steps (0.53 s against 0.43 s). And the bits of a
# 1-row step's GEMV differ between 1 and 2 threads, so the thread count must not depend on the load. So steps stay
# on one thread; the window passes (prefill, the "exact" recompute, the encoder) keep the caller's threads.
STEP_THREADS = 1


# -- many series at once -------------------------------------------------------------------------------------
def prefill(model: Kronos, s1: Tensor, s2: Tensor, stamp: Tensor, paths: int, capacity: int) -> DecodeState:
    """Run G windows [G, P] (positions from 0) once; their caches are then shared by ``paths`` rows each, with
    room for ``capacity`` more tokens per row."""
    state = model.decode_state(s1.shape[0], paths, capacity)
    model.context(s1, s2, stamp, state)
    return state


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
    row_time = model.time_emb(y_stamp).repeat_interleave(S, dim=0)  # [R, H, d]: once, not once per step
    # CPU: draw the sampling noise ahead on another thread (NoiseStream); two draws per step, s1 then s2.
    vocab = model.head.proj_s1.out_features
    ahead = hist_s1.device.type == "cpu" and model.head.proj_s2.out_features == vocab
    noise = NoiseStream(generators, S, vocab, 2 * H, model.head.proj_s1.weight) if ahead else None

    def next_noise(logits: Tensor) -> Tensor:
        return noise.next() if noise is not None else draw_noise(generators, S, logits.shape[-1], logits)

    keep = min(L + H, C) - H  # history tokens in the final window, before the generated ones
    prefix = (hist_s1[:, L - keep :], hist_s2[:, L - keep :]) if keep else None
    decoder = RowDecoder(tokenizer, prefix, G, R, H, background=hist_s1.device.type == "cpu")
    state: DecodeState | None = None
    try:
        with weights_frozen():  # nothing changes the weights during a request
            for i in range(H):
                n = L + i
                if i == 0:
                    p = min(L, C)
                    state = prefill(model, hist_s1[:, L - p :], hist_s2[:, L - p :], x_stamp[:, L - p :], S, H)
                elif n <= C:
                    assert state is not None
                    with torch_threads(STEP_THREADS):
                        model.context(
                            gen1[:, i - 1 : i],
                            gen2[:, i - 1 : i],
                            row_stamp[:, i - 1 : i],
                            state,
                            row_time[:, i - 1 : i],
                        )
                elif S == 1:  # the window slid, one path per series: nothing to share, one causal pass over it
                    decoder.wait()  # window passes use every thread
                    start = n - C
                    cat = lambda h, g: torch.cat((h[:, start:], g[:, :i]), dim=1)  # noqa: E731
                    state = prefill(model, cat(hist_s1, gen1), cat(hist_s2, gen2), cat(x_stamp, row_stamp), S, 0)
                else:  # the window slid ("exact" policy): re-run it, history part per series, then the rows
                    decoder.wait()
                    start = n - C
                    state = prefill(model, hist_s1[:, start:], hist_s2[:, start:], x_stamp[:, start:], S, i)
                    model.context(gen1[:, :i], gen2[:, :i], row_stamp[:, :i], state, row_time[:, :i])
                assert state is not None and state.last is not None
                with torch_threads(STEP_THREADS):
                    logits = model.s1_logits(state.last, step=True)
                    if logits.shape[0] != R:
                        logits = logits.repeat_interleave(S, dim=0)
                    s1 = sample_with_noise(logits, cfg.sampling, next_noise(logits))
                    s2_logits = model.s2_logits(state.last, s1, state.dep)
                    s2 = sample_with_noise(s2_logits, cfg.sampling, next_noise(s2_logits))
                gen1[:, i], gen2[:, i] = s1, s2
                if n + 1 <= C:  # the next step is a cached one (one thread): decode what is final meanwhile
                    decoder.feed(gen1, gen2, i + 1)
            bars = decoder.finish(gen1, gen2)
    finally:
        decoder.close()
        if noise is not None:
            noise.close()
    return [
        Generated(gen1[j * S : (j + 1) * S], gen2[j * S : (j + 1) * S], bars[j * S : (j + 1) * S]) for j in range(G)
    ]
