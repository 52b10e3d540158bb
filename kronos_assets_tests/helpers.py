"""Test helpers: a small configuration written to a temporary folder, and definitions built on it."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from kronos_assets.configuration.settings import REPO_ROOT, Settings, load_settings

SMALL_MARKETS = {
    "symbols": ["BTC/USDT", "ETH/USDT"],
    "timeframes": {
        "1h": {"start": "2024-01-01", "history_bars": 64, "horizon": 6},
        "4h": {"start": "2023-06-01", "history_bars": 48, "horizon": 4},
    },
    "exchanges": [{"id": "binance", "base_url": None, "options": {}}],
}


def write_configs(
    root: Path, markets: dict[str, Any] | None = None, profile: dict[str, Any] | None = None, profile_name: str = "demo"
) -> Path:
    """A config folder: the repository's models.yaml, a small markets.yaml and a demo profile."""
    cfg = root / "configs"
    (cfg / "profiles").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "configs" / "models.yaml", cfg / "models.yaml")
    (cfg / "markets.yaml").write_text(yaml.safe_dump(markets or SMALL_MARKETS))
    prof = {
        "description": "test",
        "market": "synthetic",
        "symbols": ["BTC/USDT", "ETH/USDT"],
        "timeframes": ["1h"],
        "forecasters": ["random_walk", "random_walk_vol"],
        "primary_model": "random_walk_vol",
        "publish": {"backend": "local"},
    }
    prof.update(profile or {})
    (cfg / "profiles" / f"{profile_name}.yaml").write_text(yaml.safe_dump(prof))
    return cfg


def small_settings(root: Path, today: date = date(2026, 11, 21), **profile: Any) -> Settings:
    return load_settings("demo", config_dir=write_configs(root, profile=profile), home=root / "home", today=today)


def published_snapshot(folder: Path, symbol: str = "BTC/USDT", timeframe: str = "1h") -> dict[str, Any]:
    """A series' published latest.json as the snapshot it was written from: its forecasts from the history file it
    links to (``publishing.latest``)."""
    from kronos_assets.publishing.latest import stored_snapshot
    from kronos_assets.publishing.store import LocalStore

    snap = stored_snapshot(LocalStore(folder), symbol, timeframe)
    assert snap is not None, f"no readable latest.json for {symbol} {timeframe} under {folder}"
    return dict(snap)
