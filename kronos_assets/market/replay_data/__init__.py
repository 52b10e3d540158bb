"""The real candles the demo profile replays: Binance spot BTC/USDT and ETH/USDT 1h from 2024-01-01, gzip CSV,
cut from ../shared/data/candles by ``build.py`` (rerunnable, byte-identical output); provenance in SOURCES.md.

Data only: this package holds files, the replay source is ``kronos_assets.market.replay``.
"""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
