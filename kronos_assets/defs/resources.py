"""The resources a profile runs with: warehouse, market source, uploads folder, forecasters and publishing store.

Each is a thin ``dg.ConfigurableResource``: config fields (what the profile says, visible in the UI) and the one
library object they build, which Dagster hands to the assets (``ResourceParam[Warehouse]`` and
``context.resources.warehouse`` both get the Warehouse: ``create_resource``). Secrets are never fields: the R2 keys
reach the S3 client as ``EnvVar``s (``r2_resource``). A plain object passed as a resource (a test's fake) is used
as it is; ``library`` gives the object behind either.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from datetime import timedelta
from pathlib import Path
from threading import Lock
from typing import TYPE_CHECKING, Any, ClassVar

import dagster as dg

from kronos_assets.configuration.settings import ConfigError, Settings, load_models
from kronos_assets.defs.uploads import read_limits
from kronos_assets.forecasting.registry import ForecasterRegistry
from kronos_assets.market.files import FileSource, ReadLimits
from kronos_assets.market.replay import ReplayFile, ReplayMarket
from kronos_assets.publishing.backend import open_store
from kronos_assets.publishing.r2 import KEY_ID_VAR, MAX_ATTEMPTS, SECRET_VAR, R2Config, R2ConfigError, S3Store
from kronos_assets.warehouse import Warehouse, WarehouseConfig

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource

SYNTHETIC_SEED = 7
_BUILT: OrderedDict[str, Any] = OrderedDict()  # config -> object, so a model is loaded once per process
_BUILT_MAX = 16
_built_lock = Lock()


class LibraryResource(dg.ConfigurableResource):
    """A resource whose value is a library object built from its config fields (``build``). Objects that hold
    something costly (a loaded model, a DuckLake attachment, exchange clients) are built once per process and
    config and shared by every run, as a single object was before."""

    shared: ClassVar[bool] = True  # one object per process and config; False: one per run (cheap, holds nothing)

    def build(self) -> Any:
        raise NotImplementedError

    def get(self) -> Any:
        if not self.shared:
            return self.build()
        key = f"{type(self).__name__}:{self.model_dump_json()}"
        with _built_lock:
            if key in _BUILT:
                _BUILT.move_to_end(key)
                return _BUILT[key]
        obj = self.build()
        with _built_lock:
            obj = _BUILT.setdefault(key, obj)
            while len(_BUILT) > _BUILT_MAX:
                _BUILT.popitem(last=False)
        return obj

    def create_resource(self, context: dg.InitResourceContext) -> Any:
        return self.get()


def library(resource: Any) -> Any:
    """The object behind a resource: a LibraryResource's, or a plain object (a test's fake) as it is."""
    return resource.get() if isinstance(resource, LibraryResource) else resource


class WarehouseResource(LibraryResource):
    """The profile's warehouse: its file and its back end (the profile's ``warehouse:`` section, as JSON)."""

    path: str
    backend: str = "{}"

    def build(self) -> Warehouse:
        return Warehouse(self.path, config=WarehouseConfig.model_validate_json(self.backend))


class MarketResource(LibraryResource):
    """Where candles come from: the synthetic market, a replay of real candle files, or ccxt's exchanges tried
    in order."""

    source: str  # synthetic | replay | ccxt
    exchanges: str = "[]"  # JSON list of {id, base_url, options} (ccxt options are free-form)
    request_deadline_s: float = 30.0
    fetch_deadline_s: float = 600.0
    replay_files: str = "[]"  # JSON list of [symbol, timeframe, path] (market: replay)
    replay_exchange: str = "binance"
    replay_clock_file: str = ""
    replay_lead_days: float = 7.0

    def build(self) -> Any:
        if self.source == "synthetic":
            from kronos_assets.market.synthetic import SyntheticMarket  # scipy: only the synthetic market needs it

            return SyntheticMarket(seed=SYNTHETIC_SEED)
        if self.source == "replay":
            return ReplayMarket(
                [ReplayFile(s, t, Path(f)) for s, t, f in json.loads(self.replay_files)],
                exchange=self.replay_exchange,
                clock_file=Path(self.replay_clock_file),
                lead=timedelta(days=self.replay_lead_days),
            )
        from kronos_assets.market.ccxt_source import CcxtSource  # imported lazily: ccxt is slow to import

        return CcxtSource.from_settings(
            json.loads(self.exchanges),
            request_deadline_s=self.request_deadline_s,
            fetch_deadline_s=self.fetch_deadline_s,
        )


class UploadsResource(LibraryResource):
    """The watched folder of users' candle files, read within the profile's limits."""

    folder: str
    max_file_bytes: int
    max_decompressed_bytes: int

    def build(self) -> FileSource:
        return FileSource(self.folder, ReadLimits(self.max_file_bytes, self.max_decompressed_bytes))


class ForecastersResource(LibraryResource):
    """Every forecaster models.yaml configures (and the built-in baselines), each loaded when a run first asks."""

    models_file: str
    # The file's sha256: part of the per-process cache key, so an edited models.yaml (a new window, checkpoint or
    # pin) gets forecasters built from it, never ones cached from its previous content.
    models_sha256: str = ""

    def build(self) -> ForecasterRegistry:
        return ForecasterRegistry.from_specs(load_models(Path(self.models_file))[0])


class StoreResource(LibraryResource):
    """The local publish folder, or the R2 bucket when publish.backend and the R2_* variables say so (read when
    the store is built; the keys only by the S3 client, as EnvVars)."""

    backend: str  # local | r2 | auto
    folder: str
    profile_file: str  # named in a configuration error
    shared: ClassVar[bool] = False

    def build(self) -> Any:
        try:
            return open_store(self.backend, self.folder, r2_store)
        except R2ConfigError as exc:
            raise ConfigError(f"{self.profile_file}: {exc}") from None


def r2_resource(config: R2Config, max_attempts: int = MAX_ATTEMPTS) -> S3Resource:
    """dagster-aws's S3 resource for the bucket: custom endpoint, region ``auto``, credentials as EnvVars."""
    from dagster_aws.s3 import S3Resource  # imported for R2 only: ~1 s of every process start otherwise

    return S3Resource(
        endpoint_url=config.endpoint_url,
        region_name="auto",
        aws_access_key_id=dg.EnvVar(KEY_ID_VAR),
        aws_secret_access_key=dg.EnvVar(SECRET_VAR),
        max_attempts=max_attempts,
    )


def r2_store(config: R2Config) -> S3Store:
    """The bucket as a store; its client comes from ``r2_resource``, built (credentials resolved) at first use."""
    resource = r2_resource(config)
    return S3Store(
        lambda: resource.process_config_and_initialize().get_client(),
        config.bucket,
        config.public_base,
        config.endpoint_url,
    )


def build_resources(settings: Settings) -> dict[str, LibraryResource]:
    """The profile's resources. The store is built once here too, so a misconfigured publish target fails when
    the code location loads, not halfway through a run."""
    limits = read_limits(settings)
    resources: dict[str, LibraryResource] = {
        "warehouse": WarehouseResource(path=str(settings.warehouse_path), backend=settings.warehouse.model_dump_json()),
        "market": MarketResource(
            source=settings.market,
            request_deadline_s=settings.request_deadline_s,
            fetch_deadline_s=settings.fetch_deadline_s,
            replay_files=json.dumps([[s, t, str(f)] for s, t, f in settings.replay_files]),
            replay_exchange=settings.replay_exchange,
            replay_clock_file=str(settings.replay_clock_file),
            replay_lead_days=settings.replay_lead_days,
            exchanges=json.dumps(
                [
                    {k: v for k, v in (("id", e.id), ("base_url", e.base_url), ("options", e.options)) if v is not None}
                    for e in settings.exchanges
                ]
            ),
        ),
        "uploads": UploadsResource(
            folder=str(settings.uploads_dir),
            max_file_bytes=limits.max_file_bytes,
            max_decompressed_bytes=limits.max_decompressed_bytes,
        ),
        "forecasters": ForecastersResource(
            models_file=str(settings.config_dir / "models.yaml"),
            models_sha256=hashlib.sha256((settings.config_dir / "models.yaml").read_bytes()).hexdigest(),
        ),
        "store": StoreResource(
            backend=settings.publish_backend,
            folder=str(settings.publish_dir),
            profile_file=str(settings.config_dir / "profiles" / f"{settings.profile}.yaml"),
        ),
    }
    resources["store"].get()
    return resources
