"""Many prepared series through the fast mode at once: grouping into model batches and running them on threads.

Series with the same history length and horizon form groups of at most ``batch_size`` (never padded), each group
is one ``generate.generate_batch`` call. A lone group runs in the calling thread with the caller's threads, so a
lone request costs what a single-series call costs; several groups run on ``workers`` threads of one intra-op
thread each (on a CPU shared with other processes OpenMP barriers in thousands of small ops make several intra-op
threads per batch many times slower). Each series draws from its own seeded generator, so it draws the same
tokens alone or in any batch; its paths then agree within float rounding (the GEMM shapes, hence the rounding,
depend on the group size), bitwise when the group size is the same (kronos_assets_tests/kronos/test_batched.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import torch

from .generate import Generated, GenerationConfig, generate_batch
from .inputs import PreparedSeries
from .model import Kronos
from .runtime import torch_threads
from .tokenizer import KronosTokenizer


def plan_batches(series: Sequence[PreparedSeries], batch_size: int) -> list[list[int]]:
    """Indices of ``series`` in model batches: same history length and horizon, at most ``batch_size`` each."""
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(series):
        by_shape.setdefault((len(s.x), s.horizon), []).append(i)
    return [idx[j : j + batch_size] for idx in by_shape.values() for j in range(0, len(idx), batch_size)]


def generate_group(
    model: Kronos,
    tokenizer: KronosTokenizer,
    series: Sequence[PreparedSeries],
    seeds: Sequence[int],
    cfg: GenerationConfig,
    device: torch.device,
) -> list[Generated]:
    """One model batch: encode the series' whole histories, then ``generate_batch`` with one generator per seed."""
    gens = [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]
    x = torch.from_numpy(np.stack([s.x for s in series])).to(device)
    x_stamp = torch.from_numpy(np.stack([s.x_stamp for s in series])).to(device)
    y_stamp = torch.from_numpy(np.stack([s.y_stamp for s in series])).to(device)
    with torch.inference_mode():  # thread-local: entered in the worker
        s1, s2 = tokenizer.encode(x)  # the whole history, as the original; truncation is on tokens
        return generate_batch(model, tokenizer, s1, s2, x_stamp, y_stamp, cfg, gens)


def generate_many(
    model: Kronos,
    tokenizer: KronosTokenizer,
    series: Sequence[PreparedSeries],
    seeds: Sequence[int],
    cfgs: Sequence[GenerationConfig],
    *,
    device: torch.device,
    batch_size: int,
    workers: int,
    num_threads: int | None,
) -> list[Generated]:
    """Fast-mode tokens and bars of every series (``cfgs[i]`` for series i; series of one batch share a config),
    in the order given. ``num_threads``: torch threads when everything is one batch (None: unchanged)."""
    batches = plan_batches(series, batch_size)

    def run(batch: list[int]) -> list[tuple[int, Generated]]:
        outs = generate_group(
            model, tokenizer, [series[i] for i in batch], [seeds[i] for i in batch], cfgs[batch[0]], device
        )
        return list(zip(batch, outs))

    workers = min(workers, len(batches))
    if workers > 1:
        # One intra-op thread per worker (worker threads start with torch's global setting).
        with torch_threads(1 if device.type == "cpu" else num_threads):
            with ThreadPoolExecutor(workers, thread_name_prefix="kronos") as pool:
                done = list(pool.map(run, batches))
    else:  # a lone batch (the live request, the CLI): the caller's threads
        with torch_threads(num_threads):
            done = [run(b) for b in batches]
    results = dict(pair for part in done for pair in part)
    return [results[i] for i in range(len(series))]
