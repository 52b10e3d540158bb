"""Autoregressive generation of S sample paths for one series (spec §7), in a fast and a reference mode.

Reference mode recomputes the whole window for every step and every path, exactly like the original.
Fast mode is the same computation reorganised:
  * the history window is run once (batch 1) and its keys/values are shared by all S paths;
  * each step appends one token per path to KV caches of the main blocks and of the dependency layer, and
    projects logits for the last position only;
  * the final tokenizer decode runs the shared history part once and only the generated rows per path.
Both modes issue the same RNG calls (one multinomial over [S, V] for s1, one for s2, per step), so with the same
generator they draw the same tokens, up to float rounding ties, while the window has not slid.

Context policies once history + horizon exceed max_context:
  * "exact": the original semantics. When the window slides every position shifts, so cached states are stale;
    fast mode then re-runs the (shared) history part and the generated tokens each step. Exact, but each such step
    costs a window forward.
  * "trim" (default): keep only the last max_context - horizon history tokens, so the window never slides and
    every step stays one cached position. Identical to "exact" when history + horizon <= max_context; otherwise
    the first steps see fewer history bars (the oldest ones, which the sliding window drops anyway by the end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .errors import HorizonTooLongError
from .model import Kronos
from .sampling import SamplingParams, sample_tokens
from .tokenizer import KronosTokenizer

ContextPolicy = Literal["trim", "exact"]
Mode = Literal["fast", "reference"]
CONTEXT_POLICIES: tuple[str, ...] = ("trim", "exact")
DEFAULT_CONTEXT_POLICY: ContextPolicy = "trim"
MODES: tuple[str, ...] = ("fast", "reference")


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
    L, H, S, C = hist_s1.shape[0], cfg.horizon, cfg.n_paths, cfg.max_context
    gen1 = hist_s1.new_zeros((S, H))
    gen2 = hist_s2.new_zeros((S, H))
    y_stamp = y_stamp.unsqueeze(0)
    state = None
    for i in range(H):
        n = L + i
        if i == 0:
            p = min(L, C)
            state = model.prefill(hist_s1[L - p :], hist_s2[L - p :], x_stamp[L - p :], S, H)
        elif n <= C:  # the window still starts at the same token: one cached position per path
            model.extend(state, gen1[:, i - 1 : i], gen2[:, i - 1 : i], y_stamp[:, i - 1 : i])
        else:  # the window slid: positions shifted, so re-run it (history part shared, then the paths)
            start = n - C
            state = model.prefill(hist_s1[start:], hist_s2[start:], x_stamp[start:], S, i)
            model.extend(state, gen1[:, :i], gen2[:, :i], y_stamp[:, :i])
        assert state is not None
        logits = model.s1_logits(state.last)
        s1 = sample_tokens(logits.expand(S, -1).contiguous(), cfg.sampling, generator)
        s2 = sample_tokens(model.s2_logits_cached(state, s1), cfg.sampling, generator)
        gen1[:, i], gen2[:, i] = s1, s2
    keep = min(L + H, C) - H  # history tokens inside the final decode window
    prefix = (hist_s1[L - keep :], hist_s2[L - keep :]) if keep else None
    bars = tokenizer.decode_continuation(prefix, gen1, gen2)
    return Generated(gen1, gen2, bars)
