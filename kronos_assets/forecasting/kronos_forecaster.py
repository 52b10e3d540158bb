"""KronosForecaster: the Forecaster protocol on top of kronos.KronosPredictor.

Requests are generated together (KronosPredictor.sample_many): requests with the same history length form model
batches of at most ``batch_size`` (never padded: a lone live request costs what a direct call costs, a backtest
keeps batched throughput), and each request draws its noise from a generator seeded by its own ``seed``. So a
request draws the same tokens whether it runs alone or in any batch, in the live run and in a backtest alike; its
paths agree within float rounding (bitwise when the batch size is the same). Each request is normalised on, and
forecast from, its own last ``history_window`` bars only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..kronos.config import DEFAULT_CONTEXT_POLICY, DEFAULT_MODEL_REPO, ContextPolicy, Mode
from ..kronos.errors import KronosInputError
from ..kronos.predictor import DEFAULT_BATCH_SIZE, KronosPredictor
from ..kronos.sampling import SamplingParams
from .interface import ForecastRequest, Sampling


def default_name(model_source: str | os.PathLike[str]) -> str:
    base = Path(str(model_source)).name.lower()
    return base if base.startswith("kronos") else f"kronos-{base}"


class KronosForecaster:
    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL_REPO,
        tokenizer: str | os.PathLike[str] | None = None,
        *,
        model_revision: str | None = None,
        tokenizer_revision: str | None = None,
        device: str | torch.device | None = None,
        max_context: int = 512,
        context_policy: ContextPolicy = DEFAULT_CONTEXT_POLICY,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        name: str | None = None,
        mode: Mode = "fast",
        num_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        workers: int | None = None,
    ) -> None:
        """Load the model and its tokenizer (hub repo ids at revisions, pinned ones by default, or folders).

        ``device`` None/"auto" picks cuda, then mps, then cpu. ``context_policy`` decides what happens when
        history + horizon exceed ``max_context`` (see kronos.generate): "exact" (default, the model's own
        sliding window) or "trim" (a speed option). ``num_threads``: torch threads when all requests fit one batch
        (None: unchanged). ``batch_size`` (most requests per model batch) and ``workers`` (batches at once, one
        thread each; None: the usable CPUs): see KronosPredictor.
        """
        predictor = KronosPredictor.from_pretrained(
            model,
            tokenizer,
            model_revision=model_revision,
            tokenizer_revision=tokenizer_revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            device=device,
            max_context=max_context,
            context_policy=context_policy,
            num_threads=num_threads,
            batch_size=batch_size,
            workers=workers,
        )
        self._init(predictor, name or default_name(model), mode)

    def _init(self, predictor: KronosPredictor, name: str, mode: Mode) -> None:
        self.predictor = predictor
        self.name = name
        self.mode: Mode = mode

    @classmethod
    def from_predictor(cls, predictor: KronosPredictor, name: str = "kronos", mode: Mode = "fast") -> KronosForecaster:
        self = cls.__new__(cls)
        self._init(predictor, name, mode)
        return self

    def forecast_batch(self, requests: Sequence[ForecastRequest], sampling: Sampling) -> list[np.ndarray]:
        params = SamplingParams(sampling.temperature, sampling.top_k, sampling.top_p)
        prepared = []
        for req in requests:  # validate every request before any compute
            label = f"{req.symbol} {req.timeframe} @ {req.origin.isoformat()}"
            if len(req.future_ts) != sampling.horizon:
                n = len(req.future_ts)
                raise KronosInputError(f"{label}: {n} future timestamps for horizon {sampling.horizon}")
            series = self.predictor.prepare(req.history, req.future_ts, name=label)
            self.predictor.generation_config(series.horizon, sampling.n_paths, params, self.mode)
            prepared.append((req, series))
        out = self.predictor.sample_many(
            [s for _, s in prepared],
            [req.seed for req, _ in prepared],
            n_paths=sampling.n_paths,
            sampling=params,
            mode=self.mode,
        )
        return [f.paths for f in out]

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "implementation": "kronos_assets.kronos",
            "mode": self.mode,
            **self.predictor.provenance(),
        }
