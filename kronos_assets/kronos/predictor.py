"""KronosPredictor: candles in, sample paths out (spec §8), plus the path summaries of forecasting/summary.py.

Unlike the original predictor it returns every sample path (not only their mean), takes one seed per series
(a series' paths never depend on the other series in the call), and accepts series of different lengths.

The model only ever sees, and is normalised on, the history window it forecasts from: ``prepare`` keeps the last
``history_window(horizon)`` bars (max_context with the "exact" policy, max_context - horizon with "trim") before
validating and normalising, so a long frame gives exactly the forecast of its last window (the original normalises
over every row it is given, so a 30,000-bar file shifted the statistics far from the bars the model sees).

Many series are generated together (``sample_many``): series with the same history length and horizon form
groups of at most ``batch_size`` (never padded), each group is one model batch (generate.generate_batch). A lone
group runs in the calling thread with the predictor's threads, so a lone request costs what ``sample`` costs;
several groups run on ``workers`` threads of one intra-op thread each. Each series draws from its own seeded
generator, so it draws the same tokens alone or in any batch; its paths then agree within float rounding (the
GEMM shapes, hence the rounding, depend on the group size), bitwise when the group size is the same
(kronos_assets_tests/kronos/test_batched.py).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import polars as pl
import torch

from ..forecasting.summary import PathSummary, summarise
from .errors import KronosInputError, MissingColumnsError, NonFiniteInputError, TimestampOrderError
from .generate import (DEFAULT_CONTEXT_POLICY, ContextPolicy, GenerationConfig, Generated, Mode, generate,
                       generate_batch)  # fmt: skip
from .hub import CheckpointInfo, load_model, load_tokenizer
from .model import Kronos
from .sampling import SamplingParams
from .tokenizer import KronosTokenizer

PRICE_COLUMNS = ("open", "high", "low", "close")
FEATURES = ("open", "high", "low", "close", "volume", "amount")
CLOSE, VOLUME = FEATURES.index("close"), FEATURES.index("volume")
NORM_EPS = 1e-5
DEFAULT_BATCH_SIZE = 8  # most series per model batch; see KronosPredictor


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


def time_features(ts: np.ndarray) -> np.ndarray:
    """[minute, hour, weekday (Monday=0), day, month] per timestamp (wall clock), int64 (n, 5)."""
    ts = np.asarray(ts).astype("datetime64[us]")
    days = ts.astype("datetime64[D]")
    months = ts.astype("datetime64[M]")
    return np.stack(
        [
            ts.astype("datetime64[m]").astype(np.int64) % 60,
            ts.astype("datetime64[h]").astype(np.int64) % 24,
            (days.astype(np.int64) + 3) % 7,  # 1970-01-01 was a Thursday
            (days - months.astype("datetime64[D]")).astype(np.int64) + 1,
            months.astype(np.int64) % 12 + 1,
        ],
        axis=1,
    )


@dataclass(frozen=True)
class PreparedSeries:
    """One validated, normalised history and the stamps of its horizon."""

    x: np.ndarray  # (L, 6) float32, z-scored over the whole history and clipped
    mean: np.ndarray  # (6,) float32
    std: np.ndarray  # (6,) float32, population std
    x_stamp: np.ndarray  # (L, 5) int64
    y_stamp: np.ndarray  # (H, 5) int64
    history_close: np.ndarray  # (L,) float64, raw closes
    future_ts: np.ndarray  # (H,) datetime64[us]
    name: str = "series"

    @property
    def horizon(self) -> int:
        return len(self.future_ts)

    def denormalise(self, bars: np.ndarray) -> np.ndarray:
        return (bars.astype(np.float32) * (self.std + np.float32(NORM_EPS)) + self.mean).astype(np.float64)


def _wall_clock(s: pl.Series, what: str) -> np.ndarray:
    if s.dtype == pl.Date:
        s = s.cast(pl.Datetime("us"))
    if not isinstance(s.dtype, pl.Datetime):
        raise KronosInputError(f"{what}: timestamps must be datetimes, got dtype {s.dtype}")
    if s.null_count():
        raise TimestampOrderError(f"{what}: {s.null_count()} missing timestamps")
    if s.dtype.time_zone is not None:  # time features use local wall-clock fields, as pandas .dt does
        s = s.dt.replace_time_zone(None)
    return s.dt.cast_time_unit("us").to_numpy()


def _check_increasing(ts: np.ndarray, what: str) -> None:
    d = np.diff(ts).astype(np.int64)
    if (d == 0).any():
        raise TimestampOrderError(f"{what}: duplicate timestamp {ts[1:][d == 0][0]}")
    if (d < 0).any():
        i = int(np.argmax(d < 0))
        raise TimestampOrderError(f"{what}: timestamps not sorted ascending ({ts[i]} before {ts[i + 1]})")


def _column(frame: pl.DataFrame, col: str) -> np.ndarray | None:
    """float64 values, or None when the column is absent or entirely null."""
    if col not in frame.columns or frame[col].null_count() == frame.height:
        return None
    return frame[col].cast(pl.Float64).to_numpy()  # nulls become NaN


def prepare_series(frame: pl.DataFrame, future_ts: Sequence[datetime] | np.ndarray | pl.Series, *,
                   time_column: str = "ts", clip: float = 5.0, name: str = "series",
                   max_history: int | None = None) -> PreparedSeries:  # fmt: skip
    """Validate candles and build the model input (spec §8 steps 1-5) from the last ``max_history`` bars (all
    when None): those bars alone are validated and give the normalisation statistics.

    Missing or all-null volume -> volume = amount = 0; missing or null amount -> volume x mean(OHLC) for those
    rows (the original fills only a missing column; a null amount is how our candle frames say "not given").
    """
    if not isinstance(frame, pl.DataFrame):
        raise KronosInputError(f"{name}: candles must be a polars DataFrame, got {type(frame).__name__}")
    missing = [c for c in (time_column, *PRICE_COLUMNS) if c not in frame.columns]
    if missing:
        raise MissingColumnsError(f"{name}: missing columns {missing} (have {frame.columns})")
    if frame.height == 0:
        raise KronosInputError(f"{name}: the history is empty")
    if max_history is not None:
        if max_history < 1:
            raise KronosInputError(f"{name}: max_history must be >= 1, got {max_history}")
        frame = frame.tail(max_history)
    ts = _wall_clock(frame[time_column], f"{name} history")
    _check_increasing(ts, f"{name} history")
    cols: dict[str, np.ndarray] = {c: frame[c].cast(pl.Float64).to_numpy() for c in PRICE_COLUMNS}
    volume = _column(frame, "volume")
    amount = _column(frame, "amount")
    if volume is None:
        cols["volume"] = cols["amount"] = np.zeros(frame.height)
    else:
        cols["volume"] = volume
        derived = volume * np.mean([cols[c] for c in PRICE_COLUMNS], axis=0)
        cols["amount"] = derived if amount is None else np.where(np.isnan(amount), derived, amount)
    for c in FEATURES:
        bad = ~np.isfinite(cols[c])
        if bad.any():
            raise NonFiniteInputError(
                f"{name}: column {c!r} has {int(bad.sum())} missing or non-finite values (first at {ts[bad][0]})"
            )
    # Column-major like pandas' .values of the original: numpy then sums each column pairwise, which gives
    # float32 statistics that differ (~1e-7) from a row-major reduction.
    x = np.asfortranarray(np.stack([cols[c] for c in FEATURES], axis=1).astype(np.float32))
    mean = np.mean(x, axis=0)
    std = np.std(x, axis=0)
    xn = np.ascontiguousarray(np.clip((x - mean) / (std + np.float32(NORM_EPS)), -clip, clip), dtype=np.float32)
    if len(future_ts) == 0:
        raise KronosInputError(f"{name}: no future timestamps (the horizon must be >= 1)")
    if not isinstance(future_ts, pl.Series):
        future_ts = pl.Series("future_ts", future_ts if isinstance(future_ts, np.ndarray) else list(future_ts))
    fut = _wall_clock(future_ts, f"{name} future_ts")
    _check_increasing(fut, f"{name} future_ts")
    if fut[0] <= ts[-1]:
        raise TimestampOrderError(f"{name}: first future timestamp {fut[0]} is not after the last bar {ts[-1]}")
    return PreparedSeries(xn, mean, std, time_features(ts), time_features(fut), cols["close"].copy(), fut, name)


@dataclass
class PathForecast:
    """All sample paths of one series, de-normalised, and their summaries."""

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

    @cached_property
    def summary(self) -> PathSummary:
        return summarise(self.paths[..., CLOSE], self.paths[..., VOLUME], self.history_close)

    def to_dict(self, include_paths: bool = True) -> dict[str, Any]:
        s = self.summary
        out: dict[str, Any] = {
            "timestamps": [str(t) + "Z" for t in self.timestamps.astype("datetime64[s]")],
            "fields": list(FEATURES),
            "seed": self.seed,
            "n_paths": int(self.paths.shape[0]),
            "last_close": float(self.history_close[-1]),
            "mean_path": {f: self.mean_path[:, i].tolist() for i, f in enumerate(FEATURES)},
            "median_path": {f: self.median_path[:, i].tolist() for i, f in enumerate(FEATURES)},
            "summary": {
                "quantile_levels": list(s.levels),
                "close_quantiles": {str(lv): s.quantiles[j].tolist() for j, lv in enumerate(s.levels)},
                "mean_close": s.mean_close.tolist(),
                "median_close": s.median_close.tolist(),
                "mean_volume": s.mean_volume.tolist(),
                "median_volume": s.median_volume.tolist(),
                "p_up": s.p_up,
                "p_vol_amp": s.p_vol_amp,
                "recent_vol": s.recent_vol,
            },
        }
        if include_paths:
            out["paths"] = self.paths.tolist()
        return out


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class KronosPredictor:
    def __init__(self, model: Kronos, tokenizer: KronosTokenizer, *, device: str | torch.device | None = None,
                 max_context: int = 512, clip: float = 5.0,
                 context_policy: ContextPolicy = DEFAULT_CONTEXT_POLICY,
                 model_info: CheckpointInfo | None = None, tokenizer_info: CheckpointInfo | None = None,
                 num_threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 workers: int | None = None) -> None:  # fmt: skip
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
            workers = _usable_cpus() if self.device.type == "cpu" else 1
        self.workers = workers
        GenerationConfig(horizon=1, max_context=max_context, context_policy=context_policy)  # validate early

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike[str], tokenizer: str | os.PathLike[str] | None = None, *,
                        model_revision: str | None = None, tokenizer_revision: str | None = None,
                        cache_dir: str | os.PathLike[str] | None = None, local_files_only: bool = False,
                        **kwargs: Any) -> "KronosPredictor":  # fmt: skip
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
                raise KronosInputError(f"no tokenizer given, and {model} is neither an official model with a known "
                                       f"pair nor a shipped checkpoint ({known})")  # fmt: skip
            tokenizer = official.tokenizer_repo
        opts = {"cache_dir": cache_dir, "local_files_only": local_files_only}
        m = load_model(model, revision=model_revision, **opts)
        t = load_tokenizer(tokenizer, revision=tokenizer_revision, **opts)
        return cls(m.module, t.module, model_info=m.info, tokenizer_info=t.info, **kwargs)  # type: ignore[arg-type]

    def history_window(self, horizon: int) -> int:
        """History bars the model sees for a forecast of ``horizon`` bars: max_context ("exact": tokens older
        than that never enter the window) or max_context - horizon ("trim")."""
        return self.max_context if self.context_policy == "exact" else max(self.max_context - horizon, 1)

    def prepare(self, frame: pl.DataFrame, future_ts: Sequence[datetime] | np.ndarray | pl.Series, *,
                time_column: str = "ts", name: str = "series") -> PreparedSeries:  # fmt: skip
        """Validate and normalise the last ``history_window(horizon)`` bars of ``frame`` (and nothing older)."""
        return prepare_series(frame, future_ts, time_column=time_column, clip=self.clip, name=name,
                              max_history=self.history_window(len(future_ts)))  # fmt: skip

    def generation_config(self, horizon: int, n_paths: int, sampling: SamplingParams, mode: Mode) -> GenerationConfig:
        return GenerationConfig(horizon=horizon, n_paths=n_paths, sampling=sampling, max_context=self.max_context,
                                context_policy=self.context_policy, mode=mode)  # fmt: skip

    def sample(self, series: PreparedSeries, *, n_paths: int, seed: int, sampling: SamplingParams = SamplingParams(),
               mode: Mode = "fast", keep_tokens: bool = False) -> PathForecast:  # fmt: skip
        """All n_paths de-normalised paths of one prepared series; the seed alone fixes them (per device type).

        One series on its own: bitwise what ``sample_many`` gives for this series alone (a batch of one)."""
        cfg = self.generation_config(series.horizon, n_paths, sampling, mode)
        dev = self.device
        x = torch.from_numpy(series.x).to(dev).unsqueeze(0)
        x_stamp = torch.from_numpy(series.x_stamp).to(dev)
        y_stamp = torch.from_numpy(series.y_stamp).to(dev)
        generator = torch.Generator(device=dev).manual_seed(int(seed))
        with torch.inference_mode(), _torch_threads(self.num_threads):
            s1, s2 = self.tokenizer.encode(x)  # the whole history, as the original; truncation is on tokens
            out = generate(self.model, self.tokenizer, s1[0], s2[0], x_stamp, y_stamp, cfg, generator)
        paths = series.denormalise(out.bars.float().cpu().numpy())
        return PathForecast(paths, series.future_ts, series.history_close, int(seed), out if keep_tokens else None)

    def sample_many(self, series: Sequence[PreparedSeries], seeds: Sequence[int], *, n_paths: int,
                    sampling: SamplingParams = SamplingParams(), mode: Mode = "fast",
                    keep_tokens: bool = False) -> list[PathForecast]:  # fmt: skip
        """``sample`` for many series, batched (see the module docstring): series i is fixed by series[i] and
        seeds[i] alone. The reference mode runs them one at a time."""
        if len(seeds) != len(series):
            raise KronosInputError(f"{len(seeds)} seeds for {len(series)} series")
        cfgs = [self.generation_config(s.horizon, n_paths, sampling, mode) for s in series]  # validate all first
        if mode != "fast":
            return [self.sample(s, n_paths=n_paths, seed=int(seed), sampling=sampling, mode=mode,
                                keep_tokens=keep_tokens) for s, seed in zip(series, seeds)]  # fmt: skip
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(series):
            by_shape.setdefault((len(s.x), s.horizon), []).append(i)
        b = self.batch_size
        chunks = [idx[j : j + b] for idx in by_shape.values() for j in range(0, len(idx), b)]
        dev = self.device

        def run(chunk: list[int]) -> list[tuple[int, Generated]]:
            gens = [torch.Generator(device=dev).manual_seed(int(seeds[i])) for i in chunk]
            x = torch.from_numpy(np.stack([series[i].x for i in chunk])).to(dev)
            x_stamp = torch.from_numpy(np.stack([series[i].x_stamp for i in chunk])).to(dev)
            y_stamp = torch.from_numpy(np.stack([series[i].y_stamp for i in chunk])).to(dev)
            with torch.inference_mode():  # thread-local: entered in the worker
                s1, s2 = self.tokenizer.encode(x)
                outs = generate_batch(self.model, self.tokenizer, s1, s2, x_stamp, y_stamp, cfgs[chunk[0]], gens)
            return list(zip(chunk, outs))

        workers = min(self.workers, len(chunks))
        results: dict[int, Generated] = {}
        if workers > 1:
            # One intra-op thread per worker (worker threads start with torch's global setting).
            with _torch_threads(1 if dev.type == "cpu" else self.num_threads):
                with ThreadPoolExecutor(workers, thread_name_prefix="kronos") as pool:
                    done = list(pool.map(run, chunks))
        else:  # a lone batch (the live request, the CLI): the same threads as ``sample``
            with _torch_threads(self.num_threads):
                done = [run(c) for c in chunks]
        for part in done:
            results.update(part)
        out = []
        for i, s in enumerate(series):
            g = results[i]
            paths = s.denormalise(g.bars.float().cpu().numpy())
            out.append(PathForecast(paths, s.future_ts, s.history_close, int(seeds[i]), g if keep_tokens else None))
        return out

    def predict_paths(self, frames: Sequence[pl.DataFrame],
                      future_ts: Sequence[Sequence[datetime] | np.ndarray | pl.Series], *, n_paths: int = 30,
                      temperature: float = 1.0, top_k: int = 0, top_p: float = 0.9,
                      seeds: int | Sequence[int] = 0, mode: Mode = "fast", time_column: str = "ts",
                      keep_tokens: bool = False) -> list[PathForecast]:  # fmt: skip
        """Forecast several series (any history lengths). Each gets its own generator: an int seed seeds every
        series alike; a sequence gives one seed per series."""
        if len(frames) != len(future_ts):
            raise KronosInputError(f"{len(frames)} frames but {len(future_ts)} future timestamp lists")
        seed_list = [seeds] * len(frames) if isinstance(seeds, int) else list(seeds)
        if len(seed_list) != len(frames):
            raise KronosInputError(f"{len(seed_list)} seeds for {len(frames)} series")
        sampling = SamplingParams(temperature, top_k, top_p)
        prepared = [self.prepare(f, t, time_column=time_column, name=f"series {i}")
                    for i, (f, t) in enumerate(zip(frames, future_ts))]  # fmt: skip
        return self.sample_many(prepared, seed_list, n_paths=n_paths, sampling=sampling, mode=mode,
                                keep_tokens=keep_tokens)  # fmt: skip

    def forecast(self, frame: pl.DataFrame, future_ts: Sequence[datetime] | np.ndarray | pl.Series,
                 **kwargs: Any) -> PathForecast:  # fmt: skip
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
