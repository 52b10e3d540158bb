"""One fine-tuning run end to end: candles -> base networks -> training -> checkpoint folder -> held-out scores.

Used by the ``kronos-train`` CLI, the Dagster asset (defs/training.py) and benchmarks/bench_training.py. The output
is an ordinary checkpoint folder, ``<output>/{model,tokenizer}/{config.json,model.safetensors}``, that a models.yaml
entry with ``local_dir`` selects, plus ``training.json`` (settings, loss curve, held-out scores) and MODEL_CARD.md.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import resource
import shutil
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import polars as pl
import torch

from kronos_assets.base import environment
from kronos_assets.kronos.hub import load_checkpoint, save_checkpoint
from kronos_assets.kronos.model import Kronos
from kronos_assets.kronos.runtime import resolve_device
from kronos_assets.kronos.tokenizer import KronosTokenizer
from kronos_assets.training.card import write_model_card
from kronos_assets.training.config import RunSettings
from kronos_assets.training.data import (
    TrainingDataError,
    WindowSet,
    cut,
    frames_from_csv,
    frames_from_synthetic,
    frames_from_warehouse,
    resolve_data_file,
    series_from_frame,
)
from kronos_assets.training.evaluate import HeldOut, baselines, evaluate_forecasters, kronos_forecaster
from kronos_assets.training.outcome import RunOutcome
from kronos_assets.training.trainer import (
    ProgressCallback,
    Trainer,
    TrainSpec,
    build_scratch,
)

log = logging.getLogger("kronos_assets.training")


def default_home() -> Path:
    return environment.home()


def default_output(run: RunSettings, home: Path | None = None) -> Path:
    return run.output or (home or default_home()) / "checkpoints" / run.name


def default_state_dir(run: RunSettings, home: Path | None = None) -> Path:
    return (home or default_home()) / "training" / run.name / "state"


# -- inputs --------------------------------------------------------------------------------------------------
def load_frames(run: RunSettings, *, source: str | None = None, warehouse: Any = None) -> dict[str, pl.DataFrame]:
    """Candles of the run's symbols for [train.start, heldout.end) from its source (or ``source``)."""
    d = run.data
    src = source or d.source
    if src == "synthetic":
        return frames_from_synthetic(d.symbols, d.timeframe, d.train_start, d.heldout_end, seed=d.synthetic_seed)
    if src == "warehouse":
        if warehouse is None:  # the caller opens the profile's (kronos-train, the training asset)
            raise ValueError(f"run {run.name}: source 'warehouse' needs the warehouse to read candles from")
        return frames_from_warehouse(warehouse, d.symbols, d.timeframe, d.train_start, d.heldout_end)
    if src == "csv":
        files = {s: resolve_data_file(p, environment.REPO_ROOT) for s, p in d.files.items()}
        return frames_from_csv(files, d.train_start, d.heldout_end)
    raise ValueError(f"unknown data source {src!r}")


def load_base(run: RunSettings) -> tuple[Kronos, KronosTokenizer, str]:
    """The networks training starts from (CPU): fresh seeded ones, a models.yaml checkpoint or local folders."""
    b = run.base
    if b.kind == "scratch":
        assert run.scratch_tokenizer is not None and run.scratch_model is not None
        model, tok = build_scratch(run.scratch_tokenizer, run.scratch_model, run.seed)
        return model, tok, "random-weights"
    if b.kind == "model":
        m = b.model
        if m is None:
            raise ValueError(
                f"run {run.name}: base {b.value!r} is not resolved against models.yaml; load the "
                "training config with the profile's models (load_training_config(path, settings.models))"
            )
        cache = environment.hf_cache()
        model = load_checkpoint(m.model_source, kind="model", revision=m.revision, cache_dir=cache).module
        tok = load_checkpoint(
            m.tokenizer_source, kind="tokenizer", revision=m.tokenizer_revision, cache_dir=cache
        ).module
        return model, tok, f"base:{m.key}"  # type: ignore[return-value]
    model = load_checkpoint(Path(b.value) / "model", kind="model").module
    tok = load_checkpoint(Path(b.value) / "tokenizer", kind="tokenizer").module
    return model, tok, f"base:{Path(b.value).name}"  # type: ignore[return-value]


def train_spec(run: RunSettings, data_digest: str = "") -> TrainSpec:
    """The loop's settings; the fingerprint (which a resume state must match) covers the run's settings and the
    candles it trains on."""
    return TrainSpec(
        run.tokenizer,
        run.predictor,
        seed=run.seed,
        weight_decay=run.weight_decay,
        inv_temperature=run.inv_temperature,
        log_every=run.log_every,
        save_every=run.save_every,
        val_windows=run.val_windows,
        fingerprint=f"{run.fingerprint()}-{data_digest}",
    )


def data_digest(series: list) -> str:
    h = hashlib.sha256()
    for s in series:
        h.update(s.name.encode())
        h.update(s.ts.astype("datetime64[us]").astype("int64").tobytes())
        h.update(s.features.tobytes())
    return h.hexdigest()[:16]


def with_overrides(run: RunSettings, **kw: Any) -> RunSettings:
    """A copy of the run with stage steps/device/threads/output changed (None leaves a field as it is)."""
    out = run
    if kw.get("tokenizer_steps") is not None:
        out = replace(out, tokenizer=replace(out.tokenizer, steps=kw["tokenizer_steps"]))
    if kw.get("predictor_steps") is not None:
        out = replace(out, predictor=replace(out.predictor, steps=kw["predictor_steps"]))
    for k in ("device", "threads", "output"):
        if kw.get(k) is not None:
            out = replace(out, **{k: kw[k]})
    return out


# -- the run -------------------------------------------------------------------------------------------------
def train_run(
    run: RunSettings,
    *,
    frames: Mapping[str, pl.DataFrame] | None = None,
    source: str | None = None,
    warehouse: Any = None,
    output: str | os.PathLike[str] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    resume: bool | str = False,
    evaluate: bool = True,
    callback: ProgressCallback | None = None,
    max_steps: int | None = None,
    write_card: bool = True,
    command: str | None = None,
    keep_state: bool = False,
) -> RunOutcome:
    """Train (or resume) a run, write its checkpoint folder and score it on the held-out range.

    ``resume``: False starts afresh; True continues the saved state and fails (ResumeError) if it belongs to other
    settings or other candles; "auto" continues a matching state and otherwise starts afresh. The state is removed
    once the run has finished and its checkpoint is written (unless ``keep_state``), so a later run trains anew.
    """
    threads_before = torch.get_num_threads()
    if run.threads:
        torch.set_num_threads(run.threads)
    try:
        return _train_run(
            run,
            frames,
            source,
            warehouse,
            output,
            state_dir,
            resume,
            evaluate,
            callback,
            max_steps,
            write_card,
            command,
            keep_state,
        )
    finally:
        torch.set_num_threads(threads_before)


def _train_run(
    run: RunSettings,
    frames: Mapping[str, pl.DataFrame] | None,
    source: str | None,
    warehouse: Any,
    output: str | os.PathLike[str] | None,
    state_dir: str | os.PathLike[str] | None,
    resume: bool | str,
    evaluate: bool,
    callback: ProgressCallback | None,
    max_steps: int | None,
    write_card: bool,
    command: str | None,
    keep_state: bool,
) -> RunOutcome:
    seconds: dict[str, float] = {}
    device = resolve_device(run.device)
    d = run.data
    t0 = time.perf_counter()
    frames = dict(frames) if frames is not None else load_frames(run, source=source, warehouse=warehouse)
    missing = [s for s in d.symbols if s not in frames or frames[s].height == 0]
    if missing:
        raise TrainingDataError(
            f"run {run.name}: no {d.timeframe} candles for {missing} in "
            f"[{d.train_start.date()}, {d.heldout_end.date()}) (source {source or d.source})"
        )
    series = [series_from_frame(s, cut(frames[s], d.train_start, d.heldout_end), d.timeframe) for s in d.symbols]
    train = WindowSet(series, d.lookback, d.horizon, start=d.train_start, end=d.train_end)
    try:
        val: WindowSet | None = WindowSet(series, d.lookback, d.horizon, start=d.heldout_start, end=d.heldout_end)
    except TrainingDataError as exc:
        log.warning("no validation windows in the held-out range: %s", exc)
        val = None
    seconds["data"] = round(time.perf_counter() - t0, 2)
    data_info = {
        "source": source or d.source,
        "symbols": list(d.symbols),
        "timeframe": d.timeframe,
        "train": [d.train_start.isoformat(), d.train_end.isoformat()],
        "heldout": [d.heldout_start.isoformat(), d.heldout_end.isoformat()],
        "lookback": d.lookback,
        "horizon": d.horizon,
        "train_windows": train.counts(),
        "heldout_windows": val.counts() if val else {},
        "bars": {s.name: len(s) for s in series},
    }

    model, tok, base_label = load_base(run)
    base_copy = (copy.deepcopy(model).eval(), copy.deepcopy(tok).eval()) if evaluate else None
    state = Path(state_dir) if state_dir else default_state_dir(run)
    digest = data_digest(series)
    data_info["digest"] = digest
    trainer = Trainer(
        model, tok, train, train_spec(run, digest), val=val, device=device, state_dir=state, callback=callback
    )
    if resume == "auto" and trainer.has_state() and not trainer.state_matches():
        log.warning("the saved state in %s belongs to other settings or candles: training afresh", state)
        resume = False
    log.info(
        "run %s: %s windows for training (%s), base %s, device %s, %d threads",
        run.name,
        len(train),
        data_info["train_windows"],
        base_label,
        device,
        torch.get_num_threads(),
    )
    t1, c1 = time.perf_counter(), time.process_time()
    result = trainer.fit(resume=bool(resume), max_steps=max_steps)
    seconds["train_this_call"] = round(time.perf_counter() - t1, 2)
    seconds["train_cpu_this_call"] = round(time.process_time() - c1, 2)  # on a shared machine, wall > CPU
    seconds["train_total"] = round(result.elapsed_s, 2)
    outcome = RunOutcome(
        run,
        result,
        None,
        data_info,
        base_label,
        seconds=seconds,
        device=str(device),
        threads=torch.get_num_threads(),
        command=command,
    )
    if not result.finished:
        outcome.peak_rss_mb = _peak_rss_mb()
        return outcome

    out = Path(output) if output else default_output(run)
    outcome.output = out
    write_checkpoint(result.model, result.tokenizer, out)
    outcome.infos = {p: load_checkpoint(out / p, kind=p).info for p in ("model", "tokenizer")}  # type: ignore[arg-type]
    if evaluate:
        t2 = time.perf_counter()
        outcome.heldout = evaluate_run(run, frames, out, base_copy, base_label, device=str(device))
        seconds["evaluate"] = round(time.perf_counter() - t2, 2)
    outcome.peak_rss_mb = _peak_rss_mb()
    (out / "training.json").write_text(json.dumps(outcome.summary(), indent=1, default=str) + "\n")
    if write_card:
        write_model_card(outcome, out / "MODEL_CARD.md")
    if not keep_state and state.exists():
        shutil.rmtree(state)
    return outcome


def write_checkpoint(model: Kronos, tokenizer: KronosTokenizer, out: Path) -> None:
    """Write ``out/{model,tokenizer}`` whole: into a sibling temp folder first, then swapped in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".writing")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_checkpoint(model.to("cpu"), tmp / "model")
    save_checkpoint(tokenizer.to("cpu"), tmp / "tokenizer")
    for f in tmp.rglob("*"):  # safetensors writes 0600; a checkpoint folder is meant to be shared
        if f.is_file():
            f.chmod(0o644)
    for part in ("model", "tokenizer"):
        if (out / part).exists():
            shutil.rmtree(out / part)
        out.mkdir(parents=True, exist_ok=True)
        (tmp / part).rename(out / part)
    shutil.rmtree(tmp)


def evaluate_run(
    run: RunSettings,
    frames: Mapping[str, pl.DataFrame],
    checkpoint: Path,
    base: tuple[Kronos, KronosTokenizer] | None,
    base_label: str,
    device: str = "cpu",
) -> HeldOut:
    """Held-out scores of the trained checkpoint (loaded back from its folders, the normal path), the base networks
    and the baselines, on the same origins."""
    from kronos_assets.forecasting.kronos_forecaster import KronosForecaster

    ev, d = run.evaluation, run.data
    forecasters: dict[str, Any] = {
        run.name: KronosForecaster(
            checkpoint / "model", checkpoint / "tokenizer", device=device, max_context=ev.max_context, name=run.name
        ),
    }
    if base is not None:
        forecasters[base_label] = kronos_forecaster(base[0], base[1], base_label, ev.max_context, device)
    forecasters.update(baselines())
    return evaluate_forecasters(
        forecasters,
        frames,
        d.timeframe,
        d.heldout_start,
        d.heldout_end,
        history_bars=ev.history_bars,
        origins_per_symbol=ev.origins_per_symbol,
        sampling=ev.sampling,
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
