"""The resources a profile runs with: warehouse, market source, forecasters and the publishing store."""

from __future__ import annotations

from typing import Any

from kronos_assets.forecasting.registry import ForecasterRegistry
from kronos_assets.market.files import FileSource
from kronos_assets.market.synthetic import SyntheticMarket
from kronos_assets.publishing.store import LocalStore
from kronos_assets.settings import Settings
from kronos_assets.warehouse import Warehouse

SYNTHETIC_SEED = 7


def market_source(settings: Settings) -> Any:
    if settings.market == "synthetic":
        return SyntheticMarket(seed=SYNTHETIC_SEED)
    from kronos_assets.market.ccxt_source import CcxtSource  # imported lazily: ccxt is slow to import

    return CcxtSource.from_settings(settings.exchanges)


def publishing_store(settings: Settings) -> Any:
    return LocalStore(settings.publish_dir)


def build_resources(settings: Settings) -> dict[str, Any]:
    return {
        "warehouse": Warehouse(settings.warehouse_path),
        "market": market_source(settings),
        "uploads": FileSource(settings.uploads_dir),
        "forecasters": ForecasterRegistry(),
        "store": publishing_store(settings),
    }
