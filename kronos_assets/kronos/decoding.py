"""The fast mode's tokenizer decode of generated rows, run while the rows are still being generated.

The decoder is causal, so a row's bars can be decoded chunk by chunk as its tokens are drawn: the shared history
prefix once, then each finished chunk of every row, extending the decoder's KV caches (cached.py). On CPU the
cached AR steps run on one thread (generate.STEP_THREADS), so ``RowDecoder`` does this work on one background
thread meanwhile and only the last chunk is left when the last token is drawn.

The chunk boundaries are fixed (``CHUNK`` tokens) and every decode runs on one intra-op thread, in the background
or not, so the bars are bitwise the same either way; they equal a one-shot decode of each row's whole window
within float rounding (the GEMM shapes differ).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable

import torch
from torch import Tensor

from .runtime import torch_threads
from .tokenizer import KronosTokenizer

CHUNK = 6  # tokens per row decoded at once: large enough for few passes, small enough for a short tail
DECODE_TIMEOUT_S = 600.0  # longest wait for one background decode before the request fails
CLOSE_WAIT_S = 5.0  # longest wait, when a request ends early, for the chunk being decoded


def decode_rows(
    tokenizer: KronosTokenizer, prefix: tuple[Tensor, Tensor] | None, s1: Tensor, s2: Tensor, series: int
) -> Tensor:
    """Tokenizer decode of G prefixes [G, P] shared by their rows [G*S, T] -> the rows' bars [G*S, T, 6]: equals
    rows P.. of ``KronosTokenizer.decode`` on each row's cat(prefix, row), decoding each prefix once."""
    decoder = RowDecoder(tokenizer, prefix, series, s1.shape[0], s1.shape[1], background=False)
    with decoder:
        return decoder.finish(s1, s2)


class RowDecoder:
    """Decodes rows [G*S, H] of generated tokens as they are drawn (``feed``), the rest at ``finish``.

    With ``background`` the prefix and every full chunk are decoded on one worker thread, in order; ``finish``
    waits for them (at most ``timeout_s`` each) and decodes the remainder in the calling thread. Use as a context
    manager, or call ``close``: it stops the worker after its current chunk."""

    def __init__(
        self,
        tokenizer: KronosTokenizer,
        prefix: tuple[Tensor, Tensor] | None,
        series: int,
        rows: int,
        horizon: int,
        *,
        background: bool,
        chunk: int = CHUNK,
        timeout_s: float = DECODE_TIMEOUT_S,
    ) -> None:
        self.tokenizer, self.horizon, self.chunk, self.timeout_s = tokenizer, horizon, chunk, timeout_s
        has_prefix = prefix is not None and prefix[0].shape[1] > 0
        self._caches = tokenizer.decoder_caches(series, rows // series, horizon, prefill=has_prefix)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="kronos-decode") if background else None
        self._jobs: list[Future[Tensor | None]] = []
        self._done = 0  # tokens per row handed over so far
        # Decoded with the first chunk's hand-over, not now: the model's prefill runs on all threads meanwhile.
        self._prefix = prefix if has_prefix else None

    def _decode_prefix(self, s1: Tensor, s2: Tensor) -> None:
        self._decode(s1, s2)  # only its keys/values matter: the prefix's bars are history

    def _decode(self, s1: Tensor, s2: Tensor) -> Tensor:
        tok = self.tokenizer
        with torch.inference_mode(), torch_threads(1):
            return tok.decode_hidden(tok.post_quant_embed(tok.ids_to_code(s1, s2)), self._caches)

    def _submit(self, job: Callable[[], Tensor | None]) -> None:
        if self._pool is not None:
            self._jobs.append(self._pool.submit(job))
        else:
            done: Future[Tensor | None] = Future()
            done.set_result(job())
            self._jobs.append(done)

    def feed(self, s1: Tensor, s2: Tensor, drawn: int) -> None:
        """Rows' tokens [G*S, >= drawn], of which the first ``drawn`` per row are final: decode full chunks."""
        if self._prefix is not None:
            prefix, self._prefix = self._prefix, None
            self._submit(lambda: self._decode_prefix(*prefix))
        while drawn - self._done >= self.chunk:
            a, b = self._done, self._done + self.chunk
            part1, part2 = s1[:, a:b].clone(), s2[:, a:b].clone()  # the generator keeps writing later columns
            self._submit(lambda p1=part1, p2=part2: self._decode(p1, p2))
            self._done = b

    def wait(self) -> list[Tensor]:
        """Wait until the background work handed over so far is done (before a pass that needs every thread);
        returns the chunks' bars in order."""
        parts: list[Tensor] = []
        for job in self._jobs:
            try:
                out = job.result(timeout=self.timeout_s)
            except TimeoutError:
                raise RuntimeError(f"the background tokenizer decode stalled for {self.timeout_s:g} s") from None
            if out is not None:
                parts.append(out)
        return parts

    def finish(self, s1: Tensor, s2: Tensor) -> Tensor:
        """All rows' bars [G*S, H, 6]: the chunks decoded so far, then the rest of s1, s2 [G*S, H]."""
        self.feed(s1, s2, self.horizon)
        parts = self.wait()
        if self._done < self.horizon:
            parts.append(self._decode(s1[:, self._done :], s2[:, self._done :]))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def close(self) -> None:
        """Drop the work not started; give the chunk in progress a bounded while to end (a decode is compute
        only, so it ends: this keeps a failed request from leaving a busy thread behind)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            if not wait(self._jobs, timeout=min(self.timeout_s, CLOSE_WAIT_S)).not_done:
                self._pool.shutdown(wait=True)  # idle now: its thread exits at once

    def __enter__(self) -> "RowDecoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
