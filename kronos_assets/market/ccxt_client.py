"""One ccxt client of the exchange chain: spot-only, pointed at its base URL, every request under a deadline,
every kline answer checked against the exchange's dialect before ccxt reads it, quote volume kept."""

from __future__ import annotations

import copy
import re
from typing import Any, Mapping

import ccxt

from kronos_assets.market import deadline
from kronos_assets.market.dialects import dialect_for
from kronos_assets.market.fetch_config import CcxtSourceConfig, ExchangeConfig
from kronos_assets.market.payloads import RawRowError, check_kline_answer, quote_volume

# ccxt options that restrict market loading to spot and skip signed currency/margin lookups.
SPOT_OPTIONS: dict[str, Any] = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}


def make_client_class(base: type) -> type:
    """A subclass of a ccxt exchange class that counts requests, remembers the last status, URL and headers,
    checks every kline answer before ccxt reads it and keeps the quote volume of each raw kline row."""

    def fetch(self, url, method="GET", headers=None, body=None):
        self._k_requests += 1
        self._k_status = None
        self._k_headers = None
        self._k_url = f"{method} {url}"
        result = base.fetch(self, url, method, headers, body)
        if url.split("?", 1)[0].endswith(dialect_for(self.id).kline_paths):
            check_kline_answer(self.id, result)
        return result

    def on_rest_response(
        self, code, reason, url, method, response_headers, response_body, request_headers, request_body
    ):
        self._k_status = int(code) if code is not None else None
        self._k_headers = dict(response_headers or {})
        return base.on_rest_response(
            self, code, reason, url, method, response_headers, response_body, request_headers, request_body
        )

    def parse_ohlcv(self, ohlcv, market=None):
        if not isinstance(ohlcv, (list, tuple)) or len(ohlcv) < 6:
            raise RawRowError(f"kline row {str(ohlcv)[:80]!r} is not an array of at least 6 fields")
        return list(base.parse_ohlcv(self, ohlcv, market))[:6] + [quote_volume(self.id, ohlcv)]

    return type(
        f"Kronos_{base.__name__}",
        (base,),
        {
            "fetch": fetch,
            "on_rest_response": on_rest_response,
            "parse_ohlcv": parse_ohlcv,
            "_k_requests": 0,
            "_k_status": None,
            "_k_headers": None,
            "_k_url": None,
        },
    )


_HOST = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*")


def rebase_urls(urls: Any, base_url: str) -> Any:
    """Every URL string under ``urls`` with its scheme and host replaced by ``base_url`` (paths kept)."""
    base_url = base_url.rstrip("/")
    if isinstance(urls, str):
        return _HOST.sub(lambda _m: base_url, urls, count=1) if _HOST.match(urls) else urls
    if isinstance(urls, dict):
        return {k: rebase_urls(v, base_url) for k, v in urls.items()}
    if isinstance(urls, list):
        return [rebase_urls(v, base_url) for v in urls]
    return urls


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class ExchangeClient:
    """One ccxt client of the chain and its per-source state."""

    def __init__(self, cfg: ExchangeConfig, source_cfg: CcxtSourceConfig):
        self.cfg = cfg
        self.id = cfg.id
        self.dialect = dialect = dialect_for(cfg.id)
        klass = make_client_class(getattr(ccxt, cfg.id))
        settings: dict[str, Any] = {"timeout": source_cfg.timeout_ms, "enableRateLimit": source_cfg.enable_rate_limit}
        settings.update(copy.deepcopy(cfg.config))
        settings["options"] = deep_merge(deep_merge(SPOT_OPTIONS, dialect.options), cfg.options)
        self.client = klass(settings)
        self.client.enableLastJsonResponse = True
        if cfg.base_url:
            self.client.urls["api"] = rebase_urls(self.client.urls["api"], cfg.base_url)
        self.adapter = deadline.install(self.client, source_cfg.request_deadline_s)
        self.page_limit = cfg.page_limit or dialect.page_limit
        self.markets_loaded = False

    @property
    def requests(self) -> int:
        return self.client._k_requests

    @property
    def status(self) -> int | None:
        return self.client._k_status

    @property
    def headers(self) -> dict[str, str] | None:
        return self.client._k_headers

    @property
    def last_request(self) -> str:
        return self.client._k_url or f"{self.id} (no request sent)"

    def close(self) -> None:
        session = getattr(self.client, "session", None)
        if session is not None:
            session.close()
