"""Where and with how many threads the networks run: device choice and torch's intra-op thread count."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """None/"auto": cuda, then mps, then cpu (the original's order)."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but MPS is not available")
    return dev


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch intra-op threads set to ``n`` inside the block (None: unchanged), restored after."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
