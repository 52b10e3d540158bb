"""What a candle source promises: closed bars of one series over a half-open window of open times."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import polars as pl


class CandleSource(Protocol):
    name: str

    def fetch(self, symbol: str, timeframe: str, start: datetime, end: datetime, now: datetime) -> pl.DataFrame:
        """Candle frame (market.schema) of the bars with open time in [start, end) that closed by ``now``.

        A bar still forming at ``now`` is never returned. Raises on failure; never returns a partial window
        without saying so (a source that cannot fill a gap reports it, it does not invent bars).
        """
        ...
