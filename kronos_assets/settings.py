"""Configuration: configs/*.yaml read once, validated, and turned into frozen settings.

The profile (``demo`` or ``live``) is chosen by ``KRONOS_PROFILE`` or the CLI's ``--profile``. Every validation
error names the file and the field, and is raised when the code location loads, never halfway through a run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from kronos_assets.forecasting.interface import Sampling
from kronos_assets.market.timeframes import TIMEFRAME_SECONDS

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("demo", "live")
BASELINES = ("random_walk", "random_walk_vol")
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,15}/[A-Z0-9]{2,15}$")
MARKET_SOURCES = ("synthetic", "ccxt")
PUBLISH_BACKENDS = ("local", "r2", "auto")


class ConfigError(ValueError):
    """A configuration problem; the message names the file and the field."""


@dataclass(frozen=True)
class TimeframeSettings:
    name: str
    start: date
    history_bars: int
    horizon: int


@dataclass(frozen=True)
class ExchangeSettings:
    id: str
    base_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSettings:
    """A Kronos checkpoint: from the hub (repo at a pinned revision) or from local folders (``local_dir`` holding
    ``model/`` and ``tokenizer/``, each with config.json + model.safetensors)."""

    key: str
    repo: str | None
    revision: str | None
    tokenizer_repo: str | None
    tokenizer_revision: str | None
    max_context: int
    local_dir: Path | None = None
    device: str = "auto"

    @property
    def model_source(self) -> str:
        return str(self.local_dir / "model") if self.local_dir else str(self.repo)

    @property
    def tokenizer_source(self) -> str:
        return str(self.local_dir / "tokenizer") if self.local_dir else str(self.tokenizer_repo)


@dataclass(frozen=True)
class Settings:
    profile: str
    description: str
    market: str
    symbols: tuple[str, ...]
    timeframes: tuple[TimeframeSettings, ...]
    exchanges: tuple[ExchangeSettings, ...]
    models: dict[str, ModelSettings]
    forecasters: tuple[str, ...]
    primary_model: str
    sampling: Sampling
    publish_backend: str
    home: Path
    config_dir: Path
    uploads_publish: bool = False  # profile's uploads.publish: uploaded markets' scores in the public files

    @property
    def synthetic(self) -> bool:
        return self.market == "synthetic"

    @property
    def profile_home(self) -> Path:
        """Everything a profile stores lives here (<home>/<profile>): demo and live never share a warehouse,
        a Dagster instance or a publish folder."""
        return self.home / self.profile

    @property
    def warehouse_path(self) -> Path:
        return self.profile_home / "warehouse.duckdb"

    @property
    def publish_dir(self) -> Path:
        return self.profile_home / "publish"

    @property
    def dagster_home(self) -> Path:
        """The local Dagster instance `kronos-assets run` records runs in (DAGSTER_HOME for `dg dev`)."""
        return self.profile_home / "dagster"

    @property
    def log_path(self) -> Path:
        """Dagster's full event log of every run on the local instance."""
        return self.profile_home / "logs" / "dagster.log"

    @property
    def uploads_dir(self) -> Path:
        """Folder watched for users' candle files ($KRONOS_UPLOADS_DIR, else <home>/<profile>/uploads)."""
        return Path(os.environ.get("KRONOS_UPLOADS_DIR", self.profile_home / "uploads")).expanduser().resolve()

    def timeframe(self, name: str) -> TimeframeSettings:
        for tf in self.timeframes:
            if tf.name == name:
                return tf
        raise KeyError(f"timeframe {name!r} is not enabled in profile {self.profile!r}")

    def sampling_for(self, timeframe: str) -> Sampling:
        return replace(self.sampling, horizon=self.timeframe(timeframe).horizon)


def symbol_key(symbol: str) -> str:
    """Partition key of a symbol: BTC/USDT -> BTC-USDT (slashes make poor paths and keys)."""
    return symbol.replace("/", "-")


def symbol_from_key(key: str) -> str:
    return key.replace("-", "/", 1)


class _Reader:
    """Reads one YAML file and reports problems as '<file>: <field>: <problem>'."""

    def __init__(self, path: Path):
        self.path = path
        if not path.is_file():
            raise ConfigError(f"{path}: file not found")
        try:
            self.data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(self.data, dict):
            raise ConfigError(f"{path}: top level must be a mapping")

    def fail(self, fieldname: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {fieldname}: {problem}")

    def get(self, mapping: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
        if key not in mapping:
            raise self.fail(f"{where}{key}", "missing")
        value = mapping[key]
        if not isinstance(value, kind):
            raise self.fail(f"{where}{key}", f"expected {_kind_name(kind)}, got {type(value).__name__}")
        return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _positive_int(r: _Reader, mapping: dict[str, Any], key: str, where: str) -> int:
    value = r.get(mapping, key, where, int)
    if isinstance(value, bool) or value <= 0:
        raise r.fail(f"{where}{key}", f"must be a positive integer, got {value!r}")
    return value


def _check_symbols(r: _Reader, symbols: Any, where: str) -> tuple[str, ...]:
    if not isinstance(symbols, list) or not symbols:
        raise r.fail(where, "must be a non-empty list of symbols like BTC/USDT")
    for i, s in enumerate(symbols):
        if not isinstance(s, str) or not SYMBOL_RE.match(s):
            raise r.fail(f"{where}[{i}]", f"bad symbol {s!r}: use BASE/QUOTE in capitals, e.g. BTC/USDT")
    if len(set(symbols)) != len(symbols):
        raise r.fail(where, "lists a symbol twice")
    return tuple(symbols)


def _load_markets(r: _Reader, today: date) -> tuple[tuple[str, ...], dict[str, TimeframeSettings], tuple]:
    symbols = _check_symbols(r, r.get(r.data, "symbols", "", list), "symbols")
    tfs_raw = r.get(r.data, "timeframes", "", dict)
    timeframes: dict[str, TimeframeSettings] = {}
    for name, spec in tfs_raw.items():
        where = f"timeframes.{name}."
        if name not in TIMEFRAME_SECONDS:
            raise r.fail(f"timeframes.{name}", f"unknown timeframe; known: {', '.join(TIMEFRAME_SECONDS)}")
        if not isinstance(spec, dict):
            raise r.fail(f"timeframes.{name}", "must be a mapping with start, history_bars, horizon")
        start_raw = r.get(spec, "start", where, (str, date))
        try:
            start = start_raw if isinstance(start_raw, date) else date.fromisoformat(start_raw)
        except ValueError:
            raise r.fail(f"{where}start", f"not a date (YYYY-MM-DD): {start_raw!r}") from None
        if start > today:
            raise r.fail(f"{where}start", f"{start} is in the future")
        history = _positive_int(r, spec, "history_bars", where)
        horizon = _positive_int(r, spec, "horizon", where)
        if history < horizon + 2:
            raise r.fail(f"{where}history_bars", f"must exceed the horizon ({horizon}) by at least 2")
        timeframes[name] = TimeframeSettings(name, start, history, horizon)
    exchanges = []
    for i, ex in enumerate(r.get(r.data, "exchanges", "", list)):
        where = f"exchanges[{i}]."
        if not isinstance(ex, dict):
            raise r.fail(f"exchanges[{i}]", "must be a mapping with id, base_url, options")
        options = ex.get("options") or {}
        base_url = ex.get("base_url")
        if not isinstance(options, dict):
            raise r.fail(f"{where}options", "must be a mapping of ccxt options")
        if base_url is not None and not (isinstance(base_url, str) and re.match(r"^https?://", base_url)):
            raise r.fail(f"{where}base_url", f"must be an http(s) URL or null, got {base_url!r}")
        exchanges.append(ExchangeSettings(r.get(ex, "id", where, str), base_url, options))
    if not exchanges:
        raise r.fail("exchanges", "needs at least one exchange")
    return symbols, timeframes, tuple(exchanges)


def _load_models(r: _Reader) -> tuple[dict[str, ModelSettings], Sampling]:
    models = {}
    for key, spec in r.get(r.data, "models", "", dict).items():
        where = f"models.{key}."
        if not isinstance(spec, dict):
            raise r.fail(f"models.{key}", "must be a mapping")
        if key in BASELINES:
            raise r.fail(f"models.{key}", "name is reserved for a baseline forecaster")
        device = spec.get("device", "auto")
        if device not in ("auto", "cpu", "cuda", "mps") and not str(device).startswith("cuda:"):
            raise r.fail(f"{where}device", f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
        if "local_dir" in spec:
            local = (REPO_ROOT / r.get(spec, "local_dir", where, str)).resolve()
            for part in ("model", "tokenizer"):
                for name in ("config.json", "model.safetensors"):
                    if not (local / part / name).is_file():
                        raise r.fail(f"{where}local_dir", f"{local / part / name} not found")
            models[key] = ModelSettings(key, None, None, None, None, _positive_int(r, spec, "max_context", where),
                                        local_dir=local, device=device)
            continue
        revision = r.get(spec, "revision", where, str)
        tok_revision = r.get(spec, "tokenizer_revision", where, str)
        for name, rev in (("revision", revision), ("tokenizer_revision", tok_revision)):
            if not re.fullmatch(r"[0-9a-f]{40}", rev):
                raise r.fail(f"{where}{name}", f"pin a 40-hex commit hash, not {rev!r}")
        models[key] = ModelSettings(
            key=key,
            repo=r.get(spec, "repo", where, str),
            revision=revision,
            tokenizer_repo=r.get(spec, "tokenizer_repo", where, str),
            tokenizer_revision=tok_revision,
            max_context=_positive_int(r, spec, "max_context", where),
            device=device,
        )
    s = r.get(r.data, "sampling", "", dict)
    temperature = r.get(s, "temperature", "sampling.", (int, float))
    top_p = r.get(s, "top_p", "sampling.", (int, float))
    top_k = r.get(s, "top_k", "sampling.", int)
    if temperature <= 0:
        raise r.fail("sampling.temperature", "must be > 0")
    if not 0 < top_p <= 1:
        raise r.fail("sampling.top_p", "must be in (0, 1]")
    if top_k < 0:
        raise r.fail("sampling.top_k", "must be >= 0 (0 disables top-k)")
    sampling = Sampling(
        n_paths=_positive_int(r, s, "n_paths", "sampling."),
        horizon=1,
        temperature=float(temperature),
        top_p=float(top_p),
        top_k=top_k,
        seed=r.get(s, "seed", "sampling.", int),
    )
    return models, sampling


def load_settings(
    profile: str | None = None,
    config_dir: str | Path | None = None,
    home: str | Path | None = None,
    today: date | None = None,
) -> Settings:
    profile = profile or os.environ.get("KRONOS_PROFILE", "demo")
    config_dir = Path(config_dir or os.environ.get("KRONOS_CONFIG_DIR", REPO_ROOT / "configs"))
    home = Path(home or os.environ.get("KRONOS_HOME", REPO_ROOT / ".kronos_home")).expanduser().resolve()
    today = today or datetime.now(timezone.utc).date()
    if profile not in PROFILES:
        raise ConfigError(f"KRONOS_PROFILE: unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")

    markets = _Reader(config_dir / "markets.yaml")
    symbols, all_tfs, exchanges = _load_markets(markets, today)
    models_r = _Reader(config_dir / "models.yaml")
    models, sampling = _load_models(models_r)

    p = _Reader(config_dir / "profiles" / f"{profile}.yaml")
    market = p.get(p.data, "market", "", str)
    if market not in MARKET_SOURCES:
        raise p.fail("market", f"unknown source {market!r}; choose one of {', '.join(MARKET_SOURCES)}")
    if "symbols" in p.data:
        symbols = _check_symbols(p, p.data["symbols"], "symbols")
    tf_names = p.get(p.data, "timeframes", "", list)
    for i, name in enumerate(tf_names):
        if name not in all_tfs:
            raise p.fail(f"timeframes[{i}]", f"{name!r} is not defined in {markets.path}")
    forecasters = p.get(p.data, "forecasters", "", list)
    for i, name in enumerate(forecasters):
        if name not in BASELINES and name not in models:
            raise p.fail(f"forecasters[{i}]", f"unknown forecaster {name!r}: not a baseline nor in {models_r.path}")
    primary = p.get(p.data, "primary_model", "", str)
    if primary not in forecasters:
        raise p.fail("primary_model", f"{primary!r} must be one of the profile's forecasters")
    publish = p.get(p.data, "publish", "", dict)
    backend = p.get(publish, "backend", "publish.", str)
    if backend not in PUBLISH_BACKENDS:
        raise p.fail("publish.backend", f"unknown backend {backend!r}; choose one of {', '.join(PUBLISH_BACKENDS)}")
    uploads = p.get(p.data, "uploads", "", dict) if "uploads" in p.data else {}
    uploads_publish = p.get(uploads, "publish", "uploads.", bool) if "publish" in uploads else False

    return Settings(
        profile=profile,
        description=str(p.data.get("description", profile)),
        market=market,
        symbols=symbols,
        timeframes=tuple(all_tfs[n] for n in tf_names),
        exchanges=exchanges,
        models=models,
        forecasters=tuple(forecasters),
        primary_model=primary,
        sampling=sampling,
        publish_backend=backend,
        home=home,
        config_dir=config_dir,
        uploads_publish=uploads_publish,
    )
