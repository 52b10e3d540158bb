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
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Mapping

from pydantic import BeforeValidator, ValidationInfo, field_validator, model_validator

from kronos_assets.base.config_files import (
    ConfigError,
    Device,
    Moment,
    Number,
    OneOf,
    Problems,
    Schema,
    Whole,
    fail,
    field_path,
    problem,
    read_yaml,
    unknown_key,
    validate,
)
from kronos_assets.base.environment import REPO_ROOT
from kronos_assets.forecasting.interface import MAX_PATHS, Sampling
from kronos_assets.forecasting.kinds.kronos import KronosSettings
from kronos_assets.kronos.config import KronosConfig, TokenizerConfig, validate_config
from kronos_assets.kronos.errors import CheckpointError
from kronos_assets.market.names import Symbols, TimeframeName

SOURCES = ("synthetic", "warehouse", "csv")
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
    """The held-out evaluation: where its origins lie and how much history each gets; how it samples is the
    forecasters' own ``Sampling`` (paths, horizon, temperature, top_p, top_k, seed), embedded, not copied."""

    origins_per_symbol: int = 40
    history_bars: int = 256
    max_context: int = 512
    sampling: Sampling = Sampling()


@dataclass(frozen=True)
class BaseSpec:
    kind: str  # "scratch" | "model" (a models.yaml key) | "folder"
    value: str  # "scratch", the key, or the folder
    model: KronosSettings | None = None  # for kind "model"

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
            "scratch": [
                asdict(self.scratch_tokenizer) if self.scratch_tokenizer else None,
                asdict(self.scratch_model) if self.scratch_model else None,
            ],
            "seed": self.seed,
            "weight_decay": self.weight_decay,
            "inv_temperature": self.inv_temperature,
        }
        d["data"].pop("files", None)  # where the CSVs lie does not change them
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- the file's schema (configuration.Schema: unknown keys forbidden, whole numbers and flags strict) -----------
def _run_name(name: Any) -> str:
    if not isinstance(name, str) or not RUN_NAME_RE.match(name):
        raise problem("run names are lower-case letters, digits, '-' and '_' (they name folders and assets)")
    return name


_Empty = BeforeValidator(lambda v: {} if v is None else v)  # `key:` with nothing after it means the defaults


class _Stage(Schema):
    steps: Whole(0)  # type: ignore[valid-type]
    batch_size: Whole(1)  # type: ignore[valid-type]
    lr: Number(high=1.0)  # type: ignore[valid-type]
    warmup: Whole(0) = 0  # type: ignore[valid-type]
    grad_clip: Number() = 1.0  # type: ignore[valid-type]
    min_lr_ratio: Number(low_open=False, high=1.0) = 0.1  # type: ignore[valid-type]


class _Range(Schema):
    """[start, end) in UTC."""

    start: Moment
    end: Moment

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise problem(f"{end.date()} must be after start {start.date()}")
        return end


class _Data(Schema):
    source: OneOf(SOURCES, "source") = "warehouse"  # type: ignore[valid-type]
    symbols: Symbols
    timeframe: TimeframeName
    train: _Range
    heldout: _Range
    lookback: Whole(2)  # type: ignore[valid-type]
    horizon: Whole(1)  # type: ignore[valid-type]
    files: Annotated[dict[str, str], _Empty] = {}  # source csv: symbol -> path
    synthetic_seed: Whole(0) = 7  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _consistent(self) -> _Data:
        if self.heldout.start < self.train.end:
            raise problem(
                f"{self.heldout.start} overlaps the training range (it must be >= train.end {self.train.end})",
                at=("heldout", "start"),
            )
        for s in self.symbols if self.source == "csv" else ():
            if s not in self.files:
                raise problem(f"source csv needs a file path for {s}", at=("files",))
        return self


class _Eval(Schema):
    origins_per_symbol: Whole(1) = 40  # type: ignore[valid-type]
    history_bars: Whole(3) = 256  # type: ignore[valid-type]
    horizon: Whole(2) = 24  # type: ignore[valid-type]
    n_paths: Whole(2, MAX_PATHS) = 30  # type: ignore[valid-type]
    max_context: Whole(2) = 512  # type: ignore[valid-type]
    seed: Whole(0) = 0  # type: ignore[valid-type]
    temperature: Number() = 1.0  # type: ignore[valid-type]
    top_p: Number(high=1.0) = 0.9  # type: ignore[valid-type]
    top_k: Whole(0) = 0  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _horizon_in_context(self) -> _Eval:
        if self.horizon >= self.max_context:
            raise problem(f"{self.horizon} must be below max_context {self.max_context}", at=("horizon",))
        return self


class _Scratch(Schema):
    tokenizer: dict[str, Any]  # TokenizerConfig's fields (kronos/config.py checks them)
    model: dict[str, Any]  # KronosConfig's, its s1_bits/s2_bits defaulting to the tokenizer's


class _Run(Schema):
    description: str = ""
    base: str
    scratch: _Scratch | None = None
    data: _Data
    tokenizer: _Stage
    predictor: _Stage
    evaluation: Annotated[_Eval, _Empty] = _Eval()
    seed: Whole(0) = 0  # type: ignore[valid-type]
    device: Device = "cpu"
    threads: Whole(1) | None = None  # type: ignore[valid-type]
    weight_decay: Number(low_open=False) = 0.1  # type: ignore[valid-type]
    inv_temperature: Number() = 100.0  # type: ignore[valid-type]
    log_every: Whole(1) = 25  # type: ignore[valid-type]
    save_every: Whole(1) = 200  # type: ignore[valid-type]
    val_windows: Whole(0) = 64  # type: ignore[valid-type]
    output: str | None = None  # a folder, relative to the repository


class TrainingFile(Schema):
    runs: dict[Annotated[str, BeforeValidator(_run_name)], _Run]


# -- reading -------------------------------------------------------------------------------------------------
def _network(
    path: Path, cls: type, m: dict[str, Any], where: tuple[str, ...], extra: dict[str, Any] | None = None
) -> Any:
    """A network config from a scratch entry, checked by its own schema (kronos/config.py: sizes in bounds)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(m) - known)
    if unknown:
        raise fail(path, (*where, unknown[0]), unknown_key(unknown[0], known))
    try:
        return validate_config(cls, {**(extra or {}), **m}, f"{path}: {field_path(where)}")
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None


def _base(
    path: Path, value: str, where: tuple[str, ...], models: Mapping[str, KronosSettings] | None, root: Path
) -> BaseSpec:
    if not value:
        raise fail(path, where, "must be 'scratch', a models.yaml key or a folder holding model/ and tokenizer/")
    if value == "scratch":
        return BaseSpec("scratch", value)
    if models is not None and value in models:
        return BaseSpec("model", value, models[value])
    folder = (root / value).expanduser().resolve() if not Path(value).is_absolute() else Path(value)
    if folder.is_dir():
        for part in ("model", "tokenizer"):
            for name in ("config.json", "model.safetensors"):
                if not (folder / part / name).is_file():
                    raise fail(path, where, f"{folder / part / name} not found")
        return BaseSpec("folder", str(folder))
    if models is None:  # models.yaml not consulted: taken as a model key, checked when the run loads its base
        return BaseSpec("model", value)
    known = ", ".join(sorted(models)) or "none configured"
    raise fail(path, where, f"{value!r} is not 'scratch', not a models.yaml key ({known}) and not a folder")


def _run(path: Path, name: str, m: _Run, models: Mapping[str, KronosSettings] | None, root: Path) -> RunSettings:
    where = ("runs", name)
    base = _base(path, m.base, (*where, "base"), models, root)
    tok_cfg = model_cfg = None
    if base.kind == "scratch":
        if m.scratch is None:
            raise fail(path, (*where, "scratch"), "missing (base: scratch needs the networks' sizes)")
        tok_cfg = _network(path, TokenizerConfig, m.scratch.tokenizer, (*where, "scratch", "tokenizer"))
        if tok_cfg.codebook_dim % tok_cfg.group_size:
            raise fail(
                path,
                (*where, "scratch", "tokenizer", "group_size"),
                f"{tok_cfg.group_size} does not divide the codebook dim {tok_cfg.codebook_dim}",
            )
        model_cfg = _network(
            path,
            KronosConfig,
            m.scratch.model,
            (*where, "scratch", "model"),
            {"s1_bits": tok_cfg.s1_bits, "s2_bits": tok_cfg.s2_bits},
        )
        if (model_cfg.s1_bits, model_cfg.s2_bits) != (tok_cfg.s1_bits, tok_cfg.s2_bits):
            raise fail(path, (*where, "scratch", "model", "s1_bits"), "must equal the tokenizer's s1_bits/s2_bits")
    elif m.scratch is not None:
        raise fail(path, (*where, "scratch"), f"only used with base: scratch (base is {base.value!r})")
    d, stage = m.data, (lambda s: StageSettings(**s.model_dump()))
    return RunSettings(
        name=name,
        base=base,
        data=DataSettings(
            source=d.source,
            symbols=d.symbols,
            timeframe=d.timeframe,
            train_start=d.train.start,
            train_end=d.train.end,
            heldout_start=d.heldout.start,
            heldout_end=d.heldout.end,
            lookback=d.lookback,
            horizon=d.horizon,
            files=dict(d.files),
            synthetic_seed=d.synthetic_seed,
        ),
        tokenizer=stage(m.tokenizer),
        predictor=stage(m.predictor),
        evaluation=EvalSettings(
            m.evaluation.origins_per_symbol,
            m.evaluation.history_bars,
            m.evaluation.max_context,
            Sampling(
                **m.evaluation.model_dump(include={"n_paths", "horizon", "temperature", "top_p", "top_k", "seed"})
            ),
        ),
        scratch_tokenizer=tok_cfg,
        scratch_model=model_cfg,
        description=m.description,
        seed=m.seed,
        device=m.device,
        threads=m.threads,
        weight_decay=m.weight_decay,
        inv_temperature=m.inv_temperature,
        log_every=m.log_every,
        save_every=m.save_every,
        val_windows=m.val_windows,
        output=(root / m.output).resolve() if m.output else None,
        source_file=path,
    )


def load_training_config(
    path: str | Path | None = None, models: Mapping[str, KronosSettings] | None = None, root: Path = REPO_ROOT
) -> dict[str, RunSettings]:
    """Read and validate the runs of a training.yaml (default: configs/training.yaml). ``models`` (the profile's
    models.yaml entries) lets a run start from a configured model key; with None, a base that is neither "scratch"
    nor a folder is taken as a model key unchecked (loading it then fails). Relative folders resolve against
    ``root``."""
    p = Path(path) if path else REPO_ROOT / "configs" / "training.yaml"
    file = validate(TrainingFile, read_yaml(p), p)
    runs, problems = {}, Problems(p)
    for name, spec in file.runs.items():  # every run read: all their problems at once
        try:
            runs[name] = _run(p, name, spec, models, root)
        except ConfigError as exc:
            problems.add_error(exc)
    problems.check()
    return runs
