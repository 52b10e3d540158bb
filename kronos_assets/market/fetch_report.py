"""What one fetch of the live source did, and how it fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from kronos_assets.market.gaps import Gap


@dataclass
class FetchReport:
    """What one fetch did. ``gaps`` are the bars still missing, as half-open ranges of open times."""

    symbol: str
    timeframe: str
    start: datetime
    end: datetime  # effective end: min(requested end, open time of the forming bar)
    now: datetime
    rows: int = 0
    requests: int = 0  # every HTTP request made (markets, pages, retries, gap re-requests)
    page_requests: int = 0  # OHLCV requests of the main pass, retries excluded
    gap_requests: int = 0  # OHLCV requests spent re-requesting gaps, retries excluded
    retries: int = 0
    requests_by_exchange: dict[str, int] = field(default_factory=dict)
    rows_by_exchange: dict[str, int] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    gaps_refilled: int = 0  # bars recovered by gap re-requests
    events: list[str] = field(default_factory=list)  # retries, fallbacks, give-ups, in order

    @property
    def exchanges_used(self) -> list[str]:
        return [k for k, v in self.rows_by_exchange.items() if v]

    @property
    def missing_bars(self) -> int:
        return sum(g.bars for g in self.gaps)

    @property
    def complete(self) -> bool:
        return not self.gaps

    def gap_ranges(self) -> list[tuple[datetime, datetime]]:
        return [g.as_tuple() for g in self.gaps]

    def to_metadata(self) -> dict[str, Any]:
        """Plain JSON-able summary (for asset/check metadata)."""
        return {
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "requests": self.requests,
            "page_requests": self.page_requests,
            "gap_requests": self.gap_requests,
            "retries": self.retries,
            "requests_by_exchange": dict(self.requests_by_exchange),
            "rows_by_exchange": dict(self.rows_by_exchange),
            "missing_bars": self.missing_bars,
            "gaps": [[g.start.isoformat(), g.end.isoformat(), g.bars] for g in self.gaps],
            "events": list(self.events[-50:]),
        }


@dataclass
class FetchResult:
    candles: pl.DataFrame
    report: FetchReport


class FetchError(RuntimeError):
    """No exchange of the chain could serve a request window; ``report`` tells what was tried."""

    def __init__(self, message: str, report: FetchReport | None = None):
        super().__init__(message)
        self.report = report


class MalformedPayloadError(FetchError):
    """An exchange answered 2xx with a body that is not what its API promises."""

    def __init__(self, exchange: str, request: str, problem: str, report: FetchReport | None = None):
        super().__init__(f"{exchange}: malformed payload for {request}: {problem}", report)
        self.exchange = exchange
        self.request = request
        self.problem = problem
