"""Configuration: configs/*.yaml read once, validated, and turned into frozen settings.

The profile (``demo`` or ``live``) is chosen by ``KRONOS_PROFILE`` or the CLI's ``--profile``. Each file is
validated against its schema below (pydantic, kronos_assets.base.config_files); every error names the file and the
field, and is raised when the code location loads, never halfway through a run.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationError, ValidationInfo, field_validator

from kronos_assets.base import environment
from kronos_assets.base.config_files import (
    ConfigError,
    Day,
    Number,
    OneOf,
    Problems,
    Schema,
    Whole,
    config_error,
    fail,
    no_repeats,
    problem,
    read_yaml,
    validate,
)
from kronos_assets.forecasting import kinds
from kronos_assets.forecasting.interface import MAX_PATHS, Sampling, SamplingOptions
from kronos_assets.market.names import Symbols, TimeframeName
from kronos_assets.market.timeframes import Timeframe
from kronos_assets.warehouse.config import WarehouseConfig

if TYPE_CHECKING:  # imported where used: duckdb and the candle files load only when a command needs them
    from kronos_assets.market.replay import ReplayMarket
    from kronos_assets.warehouse.core import Warehouse

REPO_ROOT = environment.REPO_ROOT
PROFILES = ("demo", "live", "synthetic")
BASELINES = kinds.BASELINES  # forecasters named without a models.yaml entry
MARKET_SOURCES = ("synthetic", "ccxt", "replay")
PUBLISH_BACKENDS = ("local", "r2", "auto")
# Bounds that keep a typo from reaching a run: every forecast holds n_paths x horizon samples per series, and a
# bar partition per step of the horizon must close before it is scored (past these: gigabytes and years).
MAX_HORIZON = 1000
MAX_HISTORY_BARS = 20_000


@dataclass(frozen=True)
class TimeframeSettings:
    """One enabled timeframe: its name, parsed once into ``bar`` (length and bar arithmetic), the first day its
    partitions cover, the bars of history a forecast reads and its horizon in bars (the one horizon: the
    timeframe's ``Sampling`` is built from it, ``Settings.sampling_for``)."""

    name: str
    start: date
    history_bars: int
    horizon: int
    bar: Timeframe = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bar", Timeframe.parse(self.name))


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
    model_specs: dict[str, kinds.ModelSpec]  # every forecaster a profile may name, its options validated by its kind
    forecasters: tuple[str, ...]
    primary_model: str
    sampling: SamplingOptions  # the horizon is each timeframe's: sampling_for
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
    warehouse: WarehouseConfig = WarehouseConfig()  # profile's warehouse: (kronos_assets/warehouse/config.py)
    # profile's replay.* (market: replay): (symbol, timeframe, file) per series, who served the candles, and how
    # far before the data's end the replay clock of the schedules starts (market/replay.py)
    replay_files: tuple[tuple[str, str, Path], ...] = ()
    replay_exchange: str = "binance"
    replay_lead_days: float = 7.0
    retention_run_days: int = 14  # profile's retention.run_days: Dagster runs (and ticks) older than this are pruned
    retention_paths_days: int | None = None  # profile's retention.paths_days: scored forecasts' paths pruned past it

    @property
    def models(self) -> dict[str, Any]:
        """The models.yaml entries of the default kind (checkpoints: what training and ad-hoc forecasts start
        from), each as its kind's validated options."""
        return {k: m.options for k, m in self.model_specs.items() if m.kind == kinds.DEFAULT_KIND}

    @property
    def public_symbols(self) -> list[str] | None:
        """The series whose scores may appear in public files: the configured markets; uploaded markets are
        private unless the profile sets ``uploads.publish`` (None: every series in the warehouse)."""
        return None if self.uploads_publish else list(self.symbols)

    @property
    def synthetic(self) -> bool:
        return self.market == "synthetic"

    @property
    def replay(self) -> bool:
        """Real candles replayed from files, behind a replay clock (market/replay.py)."""
        return self.market == "replay"

    @property
    def replay_clock_file(self) -> Path:
        """Where the replay clock of the schedules is anchored (market/replay.py); delete it to restart the walk."""
        return self.profile_home / "replay_clock.json"

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
        return environment.uploads_dir(self.profile_home / "uploads")

    def open_warehouse(self) -> Warehouse:
        """The profile's warehouse: its file and its ``warehouse:`` back end (connections open as it is used)."""
        from kronos_assets.warehouse.core import Warehouse

        return Warehouse(self.warehouse_path, config=self.warehouse)

    def replay_market(self) -> ReplayMarket:
        """The replay market of a profile of market: replay (market/replay.py), its clock in the profile's home."""
        from kronos_assets.market.replay import ReplayFile, ReplayMarket

        return ReplayMarket(
            [ReplayFile(s, t, f) for s, t, f in self.replay_files],
            exchange=self.replay_exchange,
            clock_file=self.replay_clock_file,
            lead=timedelta(days=self.replay_lead_days),
        )

    def timeframe(self, name: str) -> TimeframeSettings:
        for tf in self.timeframes:
            if tf.name == name:
                return tf
        raise KeyError(f"timeframe {name!r} is not enabled in profile {self.profile!r}")

    def sampling_for(self, timeframe: str) -> Sampling:
        """The profile's sampling at the timeframe's horizon (markets.yaml: the one place a horizon is set)."""
        return self.sampling.for_horizon(self.timeframe(timeframe).horizon)


def symbol_key(symbol: str) -> str:
    """Partition key of a symbol: BTC/USDT -> BTC-USDT (slashes make poor paths and keys)."""
    return symbol.replace("/", "-")


def symbol_from_key(key: str) -> str:
    return key.replace("-", "/", 1)


# -- the files' schemas (configuration.Schema: unknown keys forbidden, whole numbers and flags strict) -----------
def _listed_once(what: str) -> Any:
    return AfterValidator(lambda items: list(no_repeats(items, what)))


def _some(what: str) -> Any:
    """At least one item: the graph is built per timeframe, a profile without one has nothing to run."""

    def check(items: Any) -> Any:
        if not items:
            raise problem(f"must list at least one {what}")
        return items

    return check


class _Timeframe(Schema):
    start: Day
    horizon: Whole(1, MAX_HORIZON)  # type: ignore[valid-type]
    history_bars: Whole(1, MAX_HISTORY_BARS)  # type: ignore[valid-type]

    @field_validator("start")
    @classmethod
    def _not_future(cls, start: date, info: ValidationInfo) -> date:
        if start > (info.context or {}).get("today", start):
            raise problem(f"{start} is in the future")
        return start

    @field_validator("history_bars")
    @classmethod
    def _longer_than_horizon(cls, history: int, info: ValidationInfo) -> int:
        horizon = info.data.get("horizon")
        if horizon is not None and history < horizon + 2:
            raise problem(f"must exceed the horizon ({horizon}) by at least 2")
        return history


def _http_url(value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and re.match(r"^https?://", value)):
        raise problem(f"must be an http(s) URL or null, got {value!r}")
    return value


class _Exchange(Schema):
    id: str
    base_url: Annotated[str | None, BeforeValidator(_http_url)] = None
    options: Annotated[dict[str, Any], BeforeValidator(lambda v: {} if v is None else v)] = {}  # ccxt's, unchecked


class _Fetch(Schema):
    """Wall-clock deadlines of one exchange request and of the whole fetch of a partition."""

    request_deadline_s: Number() = 30.0  # type: ignore[valid-type]
    fetch_deadline_s: Number() = 600.0  # type: ignore[valid-type]


class MarketsFile(Schema):
    symbols: Symbols
    timeframes: Annotated[dict[TimeframeName, _Timeframe], AfterValidator(_some("timeframe"))]
    exchanges: list[_Exchange]
    fetch: _Fetch = _Fetch()

    @field_validator("exchanges")
    @classmethod
    def _exchanges(cls, exchanges: list[_Exchange]) -> list[_Exchange]:
        if not exchanges:
            raise problem("needs at least one exchange")
        no_repeats([e.id for e in exchanges], "exchange")
        return exchanges


class _Sampling(Schema):
    n_paths: Whole(1, MAX_PATHS)  # type: ignore[valid-type]
    temperature: Number()  # type: ignore[valid-type]
    top_p: Number(high=1.0)  # type: ignore[valid-type]
    top_k: Whole(0)  # type: ignore[valid-type]  # 0 disables top-k
    seed: Whole(0)  # type: ignore[valid-type]


class ModelsFile(Schema):
    models: dict[str, dict[str, Any]]  # each entry is validated by its kind's schema
    sampling: _Sampling


class _Publish(Schema):
    backend: OneOf(PUBLISH_BACKENDS, "backend")  # type: ignore[valid-type]


class _Uploads(Schema):
    """Users' files: their scores public or not, bounded reading, and how many equal looks make a file stable."""

    publish: bool = False
    max_file_mb: Number() = 64.0  # type: ignore[valid-type]
    max_decompressed_mb: Number() = 64.0  # type: ignore[valid-type]
    stable_looks: Whole(1) = 2  # type: ignore[valid-type]


class _Retention(Schema):
    """How long the Dagster instance keeps runs and ticks (orchestration/retention.py); partition status stays.
    paths_days: how long the warehouse keeps scored forecasts' sample paths (warehouse/paths_retention.py);
    None: for ever. Forecasts, quantiles and scores stay whatever it says."""

    run_days: Whole(1, 3650) = 14  # type: ignore[valid-type]
    paths_days: Whole(1, 36500) | None = None  # type: ignore[valid-type]


class _Replay(Schema):
    """market: replay: one candle file per symbol and timeframe (paths relative to the repository root)."""

    exchange: str = "binance"  # who served the candles, stored with each bar
    lead_days: Number() = 7.0  # type: ignore[valid-type]
    files: dict[str, dict[TimeframeName, str]]


class ProfileFile(Schema):
    description: str | None = None
    market: OneOf(MARKET_SOURCES, "source")  # type: ignore[valid-type]
    replay: _Replay | None = None  # required by market: replay
    symbols: Symbols | None = None  # else markets.yaml's
    timeframes: Annotated[list[str], _listed_once("timeframe"), AfterValidator(_some("timeframe"))]
    forecasters: Annotated[list[str], _listed_once("forecaster")]
    primary_model: str
    publish: _Publish
    uploads: _Uploads = _Uploads()
    warehouse: WarehouseConfig = WarehouseConfig()  # the embedded file unless the profile says otherwise
    retention: _Retention = _Retention()


# -- loading ----------------------------------------------------------------------------------------------------
def _check_exchange_ids(path: Path, exchanges: tuple[ExchangeSettings, ...]) -> None:
    """Only for profiles that use ccxt: importing it takes a second or two."""
    import ccxt

    problems = Problems(path)
    for i, ex in enumerate(exchanges):
        if ex.id not in ccxt.exchanges:
            near = difflib.get_close_matches(ex.id, ccxt.exchanges, n=1)
            problems.add(
                ("exchanges", i, "id"),
                f"unknown exchange {ex.id!r}"
                + (f"; did you mean {near[0]!r}?" if near else "; see ccxt.exchanges for the ids"),
            )
    problems.check()


def load_models(path: Path) -> tuple[dict[str, kinds.ModelSpec], SamplingOptions]:
    """models.yaml: every forecaster a profile may name (the built-in baselines and each entry, read by its
    kind) and the sampling settings."""
    data = read_yaml(path)
    problems = Problems(path)
    try:
        file = validate(ModelsFile, data, path)
    except ConfigError as exc:
        problems.add_error(exc)
        file = None
    entries = file.models if file else data.get("models") if isinstance(data.get("models"), dict) else {}
    specs = dict(kinds.BUILTIN)
    for key, entry in entries.items():  # every entry read, so that all their problems are reported at once
        if key in BASELINES:
            problems.add(("models", key), "name is reserved for a baseline forecaster")
            continue
        if not isinstance(entry, dict):
            continue  # the schema's error says so
        entry = dict(entry)
        kind = entry.pop("kind", kinds.DEFAULT_KIND)
        if not isinstance(kind, str):
            problems.add(("models", key, "kind"), f"expected text, got {type(kind).__name__} {kind!r}")
            continue
        if kind not in kinds.KINDS:
            near = difflib.get_close_matches(kind, kinds.KINDS, n=1, cutoff=0.6)
            problems.add(
                ("models", key, "kind"),
                f"unknown kind {kind!r}; "
                + (f"did you mean {near[0]!r}?" if near else f"known: {', '.join(kinds.KINDS)}"),
            )
            continue
        k = kinds.KINDS[kind]
        try:
            specs[key] = kinds.ModelSpec(key, kind, k.parse(key, entry, REPO_ROOT))
        except ValidationError as exc:
            problems.add_error(config_error(path, exc, k.schema(entry), entry, ("models", key)))
        except ConfigError as exc:
            problems.add_error(exc)
    problems.check()
    assert file is not None  # no problem, so the schema validated
    s = file.sampling
    return specs, SamplingOptions(s.n_paths, s.temperature, s.top_p, s.top_k, s.seed)


def load_settings(
    profile: str | None = None,
    config_dir: str | Path | None = None,
    home: str | Path | None = None,
    today: date | None = None,
) -> Settings:
    profile = profile or environment.profile()
    config_dir = Path(config_dir) if config_dir else environment.config_dir()
    home = Path(home).expanduser().resolve() if home else environment.home()
    today = today or datetime.now(timezone.utc).date()
    if profile not in PROFILES:
        raise ConfigError(f"{environment.PROFILE}: unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")

    markets_path = config_dir / "markets.yaml"
    markets = validate(MarketsFile, read_yaml(markets_path), markets_path, context={"today": today})
    models_path = config_dir / "models.yaml"
    models, sampling = load_models(models_path)  # built-in baselines and every models.yaml entry
    profile_path = config_dir / "profiles" / f"{profile}.yaml"
    raw = read_yaml(profile_path)
    problems = Problems(profile_path)  # every problem of the profile at once: the schema's and the references'
    try:
        p = validate(ProfileFile, raw, profile_path)
    except ConfigError as exc:
        problems.add_error(exc)
    listed = {
        k: [v for v in raw.get(k) or () if isinstance(v, str)] if isinstance(raw.get(k), list) else []
        for k in ("timeframes", "forecasters")
    }  # what the references can be checked on, valid or not
    for i, name in enumerate(listed["timeframes"]):
        if name not in markets.timeframes:
            problems.add(("timeframes", i), f"{name!r} is not defined in {markets_path}")
    for i, name in enumerate(listed["forecasters"]):
        if name not in models:
            near = difflib.get_close_matches(name, list(models), n=1, cutoff=0.6)
            problems.add(
                ("forecasters", i),
                f"unknown forecaster {name!r}: not a baseline nor in {models_path}"
                + (f"; did you mean {near[0]!r}?" if near else ""),
            )
    primary = raw.get("primary_model")
    if isinstance(primary, str) and listed["forecasters"] and primary not in listed["forecasters"]:
        problems.add(("primary_model",), f"{primary!r} must be one of the profile's forecasters")
    problems.check()
    _check_contexts(markets_path, markets, p.timeframes, {n: models[n] for n in p.forecasters})
    exchanges = tuple(ExchangeSettings(e.id, e.base_url, e.options) for e in markets.exchanges)
    symbols = p.symbols or markets.symbols
    replay_files = _replay_files(profile_path, p, symbols) if p.market == "replay" else ()
    if p.market == "ccxt":
        _check_exchange_ids(markets_path, exchanges)
    return Settings(
        profile=profile,
        description=p.description or profile,
        market=p.market,
        symbols=symbols,
        timeframes=tuple(
            TimeframeSettings(n, *(getattr(markets.timeframes[n], f) for f in ("start", "history_bars", "horizon")))
            for n in p.timeframes
        ),
        exchanges=exchanges,
        model_specs=models,
        forecasters=tuple(p.forecasters),
        primary_model=p.primary_model,
        sampling=sampling,
        publish_backend=p.publish.backend,
        home=home,
        config_dir=config_dir,
        uploads_publish=p.uploads.publish,
        upload_max_file_mb=p.uploads.max_file_mb,
        upload_max_decompressed_mb=p.uploads.max_decompressed_mb,
        upload_stable_looks=p.uploads.stable_looks,
        request_deadline_s=markets.fetch.request_deadline_s,
        fetch_deadline_s=markets.fetch.fetch_deadline_s,
        warehouse=p.warehouse,
        replay_files=replay_files,
        replay_exchange=p.replay.exchange if p.replay else "binance",
        replay_lead_days=p.replay.lead_days if p.replay else 7.0,
        retention_run_days=p.retention.run_days,
        retention_paths_days=p.retention.paths_days,
    )


def _check_contexts(
    path: Path, markets: MarketsFile, timeframes: list[str], forecasters: dict[str, kinds.ModelSpec]
) -> None:
    """A timeframe's history_bars within the context of every model the profile forecasts with (more history
    than a model reads would fail in every forecast run, not here)."""
    problems = Problems(path)
    for tf in timeframes:
        for name, spec in forecasters.items():
            context = getattr(spec.options, "max_context", None)
            history = markets.timeframes[tf].history_bars
            if context is not None and history > context:
                problems.add(
                    ("timeframes", tf, "history_bars"),
                    f"{history} is above the context of forecaster "
                    f"{name!r} (max_context {context} in models.yaml); use at most {context}",
                )
    problems.check()


def _replay_files(path: Path, p: ProfileFile, symbols: tuple[str, ...]) -> tuple[tuple[str, str, Path], ...]:
    """market: replay: every configured symbol and timeframe has a file that exists."""
    if p.replay is None:
        raise fail(path, ("replay",), "missing: market replay needs replay.files (symbol -> timeframe -> file)")
    out, problems = [], Problems(path)
    for symbol in symbols:
        for tf in p.timeframes:
            name = p.replay.files.get(symbol, {}).get(tf)
            if name is None:
                problems.add(
                    ("replay", "files", symbol, tf),
                    "missing: every symbol and timeframe of the profile needs a replay file",
                )
                continue
            file = Path(name) if Path(name).is_absolute() else REPO_ROOT / name
            if not file.is_file():
                problems.add(("replay", "files", symbol, tf), f"file not found: {file}")
            out.append((symbol, tf, file))
    problems.check()
    return tuple(out)
