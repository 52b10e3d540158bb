"""configs/training.yaml: named fine-tuning runs, validated on load; every error names the file and the field.

    runs:
      <name>:
        base: scratch | <models.yaml key> | <folder holding model/ and tokenizer/>
        scratch: {tokenizer: {...TokenizerConfig}, model: {...KronosConfig}}   # sizes when base is scratch
        data: {source, symbols, timeframe, train: {start, end}, heldout: {start, end}, lookback, horizon, files}
        tokenizer: {steps, batch_size, lr, warmup, grad_clip}
        predictor: {steps, batch_size, lr, warmup, grad_clip}
        evaluation: {origins_per_symbol, history_bars, horizon, n_paths, max_context, seed, temperature, top_p, top_k}
        seed, device, threads, weight_decay, inv_temperature, log_every, save_every, val_windows, output

Ranges are [start, end) in UTC; the held-out range must start at or after the end of the training range.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import yaml

from kronos_assets.kronos.config import KronosConfig, TokenizerConfig
from kronos_assets.kronos.errors import CheckpointError
from kronos_assets.market.timeframes import TIMEFRAME_SECONDS
from kronos_assets.settings import REPO_ROOT, SYMBOL_RE, ConfigError, ModelSettings

SOURCES = ("synthetic", "warehouse", "csv")
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
RUN_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")


@dataclass(frozen=True)
class StageSettings:
    steps: int
    batch_size: int
    lr: float
    warmup: int = 0
    grad_clip: float = 1.0
    min_lr_ratio: float = 0.1  # cosine decay from lr down to lr * min_lr_ratio


@dataclass(frozen=True)
class DataSettings:
    source: str
    symbols: tuple[str, ...]
    timeframe: str
    train_start: datetime
    train_end: datetime
    heldout_start: datetime
    heldout_end: datetime
    lookback: int
    horizon: int
    files: dict[str, str] = field(default_factory=dict)  # source csv: symbol -> path
    synthetic_seed: int = 7


@dataclass(frozen=True)
class EvalSettings:
    origins_per_symbol: int = 40
    history_bars: int = 256
    horizon: int = 24
    n_paths: int = 30
    max_context: int = 512
    seed: int = 0
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 0


@dataclass(frozen=True)
class BaseSpec:
    kind: str  # "scratch" | "model" (a models.yaml key) | "folder"
    value: str  # "scratch", the key, or the folder
    model: ModelSettings | None = None  # for kind "model"

    def label(self) -> str:
        return {"scratch": "random weights (scratch)", "model": f"models.yaml:{self.value}"}.get(self.kind, self.value)


@dataclass(frozen=True)
class RunSettings:
    name: str
    base: BaseSpec
    data: DataSettings
    tokenizer: StageSettings
    predictor: StageSettings
    evaluation: EvalSettings = EvalSettings()
    scratch_tokenizer: TokenizerConfig | None = None
    scratch_model: KronosConfig | None = None
    description: str = ""
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    weight_decay: float = 0.1
    inv_temperature: float = 100.0
    log_every: int = 25
    save_every: int = 200
    val_windows: int = 64
    output: Path | None = None  # CLI output folder; the Dagster asset writes <KRONOS_HOME>/checkpoints/<name>
    source_file: Path | None = None

    def fingerprint(self) -> str:
        """Hash of everything that decides the trained weights (not evaluation, logging or output paths)."""
        d = {
            "base": [self.base.kind, self.base.value],
            "data": {k: (str(v) if isinstance(v, datetime) else v) for k, v in asdict(self.data).items()},
            "tokenizer": asdict(self.tokenizer),
            "predictor": asdict(self.predictor),
            "scratch": [asdict(self.scratch_tokenizer) if self.scratch_tokenizer else None,
                        asdict(self.scratch_model) if self.scratch_model else None],
            "seed": self.seed, "weight_decay": self.weight_decay, "inv_temperature": self.inv_temperature,
        }  # fmt: skip
        d["data"].pop("files", None)  # where the CSVs lie does not change them
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- reading -------------------------------------------------------------------------------------------------
class _Fields:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {problem}")

    def mapping(self, value: Any, where: str, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a mapping, got {type(value).__name__}")
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise self.fail(f"{where}.{unknown[0]}", f"unknown field; known: {', '.join(sorted(allowed))}")
        return value

    def req(self, m: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in m:
            raise self.fail(f"{where}.{key}", "missing")
        return m[key]

    def int_(self, m: Mapping[str, Any], key: str, where: str, default: Any = ..., minimum: int = 1) -> int:
        v = self.req(m, key, where) if default is ... else m.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(f"{where}.{key}", f"must be an integer >= {minimum}, got {v!r}")
        return v

    def float_(self, m: Mapping[str, Any], key: str, where: str, default: Any = ..., lo: float = 0.0,
               lo_open: bool = True, hi: float | None = None) -> float:  # fmt: skip
        v = self.req(m, key, where) if default is ... else m.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(f"{where}.{key}", f"must be a number, got {v!r}")
        v = float(v)
        if (v <= lo if lo_open else v < lo) or (hi is not None and v > hi):
            bound = f"> {lo}" if lo_open else f">= {lo}"
            raise self.fail(f"{where}.{key}", f"must be {bound}{'' if hi is None else f' and <= {hi}'}, got {v}")
        return v

    def when(self, m: Mapping[str, Any], key: str, where: str) -> datetime:
        v = self.req(m, key, where)
        if isinstance(v, datetime):
            return v if v.tzinfo else v.replace(tzinfo=timezone.utc)
        if isinstance(v, date):
            return datetime(v.year, v.month, v.day, tzinfo=timezone.utc)
        if isinstance(v, str):
            try:
                d = datetime.fromisoformat(v)
            except ValueError:
                raise self.fail(f"{where}.{key}", f"not a date or datetime (YYYY-MM-DD[THH:MM]): {v!r}") from None
            return d if d.tzinfo else d.replace(tzinfo=timezone.utc)
        raise self.fail(f"{where}.{key}", f"must be a date, got {type(v).__name__}")


_STAGE_KEYS = {"steps", "batch_size", "lr", "warmup", "grad_clip", "min_lr_ratio"}
_RUN_KEYS = {"description", "base", "scratch", "data", "tokenizer", "predictor", "evaluation", "seed", "device",
             "threads", "weight_decay", "inv_temperature", "log_every", "save_every", "val_windows", "output"}
_DATA_KEYS = {"source", "symbols", "timeframe", "train", "heldout", "lookback", "horizon", "files", "synthetic_seed"}
_EVAL_KEYS = {f.name for f in fields(EvalSettings)}


def _stage(r: _Fields, m: Any, where: str) -> StageSettings:
    m = r.mapping(m, where, _STAGE_KEYS)
    steps = r.int_(m, "steps", where, minimum=0)
    return StageSettings(
        steps=steps,
        batch_size=r.int_(m, "batch_size", where),
        lr=r.float_(m, "lr", where, hi=1.0),
        warmup=r.int_(m, "warmup", where, default=0, minimum=0),
        grad_clip=r.float_(m, "grad_clip", where, default=1.0),
        min_lr_ratio=r.float_(m, "min_lr_ratio", where, default=0.1, lo=0.0, lo_open=False, hi=1.0),
    )


def _network(r: _Fields, cls: type, m: Any, where: str, extra: dict[str, Any] | None = None) -> Any:
    m = r.mapping(m, where, {f.name for f in fields(cls)})
    try:
        return cls(**{**(extra or {}), **m})
    except (CheckpointError, TypeError) as exc:
        raise r.fail(where, str(exc)) from None


def _data(r: _Fields, m: Any, where: str) -> DataSettings:
    m = r.mapping(m, where, _DATA_KEYS)
    source = m.get("source", "warehouse")
    if source not in SOURCES:
        raise r.fail(f"{where}.source", f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    syms = r.req(m, "symbols", where)
    if not isinstance(syms, list) or not syms:
        raise r.fail(f"{where}.symbols", "must be a non-empty list of symbols like BTC/USDT")
    for i, s in enumerate(syms):
        if not isinstance(s, str) or not SYMBOL_RE.match(s):
            raise r.fail(f"{where}.symbols[{i}]", f"bad symbol {s!r}: use BASE/QUOTE in capitals, e.g. BTC/USDT")
    if len(set(syms)) != len(syms):
        raise r.fail(f"{where}.symbols", "lists a symbol twice")
    tf = r.req(m, "timeframe", where)
    if tf not in TIMEFRAME_SECONDS:
        raise r.fail(f"{where}.timeframe", f"unknown timeframe {tf!r}; known: {', '.join(TIMEFRAME_SECONDS)}")
    train = r.mapping(r.req(m, "train", where), f"{where}.train", {"start", "end"})
    held = r.mapping(r.req(m, "heldout", where), f"{where}.heldout", {"start", "end"})
    ts, te = r.when(train, "start", f"{where}.train"), r.when(train, "end", f"{where}.train")
    hs, he = r.when(held, "start", f"{where}.heldout"), r.when(held, "end", f"{where}.heldout")
    if te <= ts:
        raise r.fail(f"{where}.train.end", f"{te.date()} must be after train.start {ts.date()}")
    if he <= hs:
        raise r.fail(f"{where}.heldout.end", f"{he.date()} must be after heldout.start {hs.date()}")
    if hs < te:
        raise r.fail(f"{where}.heldout.start", f"{hs} overlaps the training range (it must be >= train.end {te})")
    files = m.get("files") or {}
    if source == "csv":
        files = r.mapping(files, f"{where}.files")
        for s in syms:
            if s not in files or not isinstance(files[s], str):
                raise r.fail(f"{where}.files", f"source csv needs a file path for {s}")
    return DataSettings(
        source=source, symbols=tuple(syms), timeframe=tf, train_start=ts, train_end=te, heldout_start=hs,
        heldout_end=he, lookback=r.int_(m, "lookback", where, minimum=2), horizon=r.int_(m, "horizon", where),
        files={str(k): str(v) for k, v in files.items()},
        synthetic_seed=r.int_(m, "synthetic_seed", where, default=7, minimum=0),
    )  # fmt: skip


def _evaluation(r: _Fields, m: Any, where: str) -> EvalSettings:
    m = r.mapping(m if m is not None else {}, where, _EVAL_KEYS)
    d = EvalSettings()
    ev = EvalSettings(
        origins_per_symbol=r.int_(m, "origins_per_symbol", where, default=d.origins_per_symbol),
        history_bars=r.int_(m, "history_bars", where, default=d.history_bars, minimum=3),
        horizon=r.int_(m, "horizon", where, default=d.horizon, minimum=2),
        n_paths=r.int_(m, "n_paths", where, default=d.n_paths, minimum=2),
        max_context=r.int_(m, "max_context", where, default=d.max_context, minimum=2),
        seed=r.int_(m, "seed", where, default=d.seed, minimum=0),
        temperature=r.float_(m, "temperature", where, default=d.temperature),
        top_p=r.float_(m, "top_p", where, default=d.top_p, hi=1.0),
        top_k=r.int_(m, "top_k", where, default=d.top_k, minimum=0),
    )
    if ev.horizon >= ev.max_context:
        raise r.fail(f"{where}.horizon", f"{ev.horizon} must be below max_context {ev.max_context}")
    return ev


def _base(r: _Fields, value: Any, where: str, models: Mapping[str, ModelSettings] | None, root: Path) -> BaseSpec:
    if not isinstance(value, str) or not value:
        raise r.fail(where, "must be 'scratch', a models.yaml key or a folder holding model/ and tokenizer/")
    if value == "scratch":
        return BaseSpec("scratch", value)
    if models is not None and value in models:
        return BaseSpec("model", value, models[value])
    folder = (root / value).expanduser().resolve() if not Path(value).is_absolute() else Path(value)
    if folder.is_dir():
        for part in ("model", "tokenizer"):
            for name in ("config.json", "model.safetensors"):
                if not (folder / part / name).is_file():
                    raise r.fail(where, f"{folder / part / name} not found")
        return BaseSpec("folder", str(folder))
    if models is None:  # models.yaml not consulted: taken as a model key, checked when the run loads its base
        return BaseSpec("model", value)
    known = ", ".join(sorted(models)) or "none configured"
    raise r.fail(where, f"{value!r} is not 'scratch', not a models.yaml key ({known}) and not a folder")


def _run(r: _Fields, name: str, m: Any, models: Mapping[str, ModelSettings] | None, root: Path) -> RunSettings:
    where = f"runs.{name}"
    if not isinstance(name, str) or not RUN_NAME_RE.match(name):
        raise r.fail(where, "run names are lower-case letters, digits, '-' and '_' (they name folders and assets)")
    m = r.mapping(m, where, _RUN_KEYS)
    base = _base(r, r.req(m, "base", where), f"{where}.base", models, root)
    tok_cfg = model_cfg = None
    if base.kind == "scratch":
        sc = r.mapping(r.req(m, "scratch", where), f"{where}.scratch", {"tokenizer", "model"})
        tok_cfg = _network(r, TokenizerConfig, r.req(sc, "tokenizer", f"{where}.scratch"), f"{where}.scratch.tokenizer")
        if tok_cfg.codebook_dim % tok_cfg.group_size:
            raise r.fail(f"{where}.scratch.tokenizer.group_size",
                         f"{tok_cfg.group_size} does not divide the codebook dim {tok_cfg.codebook_dim}")
        model_cfg = _network(r, KronosConfig, r.req(sc, "model", f"{where}.scratch"), f"{where}.scratch.model",
                             {"s1_bits": tok_cfg.s1_bits, "s2_bits": tok_cfg.s2_bits})  # fmt: skip
        if (model_cfg.s1_bits, model_cfg.s2_bits) != (tok_cfg.s1_bits, tok_cfg.s2_bits):
            raise r.fail(f"{where}.scratch.model.s1_bits", "must equal the tokenizer's s1_bits/s2_bits")
    elif "scratch" in m:
        raise r.fail(f"{where}.scratch", f"only used with base: scratch (base is {base.value!r})")
    data = _data(r, r.req(m, "data", where), f"{where}.data")
    ev = _evaluation(r, m.get("evaluation"), f"{where}.evaluation")
    device = m.get("device", "cpu")
    if not isinstance(device, str) or not DEVICE_RE.match(device):
        raise r.fail(f"{where}.device", f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    threads = m.get("threads")
    if threads is not None:
        threads = r.int_(m, "threads", where)
    output = m.get("output")
    if output is not None and not isinstance(output, str):
        raise r.fail(f"{where}.output", "must be a folder path")
    description = m.get("description", "")
    if not isinstance(description, str):
        raise r.fail(f"{where}.description", "must be text")
    return RunSettings(
        name=name, base=base, data=data,
        tokenizer=_stage(r, r.req(m, "tokenizer", where), f"{where}.tokenizer"),
        predictor=_stage(r, r.req(m, "predictor", where), f"{where}.predictor"),
        evaluation=ev, scratch_tokenizer=tok_cfg, scratch_model=model_cfg, description=description,
        seed=r.int_(m, "seed", where, default=0, minimum=0), device=device, threads=threads,
        weight_decay=r.float_(m, "weight_decay", where, default=0.1, lo=0.0, lo_open=False),
        inv_temperature=r.float_(m, "inv_temperature", where, default=100.0),
        log_every=r.int_(m, "log_every", where, default=25),
        save_every=r.int_(m, "save_every", where, default=200),
        val_windows=r.int_(m, "val_windows", where, default=64, minimum=0),
        output=(root / output).resolve() if output else None, source_file=r.path,
    )  # fmt: skip


def load_training_config(path: str | Path | None = None, models: Mapping[str, ModelSettings] | None = None,
                         root: Path = REPO_ROOT) -> dict[str, RunSettings]:  # fmt: skip
    """Read and validate the runs of a training.yaml (default: configs/training.yaml). ``models`` (the profile's
    models.yaml entries) lets a run start from a configured model key; with None, a base that is neither "scratch"
    nor a folder is taken as a model key unchecked (loading it then fails). Relative folders resolve against
    ``root``."""
    p = Path(path) if path else REPO_ROOT / "configs" / "training.yaml"
    r = _Fields(p)
    if not p.is_file():
        raise ConfigError(f"{p}: file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    data = r.mapping(data, "top level", {"runs"})
    runs = r.mapping(data.get("runs"), "runs")
    return {name: _run(r, name, spec, models, root) for name, spec in runs.items()}
