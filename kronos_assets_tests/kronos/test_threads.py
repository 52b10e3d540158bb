"""Threads: a cached step runs on one intra-op thread (its ~100 small ops would each pay an OpenMP fork/join),
the window passes on the caller's threads; OpenMP's idle threads spin a bounded while unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from kronos_assets.base import environment
from kronos_assets.kronos import generate as gen
from kronos_assets.kronos.generate import GenerationConfig, generate
from kronos_assets.kronos.model import Kronos
from kronos_assets.kronos.runtime import torch_threads
from kronos_assets.kronos.sampling import SamplingParams

from .test_generate import _history


@pytest.mark.parametrize("max_context", [64, 24])  # no slide; the "exact" window slides for the last steps
def test_steps_run_on_one_thread_windows_on_the_callers(
    networks: tuple, max_context: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tok = networks
    seen: list[tuple[int, int]] = []  # (tokens per row, threads) of every context call
    real = Kronos.context

    def spy(self, s1, s2, stamp, *args):  # type: ignore[no-untyped-def]
        seen.append((s1.shape[1], torch.get_num_threads()))
        return real(self, s1, s2, stamp, *args)

    monkeypatch.setattr(Kronos, "context", spy)
    hist = _history(tok, 20, 8)
    cfg = GenerationConfig(horizon=8, n_paths=3, sampling=SamplingParams(), max_context=max_context)
    with torch_threads(2):
        out = generate(model, tok, *hist, cfg, torch.Generator().manual_seed(0))
        assert torch.get_num_threads() == 2  # restored
    assert seen[0] == (20, 2)  # the prefill
    steps = [threads for tokens, threads in seen if tokens == 1]
    assert len(steps) == (7 if max_context == 64 else 4) and set(steps) == {gen.STEP_THREADS}  # 24: 3 slid
    assert all(threads == 2 for tokens, threads in seen if tokens > 1)
    monkeypatch.setattr(gen, "STEP_THREADS", None)  # the same tokens with the caller's threads everywhere
    with torch_threads(2):
        again = generate(model, tok, *hist, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(out.s1, again.s1) and torch.equal(out.s2, again.s2)


@pytest.mark.parametrize(
    "preset,expected", [({}, "10000"), ({"OMP_WAIT_POLICY": "PASSIVE"}, None), ({"GOMP_SPINCOUNT": "50"}, "50")]
)
def test_openmp_spinning_is_bounded_unless_the_user_chose(
    preset: dict, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in preset.items():
        monkeypatch.setenv(name, value)
    environment.bound_openmp_spinning()
    assert os.environ.get("GOMP_SPINCOUNT") == expected
    assert os.environ.get("OMP_WAIT_POLICY") == preset.get("OMP_WAIT_POLICY")


def test_the_package_sets_the_bound_before_torch_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = "import os, sys, kronos_assets; print('torch' in sys.modules, os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "10000"], out.stderr
