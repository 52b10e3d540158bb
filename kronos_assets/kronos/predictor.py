"""KronosPredictor: candles in, sample paths out (spec §8).

Unlike the original predictor it returns every sample path (not only their mean), takes one seed per series
(a series' paths never depend on the other series in the call), and accepts series of different lengths.
The predictor is the facade over: inputs.py (validation, normalisation and the history window the model sees),
generate.py (one series, fast or reference mode), batching.py (many series in model batches on threads) and
runtime.py (device and threads). Summaries of the paths are the forecasting layer's (forecasting/summary.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl
import torch

from .batching import generate_many
from .config import DEFAULT_CONTEXT_POLICY, ContextPolicy, Mode
from .errors import KronosInputError
from .generate import Generated, GenerationConfig, generate
from .hub import CheckpointInfo, load_model, load_tokenizer
from .inputs import FEATURES, PreparedSeries, prepare_series
from .model import Kronos
from .runtime import resolve_device, torch_threads, usable_cpus
from .sampling import SamplingParams
from .tokenizer import KronosTokenizer

DEFAULT_BATCH_SIZE = 8  # most series per model batch; see KronosPredictor


@dataclass
class PathForecast:
    """All sample paths of one series, de-normalised."""

    paths: np.ndarray  # (n_paths, horizon, 6) float64, fields FEATURES
    timestamps: np.ndarray  # (horizon,) datetime64[us]
    history_close: np.ndarray  # (L,) float64
    seed: int
    generated: Generated | None = None  # tokens, when asked for

    @property
    def mean_path(self) -> np.ndarray:
        """(horizon, 6): what the original predictor returns (the average of the paths)."""
        return self.paths.mean(axis=0)

    @property
    def median_path(self) -> np.ndarray:
        return np.median(self.paths, axis=0)

    def to_dict(self, include_paths: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "timestamps": [str(t) + "Z" for t in self.timestamps.astype("datetime64[s]")],
            "fields": list(FEATURES),
            "seed": self.seed,
            "n_paths": int(self.paths.shape[0]),
            "last_close": float(self.history_close[-1]),
            "mean_path": {f: self.mean_path[:, i].tolist() for i, f in enumerate(FEATURES)},
            "median_path": {f: self.median_path[:, i].tolist() for i, f in enumerate(FEATURES)},
        }
        if include_paths:
            out["paths"] = self.paths.tolist()
        return out


class KronosPredictor:
    def __init__(
        self,
        model: Kronos,
        tokenizer: KronosTokenizer,
        *,
        device: str | torch.device | None = None,
        max_context: int = 512,
        clip: float = 5.0,
        context_policy: ContextPolicy = DEFAULT_CONTEXT_POLICY,
        model_info: CheckpointInfo | None = None,
        tokenizer_info: CheckpointInfo | None = None,
        num_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        workers: int | None = None,
    ) -> None:
        """``num_threads``: torch intra-op threads while one model batch runs in the calling thread (``sample``,
        and ``sample_many`` when all its series fit one batch: a lone request); None leaves torch's setting.
        When ``sample_many`` has several batches (a backtest) they run on ``workers`` threads of one intra-op
        thread each (None: the usable CPUs on a CPU device, 1 elsewhere): on a CPU shared with other processes
        OpenMP barriers in thousands of small ops make several intra-op threads per batch many times slower.

        ``batch_size``: most series per model batch in ``sample_many``. Batches are not padded, so a lone series
        costs one series; a series draws the same tokens in a batch of any size, and its paths agree within
        float rounding (bitwise for equal batch sizes). 8 is about as fast per series as 64 on CPU.

        ``context_policy``: "exact" (default) reproduces the original model's sliding window; "trim" is a speed
        option that keeps max_context - horizon history bars so the window never slides (generate.py).
        """
        if model.config.s1_bits != tokenizer.config.s1_bits or model.config.s2_bits != tokenizer.config.s2_bits:
            raise KronosInputError(
                f"tokenizer ids ({tokenizer.config.s1_bits}+{tokenizer.config.s2_bits} bits) do not fit the model "
                f"vocabularies ({model.config.s1_bits}+{model.config.s2_bits} bits)"
            )
        self.device = resolve_device(device)
        # eval() matters: the original leaves this to the caller, and train mode breaks SDPA on MPS.
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer.to(self.device).eval()
        self.max_context = max_context
        self.clip = clip
        self.context_policy: ContextPolicy = context_policy
        self.model_info = model_info
        self.tokenizer_info = tokenizer_info
        self.num_threads = num_threads
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.batch_size = batch_size
        if workers is None:
            workers = usable_cpus() if self.device.type == "cpu" else 1
        self.workers = workers
        GenerationConfig(horizon=1, max_context=max_context, context_policy=context_policy)  # validate early

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike[str],
        tokenizer: str | os.PathLike[str] | None = None,
        *,
        model_revision: str | None = None,
        tokenizer_revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> "KronosPredictor":
        """Load both networks from folders, hub repo ids or a shipped checkpoint's name (config.NAMED_CHECKPOINTS,
        e.g. "demo"). ``tokenizer`` defaults to the one an official or shipped model comes with."""
        from .config import NAMED_CHECKPOINTS, OFFICIAL

        named = NAMED_CHECKPOINTS.get(str(model)) if not Path(model).is_dir() else None
        if named is not None:
            model, tokenizer = named.model, tokenizer or named.tokenizer
        if tokenizer is None:
            official = OFFICIAL.get(str(model))
            if official is None or official.tokenizer_repo is None:
                known = ", ".join(NAMED_CHECKPOINTS)
                raise KronosInputError(
                    f"no tokenizer given, and {model} is neither an official model with a known "
                    f"pair nor a shipped checkpoint ({known})"
                )
            tokenizer = official.tokenizer_repo
        opts = {"cache_dir": cache_dir, "local_files_only": local_files_only}
        m = load_model(model, revision=model_revision, **opts)
        t = load_tokenizer(tokenizer, revision=tokenizer_revision, **opts)
        return cls(m.module, t.module, model_info=m.info, tokenizer_info=t.info, **kwargs)  # type: ignore[arg-type]

    def history_window(self, horizon: int) -> int:
        """History bars the model sees for a forecast of ``horizon`` bars: max_context ("exact": tokens older
        than that never enter the window) or max_context - horizon ("trim")."""
        return self.max_context if self.context_policy == "exact" else max(self.max_context - horizon, 1)

    def prepare(
        self,
        frame: pl.DataFrame,
        future_ts: Sequence[datetime] | np.ndarray | pl.Series,
        *,
        time_column: str = "ts",
        name: str = "series",
    ) -> PreparedSeries:
        """Validate and normalise the last ``history_window(horizon)`` bars of ``frame`` (and nothing older)."""
        return prepare_series(
            frame,
            future_ts,
            time_column=time_column,
            clip=self.clip,
            name=name,
            max_history=self.history_window(len(future_ts)),
        )

    def generation_config(self, horizon: int, n_paths: int, sampling: SamplingParams, mode: Mode) -> GenerationConfig:
        return GenerationConfig(
            horizon=horizon,
            n_paths=n_paths,
            sampling=sampling,
            max_context=self.max_context,
            context_policy=self.context_policy,
            mode=mode,
        )

    def sample(
        self,
        series: PreparedSeries,
        *,
        n_paths: int,
        seed: int,
        sampling: SamplingParams = SamplingParams(),
        mode: Mode = "fast",
        keep_tokens: bool = False,
    ) -> PathForecast:
        """All n_paths de-normalised paths of one prepared series; the seed alone fixes them (per device type).

        One series on its own: bitwise what ``sample_many`` gives for this series alone (a batch of one)."""
        cfg = self.generation_config(series.horizon, n_paths, sampling, mode)
        dev = self.device
        x = torch.from_numpy(series.x).to(dev).unsqueeze(0)
        x_stamp = torch.from_numpy(series.x_stamp).to(dev)
        y_stamp = torch.from_numpy(series.y_stamp).to(dev)
        generator = torch.Generator(device=dev).manual_seed(int(seed))
        with torch.inference_mode(), torch_threads(self.num_threads):
            s1, s2 = self.tokenizer.encode(x)  # the whole history, as the original; truncation is on tokens
            out = generate(self.model, self.tokenizer, s1[0], s2[0], x_stamp, y_stamp, cfg, generator)
        paths = series.denormalise(out.bars.float().cpu().numpy())
        return PathForecast(paths, series.future_ts, series.history_close, int(seed), out if keep_tokens else None)

    def sample_many(
        self,
        series: Sequence[PreparedSeries],
        seeds: Sequence[int],
        *,
        n_paths: int,
        sampling: SamplingParams = SamplingParams(),
        mode: Mode = "fast",
        keep_tokens: bool = False,
    ) -> list[PathForecast]:
        """``sample`` for many series, batched (batching.py): series i is fixed by series[i] and
        seeds[i] alone. The reference mode runs them one at a time."""
        if len(seeds) != len(series):
            raise KronosInputError(f"{len(seeds)} seeds for {len(series)} series")
        cfgs = [self.generation_config(s.horizon, n_paths, sampling, mode) for s in series]  # validate all first
        if mode != "fast":
            return [
                self.sample(s, n_paths=n_paths, seed=int(seed), sampling=sampling, mode=mode, keep_tokens=keep_tokens)
                for s, seed in zip(series, seeds)
            ]
        done = generate_many(
            self.model,
            self.tokenizer,
            series,
            seeds,
            cfgs,
            device=self.device,
            batch_size=self.batch_size,
            workers=self.workers,
            num_threads=self.num_threads,
        )
        out = []
        for i, s in enumerate(series):
            g = done[i]
            paths = s.denormalise(g.bars.float().cpu().numpy())
            out.append(PathForecast(paths, s.future_ts, s.history_close, int(seeds[i]), g if keep_tokens else None))
        return out

    def predict_paths(
        self,
        frames: Sequence[pl.DataFrame],
        future_ts: Sequence[Sequence[datetime] | np.ndarray | pl.Series],
        *,
        n_paths: int = 30,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        seeds: int | Sequence[int] = 0,
        mode: Mode = "fast",
        time_column: str = "ts",
        keep_tokens: bool = False,
    ) -> list[PathForecast]:
        """Forecast several series (any history lengths). Each gets its own generator: an int seed seeds every
        series alike; a sequence gives one seed per series."""
        if len(frames) != len(future_ts):
            raise KronosInputError(f"{len(frames)} frames but {len(future_ts)} future timestamp lists")
        seed_list = [seeds] * len(frames) if isinstance(seeds, int) else list(seeds)
        if len(seed_list) != len(frames):
            raise KronosInputError(f"{len(seed_list)} seeds for {len(frames)} series")
        sampling = SamplingParams(temperature, top_k, top_p)
        prepared = [
            self.prepare(f, t, time_column=time_column, name=f"series {i}")
            for i, (f, t) in enumerate(zip(frames, future_ts))
        ]
        return self.sample_many(
            prepared, seed_list, n_paths=n_paths, sampling=sampling, mode=mode, keep_tokens=keep_tokens
        )

    def forecast(
        self, frame: pl.DataFrame, future_ts: Sequence[datetime] | np.ndarray | pl.Series, **kwargs: Any
    ) -> PathForecast:
        """One series; keyword arguments as for ``predict_paths`` (seed as ``seeds``)."""
        return self.predict_paths([frame], [future_ts], **kwargs)[0]

    def provenance(self) -> dict[str, Any]:
        def part(prefix: str, info: CheckpointInfo | None, module: torch.nn.Module) -> dict[str, Any]:
            params = sum(p.numel() for p in module.parameters())
            if info is None:
                return {f"{prefix}_parameters": params}
            return {
                f"{prefix}_repo": info.repo_id,
                f"{prefix}_revision": info.revision,
                f"{prefix}_path": info.path,
                f"{prefix}_sha256": info.sha256.get("model.safetensors"),
                f"{prefix}_config_sha256": info.sha256.get("config.json"),
                f"{prefix}_official": info.official,
                f"{prefix}_parameters": info.parameter_count,
            }

        return {
            **part("model", self.model_info, self.model),
            **part("tokenizer", self.tokenizer_info, self.tokenizer),
            "max_context": self.max_context,
            "context_policy": self.context_policy,
            "clip": self.clip,
            "device": self.device.type,
            "num_threads": self.num_threads,
            "batch_size": self.batch_size,
        }
