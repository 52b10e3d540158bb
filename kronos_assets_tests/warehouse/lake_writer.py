"""A writer process for the DuckLake tests: replaces one symbol's raw candles by ``rows`` bars tagged ``tag``.

python -m kronos_assets_tests.warehouse.lake_writer CONFIG_JSON SYMBOL TAG ROWS HOME [--announce-commit] [--merge]
With --announce-commit it prints COMMIT (flushed) right before each commit, so the test can kill -9 it there.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl

from kronos_assets.warehouse import Warehouse, WarehouseConfig, core

START = datetime(2025, 1, 1, tzinfo=timezone.utc)


def candles(symbol: str, tag: str, rows: int) -> pl.DataFrame:
    """``rows`` hourly bars of ``symbol``; ``exchange`` carries the writer's tag so mixed versions show."""
    return pl.DataFrame(
        {
            "symbol": [symbol] * rows,
            "timeframe": ["1h"] * rows,
            "ts": [START + timedelta(hours=i) for i in range(rows)],
            "open": [float(i) for i in range(rows)],
            "high": [i + 1.0 for i in range(rows)],
            "low": [i - 1.0 for i in range(rows)],
            "close": [i + 0.5 for i in range(rows)],
            "volume": [10.0] * rows,
            "amount": [None] * rows,
            "exchange": [tag] * rows,
        },
        schema_overrides={"amount": pl.Float64, "ts": pl.Datetime("us", "UTC")},
    )


def write(wh: Warehouse, symbol: str, tag: str, rows: int, merge: bool = False) -> None:
    """The partition write the assets make: replace the symbol's rows, or (raw candles) merge them by bar."""
    if merge:
        wh.merge("raw_candles", candles(symbol, tag, rows), ["symbol", "timeframe", "ts"])
    else:
        wh.replace("raw_candles", candles(symbol, tag, rows), "symbol = ?", [symbol])


def main(argv: list[str]) -> None:
    config = WarehouseConfig.model_validate_json(argv[0])
    symbol, tag, rows = argv[1], argv[2], int(argv[3])
    if "--announce-commit" in argv:
        real = core._commit

        def announced(con):
            print("COMMIT", flush=True)
            real(con)

        core._commit = announced
    wh = Warehouse(Path(argv[4]) / "warehouse.duckdb", config=config)  # the folder keeps the extensions
    write(wh, symbol, tag, rows, merge="--merge" in argv)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
