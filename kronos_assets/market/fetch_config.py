"""Configuration of the live source: the exchange chain and the fault policy shared by its exchanges."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import ccxt

from kronos_assets.market.retry import RetryPolicy


@dataclass
class ExchangeConfig:
    """One exchange of the chain.

    id:         ccxt exchange id ("binance", "okx", "bybit", ...).
    base_url:   replaces scheme and host of every API URL of the exchange (paths kept), e.g.
                "http://127.0.0.1:8080"; None keeps ccxt's URLs.
    options:    ccxt ``options``, deep-merged over SPOT_OPTIONS (yours win).
    config:     other ccxt constructor settings (apiKey, secret, proxies, enableRateLimit, rateLimit, ...).
    page_limit: bars per request; default the page limit of its dialect (market.dialects).
    """

    id: str
    base_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    page_limit: int | None = None

    @classmethod
    def from_mapping(cls, value: "ExchangeConfig | Mapping[str, Any] | str") -> "ExchangeConfig":
        if isinstance(value, ExchangeConfig):
            return value
        if isinstance(value, str):
            return cls(id=value)
        _reject_unknown(cls, value, "exchange")
        data = dict(value)
        data["options"] = dict(data.get("options") or {})
        data["config"] = dict(data.get("config") or {})
        return cls(**data)


@dataclass
class CcxtSourceConfig:
    """The live source: the exchange chain (tried in order) and the fault policy shared by all exchanges."""

    exchanges: list[ExchangeConfig]
    timeout_ms: int = 10_000
    max_retries: int = 4
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    max_gap_requests: int = 10
    enable_rate_limit: bool = True  # ccxt's client-side throttle
    request_deadline_s: float = 30.0  # wall clock per HTTP request: connect + headers + body
    fetch_deadline_s: float = 600.0  # wall clock per fetch call (a run's consecutive day partitions), waits included

    @classmethod
    def from_mapping(cls, value: "CcxtSourceConfig | Mapping[str, Any]") -> "CcxtSourceConfig":
        if isinstance(value, CcxtSourceConfig):
            return value
        _reject_unknown(cls, value, "ccxt source")
        data = dict(value)
        data["exchanges"] = [ExchangeConfig.from_mapping(e) for e in data.get("exchanges") or []]
        return cls(**data)

    def __post_init__(self) -> None:
        self.exchanges = [ExchangeConfig.from_mapping(e) for e in self.exchanges]
        if not self.exchanges:
            raise ValueError("ccxt source: at least one exchange is required")
        for ex in self.exchanges:
            if not hasattr(ccxt, ex.id) or ex.id not in ccxt.exchanges:
                raise ValueError(f"ccxt source: unknown ccxt exchange id {ex.id!r}")
            if ex.page_limit is not None and ex.page_limit < 1:
                raise ValueError(f"ccxt source: page_limit of {ex.id} must be positive")
        if self.max_retries < 0 or self.max_gap_requests < 0:
            raise ValueError("ccxt source: max_retries and max_gap_requests must be >= 0")
        if not (self.request_deadline_s > 0 and self.fetch_deadline_s > 0):
            raise ValueError("ccxt source: request_deadline_s and fetch_deadline_s must be positive")

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_retries, self.backoff_s, self.backoff_max_s, self.max_retry_after_s)


def _reject_unknown(cls: type, value: Mapping[str, Any], what: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"{what} config: unknown keys {unknown}; known: {sorted(known)}")
