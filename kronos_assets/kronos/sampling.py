"""Token sampling (spec §6): temperature, then top-k OR top-p, then one multinomial draw per row.

Reproducibility rests on the RNG calls: every AR step issues exactly one ``torch.multinomial`` over an [S, V]
matrix for s1 and one for s2, from the request's own generator, in both the fast and the reference mode.

``sample_tokens_grouped`` samples many requests' rows at once with the same draws: torch.multinomial with one
sample per row is "q ~ Exp(1) of the probabilities' shape from the generator, then argmax(p / q)" (the Gumbel-max
trick), so filling each request's block of q from that request's generator and taking one batched argmax gives
bitwise the tokens each request would draw alone (tested in kronos_assets_tests/kronos/test_batched.py).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .errors import SamplingSettingsError


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.9

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise SamplingSettingsError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise SamplingSettingsError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise SamplingSettingsError(f"top_p must be in (0, 1], got {self.top_p}")


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Mask logits [..., V] with -inf. top_k > 0 wins and top_p is then ignored, as in the original."""
    if top_k > 0:
        k = min(top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, float("-inf"))  # ties with the k-th value are kept
    if top_p < 1.0:
        # Rank r (descending) is kept when the mass of ranks < r is <= top_p, so the first token crossing top_p
        # stays and the top token always stays. Cumulative sums grow, so the kept ranks are 0..m: keep every
        # logit >= the m-th largest. Same set as the original's sort/shift/scatter except that exact ties at the
        # cut are all kept (as top-k does), and it needs the sorted values only.
        sorted_logits = _sorted_descending(logits)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # m = how many of cum[..., :-1] are <= top_p: a binary search, since cum never decreases.
        limit = torch.full((*cum.shape[:-1], 1), top_p, dtype=cum.dtype, device=cum.device)
        m = torch.searchsorted(cum, limit, right=True).clamp_(max=logits.shape[-1] - 1)
        return _mask_below(logits, sorted_logits.gather(-1, m))
    return logits


def _sorted_descending(x: Tensor) -> Tensor:
    if x.device.type == "cpu" and x.dtype == torch.float32:
        # numpy's value-only sort is ~20x faster than torch.sort (which always tracks indices) on CPU; sorting
        # the negated values and negating back is the descending order exactly.
        return torch.from_numpy(np.sort(np.negative(x.detach().numpy()), axis=-1)).neg_()
    return torch.sort(x, dim=-1, descending=True).values


def _mask_below(x: Tensor, threshold: Tensor) -> Tensor:
    """x with -inf where x < threshold (masked_fill; numpy's where is ~2x faster on CPU, same values)."""
    if x.device.type == "cpu" and x.dtype == torch.float32:
        a = x.detach().numpy()
        return torch.from_numpy(np.where(a < threshold.numpy(), np.float32(-np.inf), a))
    return x.masked_fill(x < threshold, float("-inf"))


def sample_tokens(logits: Tensor, params: SamplingParams, generator: torch.Generator | None) -> Tensor:
    """One token per row of logits [S, V] -> int64 [S]."""
    scaled = filter_logits(logits / params.temperature, params.top_k, params.top_p)
    probs = torch.softmax(scaled, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def draw_noise(generators: Sequence[torch.Generator | None], rows: int, vocab: int, like: Tensor) -> Tensor:
    """The Exp(1) noise ``torch.multinomial`` draws for one sample of [G*rows, vocab] probabilities: block j
    (rows j*rows..) from generators[j] (None: torch's default generator)."""
    q = like.new_empty((len(generators) * rows, vocab))
    for block, gen in zip(q.view(len(generators), rows, vocab), generators):
        block.exponential_(1, generator=gen)
    return q


def sample_with_noise(logits: Tensor, params: SamplingParams, noise: Tensor) -> Tensor:
    """One token per row of logits [R, V] -> int64 [R], given the row's draw of ``draw_noise``."""
    scaled = logits if params.temperature == 1.0 else logits / params.temperature  # x / 1.0 is x, bitwise
    probs = torch.softmax(filter_logits(scaled, params.top_k, params.top_p), dim=-1)
    return torch.argmax(probs / noise, dim=-1)


def sample_tokens_grouped(
    logits: Tensor, params: SamplingParams, generators: Sequence[torch.Generator | None]
) -> Tensor:
    """One token per row of logits [G*S, V] -> int64 [G*S]; block j (rows j*S..) draws from generators[j].

    Equals ``sample_tokens`` on each block alone with its generator (same RNG consumption); None draws from
    torch's default generator, as ``sample_tokens`` does."""
    noise = draw_noise(generators, logits.shape[0] // len(generators), logits.shape[-1], logits)
    return sample_with_noise(logits, params, noise)


class NoiseStream:
    """The noise of ``draws`` successive ``draw_noise`` calls, drawn ahead on a background thread.

    Each generator is used by this thread only, in the same order and with the same sizes as inline draws, so
    the values are bitwise the same; the drawing (about a tenth of a Kronos-mini request on CPU) then overlaps
    the model's single-threaded stretches. At most ``ahead`` draws wait in memory.
    """

    def __init__(
        self,
        generators: Sequence[torch.Generator | None],
        rows: int,
        vocab: int,
        draws: int,
        like: Tensor,
        ahead: int = 4,
        timeout_s: float = 120.0,
    ) -> None:
        self._ready: queue.Queue[Tensor | BaseException] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._timeout_s = timeout_s
        args = (list(generators), rows, vocab, like)
        self._thread = threading.Thread(target=self._run, args=(args, draws), daemon=True, name="kronos-noise")
        self._thread.start()

    def _put(self, item: Tensor | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, args: tuple, draws: int) -> None:
        try:
            for _ in range(draws):
                if not self._put(draw_noise(*args)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)

    def next(self) -> Tensor:
        try:
            item = self._ready.get(timeout=self._timeout_s)
        except queue.Empty:
            raise RuntimeError(f"no sampling noise within {self._timeout_s:g} s (the drawing thread stalled)") from None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> "NoiseStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
