"""Configuration: configs/*.yaml read once, validated, and turned into frozen settings.

The profile (``demo`` or ``live``) is chosen by ``KRONOS_PROFILE`` or the CLI's ``--profile``. Every validation
error names the file and the field, and is raised when the code location loads, never halfway through a run.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from kronos_assets.forecasting import kinds
from kronos_assets.forecasting.interface import Sampling
from kronos_assets.forecasting.kinds.kronos import KronosSettings
from kronos_assets.market.timeframes import TIMEFRAME_SECONDS

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("demo", "live")
BASELINES = tuple(kinds.BUILTIN)  # forecasters named without a models.yaml entry
ModelSettings = KronosSettings  # a Kronos checkpoint's settings (training bases, ad-hoc models, revisions)
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
class Settings:
    profile: str
    description: str
    market: str
    symbols: tuple[str, ...]
    timeframes: tuple[TimeframeSettings, ...]
    exchanges: tuple[ExchangeSettings, ...]
    model_specs: dict[str, kinds.ModelSpec]  # every forecaster a profile may name: built-ins and models.yaml
    forecasters: tuple[str, ...]
    primary_model: str
    sampling: Sampling
    publish_backend: str
    home: Path
    config_dir: Path
    uploads_publish: bool = False  # profile's uploads.publish: uploaded markets' scores in the public files
    # profile's uploads.*: bounded reading of users' files, and how many equal looks make a file stable
    upload_max_file_mb: float = 64.0
    upload_max_decompressed_mb: float = 64.0
    upload_stable_looks: int = 2
    # markets.yaml fetch.*: wall-clock deadlines of one exchange request and of the whole fetch of a partition
    request_deadline_s: float = 30.0
    fetch_deadline_s: float = 600.0

    @property
    def models(self) -> dict[str, ModelSettings]:
        """The Kronos checkpoints of models.yaml (what training and ad-hoc forecasts start from)."""
        return {k: m.options for k, m in self.model_specs.items() if m.kind == "kronos"}

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


class _Mapping(dict):
    """A YAML mapping that remembers which keys the parser asked for. Whatever the parser never asked for is an
    unknown key (a typo, or a setting this version does not have): the set of valid keys is the parser itself,
    so a field added to the parser is known without a list to keep in step."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.asked: set[Any] = set()
        self.opaque = False  # passed on as it is (ccxt options): its keys are someone else's to check

    def __getitem__(self, key: Any) -> Any:
        self.asked.add(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.asked.add(key)
        return super().__contains__(key)

    def _all(self) -> None:
        self.asked.update(super().keys())

    def keys(self):  # type: ignore[override]
        self._all()
        return super().keys()

    def items(self):  # type: ignore[override]
        self._all()
        return super().items()

    def values(self):  # type: ignore[override]
        self._all()
        return super().values()

    def __iter__(self):  # type: ignore[override]
        self._all()
        return super().__iter__()


class _Loader(yaml.SafeLoader):
    """Safe YAML whose mappings are ``_Mapping``s and where a key written twice is an error, not 'last wins'."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _Mapping:  # type: ignore[override]
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} written twice (first at line {seen[key].line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark
        return _Mapping(super().construct_mapping(node, deep=True))


_Loader.add_constructor("tag:yaml.org,2002:map", lambda loader, node: loader.construct_mapping(node))


def _opaque(value: Any) -> Any:
    if isinstance(value, _Mapping):
        value.opaque = True
    return value


class _Reader:
    """Reads one YAML file and reports problems as '<file>: <field>: <problem>'."""

    def __init__(self, path: Path):
        self.path = path
        if not path.is_file():
            raise ConfigError(f"{path}: file not found")
        try:
            self.data = yaml.load(path.read_text(), Loader=_Loader) or _Mapping()  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
        if not isinstance(self.data, dict):
            raise ConfigError(f"{path}: top level must be a mapping")

    def fail(self, fieldname: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {fieldname}: {problem}")

    def get(self, mapping: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
        if key not in mapping:
            stray = [k for k in mapping if isinstance(k, str) and k not in getattr(mapping, "asked", ())] \
                if isinstance(mapping, _Mapping) else []
            near = difflib.get_close_matches(key, [k for k in map(str, mapping) if k != key], n=1, cutoff=0.6)
            hint = f" (is {near[0]!r} a misspelling of it?)" if near and (not stray or near[0] in stray) else ""
            raise self.fail(f"{where}{key}", "missing" + hint)
        value = mapping[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
            raise self.fail(f"{where}{key}", f"expected {_kind_name(kind)}, got {type(value).__name__} {value!r}")
        return value

    def check_unknown(self) -> None:
        """Every key of the file must have been asked for by the parser; the first one that was not is an error
        naming the field and the nearest valid key."""
        self._walk(self.data, "")

    def _walk(self, node: Any, where: str) -> None:
        if isinstance(node, _Mapping):
            if node.opaque:
                return
            known = [str(k) for k in node.asked]
            for key in list(dict.keys(node)):
                if key not in node.asked:
                    near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                    hint = f"did you mean {near[0]!r}?" if near else f"valid here: {', '.join(sorted(known))}"
                    raise self.fail(f"{where}{key}", f"unknown key; {hint}")
                self._walk(dict.__getitem__(node, key), f"{where}{key}.")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                self._walk(item, f"{where.rstrip('.')}[{i}].")


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join({"int": "a whole number", "float": "a number", "str": "text", "dict": "a mapping",
                        "list": "a list"}.get(k.__name__, k.__name__) for k in _kinds(kind))


def _whole(r: _Reader, mapping: dict[str, Any], key: str, where: str, minimum: int) -> int:
    """A whole number >= minimum; 2.5, 1e3, true or -1 are errors that say what is expected."""
    return kinds.Options(r, mapping, key, REPO_ROOT, where=where).whole(key, minimum)


def _positive_int(r: _Reader, mapping: dict[str, Any], key: str, where: str) -> int:
    return _whole(r, mapping, key, where, 1)


def _optional_positive(r: _Reader, mapping: dict[str, Any], key: str, where: str, default: float) -> float:
    if key not in mapping:
        return default
    value = r.get(mapping, key, where, (int, float))
    if not (math.isfinite(value) and value > 0):
        raise r.fail(f"{where}{key}", f"must be a number > 0, got {value!r}")
    return float(value)


def _no_duplicates(r: _Reader, items: list[Any], where: str, what: str) -> None:
    seen: set[Any] = set()
    for i, item in enumerate(items):
        if item in seen:
            raise r.fail(f"{where}[{i}]", f"lists {what} {item!r} twice")
        seen.add(item)


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
        _opaque(options)
        if base_url is not None and not (isinstance(base_url, str) and re.match(r"^https?://", base_url)):
            raise r.fail(f"{where}base_url", f"must be an http(s) URL or null, got {base_url!r}")
        exchanges.append(ExchangeSettings(r.get(ex, "id", where, str), base_url, options))
    if not exchanges:
        raise r.fail("exchanges", "needs at least one exchange")
    _no_duplicates(r, [e.id for e in exchanges], "exchanges", "exchange")
    return symbols, timeframes, tuple(exchanges)


def _check_exchange_ids(r: _Reader, exchanges: tuple[ExchangeSettings, ...]) -> None:
    """Only for profiles that use ccxt: importing it takes a second or two."""
    import ccxt

    for i, ex in enumerate(exchanges):
        if ex.id not in ccxt.exchanges:
            near = difflib.get_close_matches(ex.id, ccxt.exchanges, n=1)
            raise r.fail(f"exchanges[{i}].id", f"unknown exchange {ex.id!r}"
                         + (f"; did you mean {near[0]!r}?" if near else "; see ccxt.exchanges for the ids"))


def _load_models(r: _Reader) -> tuple[dict[str, kinds.ModelSpec], Sampling]:
    specs = dict(kinds.BUILTIN)
    for key, spec in r.get(r.data, "models", "", dict).items():
        if not isinstance(spec, dict):
            raise r.fail(f"models.{key}", "must be a mapping")
        if key in BASELINES:
            raise r.fail(f"models.{key}", "name is reserved for a baseline forecaster")
        kind = r.get(spec, "kind", f"models.{key}.", str) if "kind" in spec else kinds.DEFAULT_KIND
        if kind not in kinds.KINDS:
            near = difflib.get_close_matches(kind, kinds.KINDS, n=1, cutoff=0.6)
            raise r.fail(f"models.{key}.kind", f"unknown kind {kind!r}; "
                         + (f"did you mean {near[0]!r}?" if near else f"known: {', '.join(kinds.KINDS)}"))
        specs[key] = kinds.ModelSpec(key, kind, kinds.KINDS[kind].parse(kinds.Options(r, spec, str(key), REPO_ROOT)))
    s = r.get(r.data, "sampling", "", dict)
    temperature = r.get(s, "temperature", "sampling.", (int, float))
    top_p = r.get(s, "top_p", "sampling.", (int, float))
    if not (math.isfinite(temperature) and temperature > 0):
        raise r.fail("sampling.temperature", f"must be a finite number > 0, got {temperature!r}")
    if not 0 < top_p <= 1:
        raise r.fail("sampling.top_p", f"must be in (0, 1], got {top_p!r}")
    sampling = Sampling(
        n_paths=_positive_int(r, s, "n_paths", "sampling."),
        horizon=1,
        temperature=float(temperature),
        top_p=float(top_p),
        top_k=_whole(r, s, "top_k", "sampling.", 0),  # 0 disables top-k
        seed=_whole(r, s, "seed", "sampling.", 0),
    )
    return specs, sampling


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
    models, sampling = _load_models(models_r)  # built-in baselines and every models.yaml entry

    p = _Reader(config_dir / "profiles" / f"{profile}.yaml")
    market = p.get(p.data, "market", "", str)
    if market not in MARKET_SOURCES:
        raise p.fail("market", f"unknown source {market!r}; choose one of {', '.join(MARKET_SOURCES)}")
    if "symbols" in p.data:
        symbols = _check_symbols(p, p.data["symbols"], "symbols")
    tf_names = p.get(p.data, "timeframes", "", list)
    _no_duplicates(p, tf_names, "timeframes", "timeframe")
    for i, name in enumerate(tf_names):
        if name not in all_tfs:
            raise p.fail(f"timeframes[{i}]", f"{name!r} is not defined in {markets.path}")
    forecasters = p.get(p.data, "forecasters", "", list)
    _no_duplicates(p, forecasters, "forecasters", "forecaster")
    for i, name in enumerate(forecasters):
        if name not in models:
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
    limits = {k: _optional_positive(p, uploads, k, "uploads.", d)
              for k, d in (("max_file_mb", 64.0), ("max_decompressed_mb", 64.0))}
    stable_looks = _whole(p, uploads, "stable_looks", "uploads.", 1) if "stable_looks" in uploads else 2
    fetch = markets.get(markets.data, "fetch", "", dict) if "fetch" in markets.data else {}
    deadlines = {k: _optional_positive(markets, fetch, k, "fetch.", d)
                 for k, d in (("request_deadline_s", 30.0), ("fetch_deadline_s", 600.0))}

    settings = Settings(
        profile=profile,
        description=str(p.data.get("description", profile)),
        market=market,
        symbols=symbols,
        timeframes=tuple(all_tfs[n] for n in tf_names),
        exchanges=exchanges,
        model_specs=models,
        forecasters=tuple(forecasters),
        primary_model=primary,
        sampling=sampling,
        publish_backend=backend,
        home=home,
        config_dir=config_dir,
        uploads_publish=uploads_publish,
        upload_max_file_mb=limits["max_file_mb"],
        upload_max_decompressed_mb=limits["max_decompressed_mb"],
        upload_stable_looks=stable_looks,
        **deadlines,
    )
    if market == "ccxt":
        _check_exchange_ids(markets, exchanges)
    for reader in (markets, models_r, p):  # after every field was read, wherever it is parsed above
        reader.check_unknown()
    return settings
