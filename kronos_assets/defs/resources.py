"""The resources a profile runs with: warehouse, market source, forecasters and the publishing store."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from kronos_assets.defs.uploads import read_limits
from kronos_assets.forecasting.registry import ForecasterRegistry
from kronos_assets.market.files import FileSource
from kronos_assets.market.synthetic import SyntheticMarket
from kronos_assets.publishing.backend import open_store
from kronos_assets.publishing.r2 import KEY_ID_VAR, MAX_ATTEMPTS, SECRET_VAR, R2Config, R2ConfigError, S3Store
from kronos_assets.settings import ConfigError, Settings
from kronos_assets.warehouse import Warehouse

SYNTHETIC_SEED = 7


def market_source(settings: Settings) -> Any:
    if settings.market == "synthetic":
        return SyntheticMarket(seed=SYNTHETIC_SEED)
    from kronos_assets.market.ccxt_source import CcxtSource  # imported lazily: ccxt is slow to import

    return CcxtSource.from_settings(settings.exchanges, request_deadline_s=settings.request_deadline_s,
                                    fetch_deadline_s=settings.fetch_deadline_s)


def r2_resource(config: R2Config, max_attempts: int = MAX_ATTEMPTS) -> S3Resource:
    """dagster-aws's S3 resource for the bucket: custom endpoint, region ``auto``, credentials as EnvVars."""
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
    return S3Store(lambda: resource.process_config_and_initialize().get_client(), config.bucket,
                   config.public_base, config.endpoint_url)


def publishing_store(settings: Settings) -> Any:
    """The local folder, or the R2 bucket when the profile's publish.backend and the R2_* variables say so."""
    try:
        return open_store(settings.publish_backend, settings.publish_dir, r2_store)
    except R2ConfigError as exc:
        profile_file = settings.config_dir / "profiles" / f"{settings.profile}.yaml"
        raise ConfigError(f"{profile_file}: {exc}") from None


def build_resources(settings: Settings) -> dict[str, Any]:
    return {
        "warehouse": Warehouse(settings.warehouse_path),
        "market": market_source(settings),
        "uploads": FileSource(settings.uploads_dir, read_limits(settings)),
        "forecasters": ForecasterRegistry.from_specs(settings.model_specs),
        "store": publishing_store(settings),
    }
