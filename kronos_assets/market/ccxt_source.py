"""Live candles through ccxt: a chain of spot exchanges, paginated, retried, deduplicated, gaps accounted for.

How one ``fetch(symbol, timeframe, start, end, now)`` runs:

* The window is the bars with open time in ``[start, end)`` that have closed by ``now``; the bar forming at
  ``now`` is never requested and never returned.
* The window is walked in request windows of at most ``page_limit`` bars (Binance 1000, Bybit 1000, OKX 100 by
  default). Each request window goes to the exchanges of the chain in order; the first that answers serves it,
  and every bar records who served it in the ``exchange`` column. Rows outside the request window (overlapping
  pages, the forming bar) and repeated rows are dropped. A window that comes back short at its tail moves the
  next window's start to just after the last bar received, so a page cap smaller than asked costs no bars.
* Every HTTP request has a wall-clock deadline (``request_deadline_s``, default 30 s) covering connect, headers
  and body; the whole fetch has one too (``fetch_deadline_s``), past which it raises ``FetchError``.
* Faults per request: 429/418 wait ``Retry-After`` (or the backoff) and retry; 5xx, 408, timeouts (the request
  deadline included), connection resets and bodies that are not JSON (a connection cut mid-body) back off
  exponentially and retry; after ``max_retries`` retries the window goes to the next exchange.
  A Retry-After longer than ``max_retry_after_s`` (a ban), a bad symbol, a non-spot market, 451 and other 4xx
  give the exchange up for the rest of this fetch, and so do two windows in a row with retries exhausted.
  When no exchange can serve a window, ``FetchError`` is raised naming each exchange with its cause: a fetch
  never returns a partial window silently.
* A malformed payload is a fault of that exchange, handed to the next one: a body of the wrong shape (an error
  object without ``code`` is quoted), a kline row without the exact field count and types of that exchange's
  format, unparsable numbers, broken OHLC, off-grid times, two different rows for one open time, and a page
  that does not advance (bars before the requested start, or only bars outside the requested window).
* Missing bars are re-requested (each gap from every exchange of the chain, at most ``max_gap_requests``
  requests per fetch); what stays missing is reported in ``FetchReport.gaps``, never filled.
* ``amount`` is the quote-asset volume where the raw kline row has it (Binance field 7, OKX volCcyQuote,
  Bybit turnover), else null.

Not thread-safe: one ``CcxtSource`` per thread (ccxt clients are not thread-safe either).
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

import ccxt
import polars as pl

from kronos_assets.market import deadline
from kronos_assets.market.gaps import Gap, dt_to_ms, find_gaps, ms_to_dt
from kronos_assets.market.retry import Fault, RetryPolicy, classify, parse_retry_after
from kronos_assets.market.schema import CANDLE_SCHEMA, validate_candles
from kronos_assets.market.timeframes import timeframe_seconds

# Largest page each exchange's spot kline endpoint serves (OKX history-candles: 100).
DEFAULT_PAGE_LIMIT: dict[str, int] = {"binance": 1000, "okx": 100, "bybit": 1000}
FALLBACK_PAGE_LIMIT = 500
# Index of the quote-asset volume in a raw kline row, per exchange (list of candidates, first present wins).
QUOTE_VOLUME_INDEX: dict[str, tuple[int, ...]] = {"binance": (7,), "okx": (7, 6), "bybit": (6,)}
# An exchange that fails this many request windows in a row, retries exhausted each time, is given up for the
# rest of the fetch (a dead exchange must not cost a full backoff on every window).
EXHAUSTED_WINDOWS_TO_DISABLE = 2
# ccxt options that restrict market loading to spot and skip signed currency/margin lookups.
SPOT_OPTIONS: dict[str, Any] = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}


# --------------------------------------------------------------------------------------------------- config


@dataclass
class ExchangeConfig:
    """One exchange of the chain.

    id:         ccxt exchange id ("binance", "okx", "bybit", ...).
    base_url:   replaces scheme and host of every API URL of the exchange (paths kept), e.g.
                "http://127.0.0.1:8080"; None keeps ccxt's URLs.
    options:    ccxt ``options``, deep-merged over SPOT_OPTIONS (yours win).
    config:     other ccxt constructor settings (apiKey, secret, proxies, enableRateLimit, rateLimit, ...).
    page_limit: bars per request; default DEFAULT_PAGE_LIMIT[id] or 500.
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


# --------------------------------------------------------------------------------------------------- results


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


# --------------------------------------------------------------------------------------------------- ccxt glue


class _RawRowError(Exception):
    pass


class _PayloadFault(Exception):
    """A 2xx kline answer that is not what the exchange's API promises. ``transient``: the body is not JSON at
    all (a cut connection, a proxy page): worth a retry. Otherwise the next exchange is asked."""

    def __init__(self, problem: str, transient: bool):
        super().__init__(problem)
        self.transient = transient


# Each exchange's raw kline row, field by field: "ms" an integer time in ms, "ms_text" the same as a digit
# string, "num" a decimal string, "int" an integer count, "flag" "0"/"1", "any" not read.
KLINE_ROWS: dict[str, tuple[tuple[str, str], ...]] = {
    "binance": (("open time", "ms"), ("open", "num"), ("high", "num"), ("low", "num"), ("close", "num"),
                ("volume", "num"), ("close time", "ms"), ("quote volume", "num"), ("trades", "int"),
                ("taker base volume", "num"), ("taker quote volume", "num"), ("ignore", "any")),
    "okx": (("ts", "ms_text"), ("open", "num"), ("high", "num"), ("low", "num"), ("close", "num"), ("vol", "num"),
            ("volCcy", "num"), ("volCcyQuote", "num"), ("confirm", "flag")),
    "bybit": (("startTime", "ms_text"), ("open", "num"), ("high", "num"), ("low", "num"), ("close", "num"),
              ("volume", "num"), ("turnover", "num")),
}
# Path endings of each exchange's kline endpoints: their answers are checked before ccxt reads them.
KLINE_PATHS: dict[str, tuple[str, ...]] = {"binance": ("/klines",), "okx": ("/candles", "/history-candles"),
                                           "bybit": ("/kline",)}
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def _quote(body: Any, limit: int = 160) -> str:
    text = body if isinstance(body, str) else repr(body)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _field_problem(kind: str, x: Any) -> str | None:
    if kind == "ms":
        return None if isinstance(x, int) and not isinstance(x, bool) else "an integer time in ms"
    if kind == "ms_text":
        return None if isinstance(x, str) and x.isdigit() else "a time in ms as a digit string"
    if kind == "num":
        return None if isinstance(x, str) and _DECIMAL.match(x) else "a decimal string"
    if kind == "int":
        return None if isinstance(x, int) and not isinstance(x, bool) else "an integer"
    if kind == "flag":
        return None if x in ("0", "1") else '"0" or "1"'
    return None


def _kline_rows(exchange_id: str, body: Any) -> list | None:
    """The rows of a parsed kline answer, or None when the answer does not have the exchange's shape."""
    if exchange_id == "binance":
        return body if isinstance(body, list) else None
    if exchange_id == "okx":
        return body["data"] if isinstance(body, dict) and isinstance(body.get("data"), list) else None
    if exchange_id == "bybit":
        result = body.get("result") if isinstance(body, dict) else None
        return result["list"] if isinstance(result, dict) and isinstance(result.get("list"), list) else None
    return [] if body is not None else None


def check_kline_answer(exchange_id: str, body: Any) -> None:
    """Raise ``_PayloadFault`` unless ``body`` (ccxt's parsed answer: JSON, or the raw text when it was not
    JSON) is a kline answer of ``exchange_id`` whose every row has that format's exact field count and types."""
    if not isinstance(body, (list, dict)):
        raise _PayloadFault(f"the body is not JSON: {_quote(body)}", transient=True)
    rows = _kline_rows(exchange_id, body)
    if rows is None:
        shape = {"binance": "a JSON array of klines", "okx": "an object with a 'data' array",
                 "bybit": "an object with 'result.list'"}.get(exchange_id, "klines")
        raise _PayloadFault(f"expected {shape}, got {_quote(json_text(body))}", transient=False)
    spec = KLINE_ROWS.get(exchange_id)
    if spec is None:
        return
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(spec):
            n = f"{len(row)} fields" if isinstance(row, list) else type(row).__name__
            raise _PayloadFault(f"kline row {i + 1} has {n}, {exchange_id} kline rows have {len(spec)}: "
                                f"{_quote(json_text(row))}", transient=False)
        for (name, kind), x in zip(spec, row):
            want = _field_problem(kind, x)
            if want:
                raise _PayloadFault(f"kline row {i + 1}: {name} is {x!r}, expected {want}", transient=False)


def json_text(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


def _make_client_class(base: type) -> type:
    """A subclass of a ccxt exchange class that counts requests, remembers the last status, URL and headers,
    checks every kline answer before ccxt reads it and keeps the quote volume of each raw kline row."""

    def fetch(self, url, method="GET", headers=None, body=None):
        self._k_requests += 1
        self._k_status = None
        self._k_headers = None
        self._k_url = f"{method} {url}"
        result = base.fetch(self, url, method, headers, body)
        if url.split("?", 1)[0].endswith(KLINE_PATHS.get(self.id, ("/klines", "/candles", "/kline"))):
            check_kline_answer(self.id, result)
        return result

    def on_rest_response(self, code, reason, url, method, response_headers, response_body, request_headers,
                         request_body):
        self._k_status = int(code) if code is not None else None
        self._k_headers = dict(response_headers or {})
        return base.on_rest_response(self, code, reason, url, method, response_headers, response_body,
                                     request_headers, request_body)

    def parse_ohlcv(self, ohlcv, market=None):
        if not isinstance(ohlcv, (list, tuple)) or len(ohlcv) < 6:
            raise _RawRowError(f"kline row {str(ohlcv)[:80]!r} is not an array of at least 6 fields")
        row = list(base.parse_ohlcv(self, ohlcv, market))[:6]
        amount = None
        for idx in QUOTE_VOLUME_INDEX.get(self.id, ()):
            if len(ohlcv) > idx and ohlcv[idx] not in (None, ""):
                try:
                    amount = float(ohlcv[idx])
                except (TypeError, ValueError):
                    raise _RawRowError(f"quote volume {ohlcv[idx]!r} is not a number") from None
                break
        return row + [amount]

    return type(
        f"Kronos_{base.__name__}",
        (base,),
        {"fetch": fetch, "on_rest_response": on_rest_response, "parse_ohlcv": parse_ohlcv,
         "_k_requests": 0, "_k_status": None, "_k_headers": None, "_k_url": None},
    )


_HOST = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*")


def _rebase_urls(urls: Any, base_url: str) -> Any:
    """Every URL string under ``urls`` with its scheme and host replaced by ``base_url`` (paths kept)."""
    base_url = base_url.rstrip("/")
    if isinstance(urls, str):
        return _HOST.sub(lambda _m: base_url, urls, count=1) if _HOST.match(urls) else urls
    if isinstance(urls, dict):
        return {k: _rebase_urls(v, base_url) for k, v in urls.items()}
    if isinstance(urls, list):
        return [_rebase_urls(v, base_url) for v in urls]
    return urls


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class _Exchange:
    """One ccxt client of the chain and its per-source state."""

    def __init__(self, cfg: ExchangeConfig, source_cfg: CcxtSourceConfig):
        self.cfg = cfg
        self.id = cfg.id
        klass = _make_client_class(getattr(ccxt, cfg.id))
        settings: dict[str, Any] = {"timeout": source_cfg.timeout_ms, "enableRateLimit": source_cfg.enable_rate_limit}
        settings.update(copy.deepcopy(cfg.config))
        settings["options"] = _deep_merge(SPOT_OPTIONS, cfg.options)
        self.client = klass(settings)
        self.client.enableLastJsonResponse = True
        if cfg.base_url:
            self.client.urls["api"] = _rebase_urls(self.client.urls["api"], cfg.base_url)
        self.adapter = deadline.install(self.client, source_cfg.request_deadline_s)
        self.page_limit = cfg.page_limit or DEFAULT_PAGE_LIMIT.get(cfg.id, FALLBACK_PAGE_LIMIT)
        self.markets_loaded = False

    @property
    def requests(self) -> int:
        return self.client._k_requests

    @property
    def last_request(self) -> str:
        return self.client._k_url or f"{self.id} (no request sent)"

    def close(self) -> None:
        session = getattr(self.client, "session", None)
        if session is not None:
            session.close()


class _GiveUp(Exception):
    """This exchange cannot serve this request; ``disable`` when it cannot serve the rest of the fetch either."""

    def __init__(self, message: str, disable: bool):
        super().__init__(message)
        self.disable = disable


# --------------------------------------------------------------------------------------------------- the source


class CcxtSource:
    """CandleSource for the live profile. See the module docstring for the behaviour."""

    name = "ccxt"

    def __init__(
        self,
        config: CcxtSourceConfig | Mapping[str, Any],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.config = CcxtSourceConfig.from_mapping(config)
        self.policy = self.config.retry_policy
        self._sleep = sleep
        self._exchanges = [_Exchange(e, self.config) for e in self.config.exchanges]
        self.last_report: FetchReport | None = None

    @classmethod
    def from_settings(cls, exchanges: Iterable[Any], *, sleep: Callable[[float], None] = time.sleep,
                      **policy: Any) -> "CcxtSource":
        """From exchange entries with ``id``/``base_url``/``options`` (attributes or keys; other ExchangeConfig
        fields such as ``page_limit``/``config`` are picked up when present) and CcxtSourceConfig keyword fields
        (``timeout_ms``, ``max_retries``, ``backoff_s``, ...)."""
        entries = []
        for ex in exchanges:
            if isinstance(ex, (str, Mapping, ExchangeConfig)):
                entries.append(ExchangeConfig.from_mapping(ex))
                continue
            data = {f.name: getattr(ex, f.name) for f in fields(ExchangeConfig) if hasattr(ex, f.name)}
            entries.append(ExchangeConfig.from_mapping({k: v for k, v in data.items() if v is not None}))
        return cls(CcxtSourceConfig.from_mapping({**policy, "exchanges": entries}), sleep=sleep)

    # -- public API -------------------------------------------------------------------------------------------

    @property
    def exchange_ids(self) -> list[str]:
        return [e.id for e in self._exchanges]

    def fetch(self, symbol: str, timeframe: str, start: datetime, end: datetime, now: datetime | None = None
              ) -> pl.DataFrame:
        """CandleSource.fetch: the candle frame; the report of the call is in ``fetch_report()``."""
        return self.fetch_result(symbol, timeframe, start, end, now).candles

    def fetch_report(self) -> FetchReport | None:
        """Report of the last fetch (also set when it raised)."""
        return self.last_report

    def fetch_result(self, symbol: str, timeframe: str, start: datetime, end: datetime,
                     now: datetime | None = None) -> FetchResult:
        """Closed bars of ``symbol`` with open time in ``[start, end)`` and the report of how they were got."""
        step = timeframe_seconds(timeframe) * 1000
        now = now or datetime.now(timezone.utc)
        now_ms = dt_to_ms(now)
        start_ms = -(-dt_to_ms(start) // step) * step  # first bar open >= start
        end_ms = -(-dt_to_ms(end) // step) * step
        stop_ms = min(end_ms, now_ms - now_ms % step)  # the bar opening at floor(now) is still forming
        stop_ms = max(stop_ms, start_ms)
        report = FetchReport(symbol, timeframe, ms_to_dt(start_ms), ms_to_dt(stop_ms), now)
        self.last_report = report
        run = _Run(self, report, symbol, timeframe, step, time.monotonic() + self.config.fetch_deadline_s)
        try:
            run.main_pass(start_ms, stop_ms)
            run.refill_gaps(start_ms, stop_ms)
        finally:
            run.finish()
        return FetchResult(run.frame(), report)

    def close(self) -> None:
        for ex in self._exchanges:
            ex.close()

    def __enter__(self) -> "CcxtSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Run:
    """State of one fetch call."""

    def __init__(self, source: CcxtSource, report: FetchReport, symbol: str, timeframe: str, step: int,
                 deadline_at: float):
        self.source = source
        self.deadline_at = deadline_at  # time.monotonic() by which the whole fetch ends
        self.causes: dict[str, str] = {}  # exchange -> why it last failed a window
        self.policy = source.policy
        self.report = report
        self.symbol = symbol
        self.timeframe = timeframe
        self.step = step
        self.disabled: set[str] = set()
        self.exhausted: dict[str, int] = {}  # consecutive windows an exchange failed after all its retries
        self.rows: dict[int, tuple] = {}  # ts -> (o, h, l, c, v, amount, exchange)
        self.requests_at_start = {e.id: e.requests for e in source._exchanges}
        for e in source._exchanges:
            e.adapter.cap = deadline_at
            report.requests_by_exchange.setdefault(e.id, 0)
            report.rows_by_exchange.setdefault(e.id, 0)

    # -- passes ------------------------------------------------------------------------------------------------

    def main_pass(self, start_ms: int, stop_ms: int) -> None:
        cursor = start_ms
        while cursor < stop_ms:
            served = False
            for ex in self._chain():
                w_end = min(stop_ms, cursor + ex.page_limit * self.step)
                try:
                    page = self._request(ex, cursor, w_end, kind="page")
                except _GiveUp as exc:
                    self._give_up(ex, exc, cursor)
                    continue
                self.exhausted[ex.id] = 0
                self._add(page, ex.id)
                served = True
                last = page[-1][0] if page else None
                cursor = w_end if last is None or last + self.step >= w_end else last + self.step
                break
            if not served:
                tried = "; ".join(f"{e.id}: {self.causes.get(e.id, 'not asked')}" for e in self.source._exchanges)
                raise FetchError(
                    f"{self.symbol} {self.timeframe}: no exchange could serve bars from "
                    f"{ms_to_dt(cursor):%Y-%m-%d %H:%M} UTC: {tried}",
                    self.report,
                )

    def refill_gaps(self, start_ms: int, stop_ms: int) -> None:
        budget = self.source.config.max_gap_requests
        before = len(self.rows)
        for gap in find_gaps(sorted(self.rows), start_ms, stop_ms, self.step):
            g0, g1 = dt_to_ms(gap.start), dt_to_ms(gap.end)
            for ex in self._chain():
                if budget <= 0:
                    break
                budget -= 1
                try:
                    page = self._request(ex, g0, min(g1, g0 + ex.page_limit * self.step), kind="gap")
                except _GiveUp as exc:
                    self._give_up(ex, exc, g0)
                    continue
                self._add(page, ex.id)
                if all(t in self.rows for t in range(g0, g1, self.step)):
                    break
            if budget <= 0:
                break
        self.report.gaps_refilled = len(self.rows) - before
        self.report.gaps = find_gaps(sorted(self.rows), start_ms, stop_ms, self.step)

    def finish(self) -> None:
        r = self.report
        for e in self.source._exchanges:
            e.adapter.cap = None
            r.requests_by_exchange[e.id] = e.requests - self.requests_at_start[e.id]
        r.requests = sum(r.requests_by_exchange.values())
        r.rows = len(self.rows)

    def frame(self) -> pl.DataFrame:
        ts = sorted(self.rows)
        cols = list(zip(*(self.rows[t] for t in ts))) if ts else [[]] * 7
        df = pl.DataFrame(
            {
                "ts": pl.Series("ts", ts, dtype=pl.Int64).cast(pl.Datetime("ms", "UTC")),
                "open": pl.Series(cols[0], dtype=pl.Float64),
                "high": pl.Series(cols[1], dtype=pl.Float64),
                "low": pl.Series(cols[2], dtype=pl.Float64),
                "close": pl.Series(cols[3], dtype=pl.Float64),
                "volume": pl.Series(cols[4], dtype=pl.Float64),
                "amount": pl.Series(cols[5], dtype=pl.Float64),
                "exchange": pl.Series(cols[6], dtype=pl.Utf8),
            }
        )
        df = df.with_columns(pl.col("ts").dt.cast_time_unit("us"))
        return validate_candles(df.select(list(CANDLE_SCHEMA)), f"ccxt {self.symbol} {self.timeframe}")

    # -- helpers -----------------------------------------------------------------------------------------------

    def _chain(self) -> Iterable[_Exchange]:
        return [e for e in self.source._exchanges if e.id not in self.disabled]

    def _give_up(self, ex: _Exchange, exc: _GiveUp, at_ms: int) -> None:
        when = f"{ms_to_dt(at_ms):%Y-%m-%d %H:%M}"
        cause = str(exc)
        for prefix in (f"{ex.id}: ", f"{ex.id} "):  # the message names the exchange once
            cause = cause[len(prefix):] if cause.startswith(prefix) else cause
        self.causes[ex.id] = cause
        if not exc.disable:
            self.exhausted[ex.id] = self.exhausted.get(ex.id, 0) + 1
            if self.exhausted[ex.id] >= EXHAUSTED_WINDOWS_TO_DISABLE:
                exc = _GiveUp(f"{exc} ({self.exhausted[ex.id]} windows in a row)", disable=True)
        if exc.disable:
            self.disabled.add(ex.id)
            self.report.events.append(f"{when}: gave {ex.id} up for this fetch: {exc}")
        else:
            self.report.events.append(f"{when}: {ex.id} failed this window, next exchange: {exc}")

    def _add(self, page: list[list], exchange: str) -> None:
        n = 0
        for ts, o, h, l, c, v, a in page:
            if ts not in self.rows:
                self.rows[ts] = (o, h, l, c, v, a, exchange)
                n += 1
        self.report.rows_by_exchange[exchange] = self.report.rows_by_exchange.get(exchange, 0) + n

    def _request(self, ex: _Exchange, w_start: int, w_end: int, kind: str) -> list[list]:
        """Bars of ``[w_start, w_end)`` from ``ex``, retried per the policy; ``_GiveUp`` when ex can't serve."""
        self._ensure_markets(ex)
        n = (w_end - w_start) // self.step
        if kind == "page":
            self.report.page_requests += 1
        else:
            self.report.gap_requests += 1

        def call() -> Any:
            return ex.client.fetch_ohlcv(self.symbol, self.timeframe, since=w_start, limit=n,
                                         params={"until": w_end - 1})

        raw = self._with_retries(ex, call, what=f"{kind} {ms_to_dt(w_start):%Y-%m-%d %H:%M}")
        try:
            return self._check_page(ex, raw, w_start, w_end)
        except MalformedPayloadError as exc:
            raise _GiveUp(str(exc), disable=False) from exc

    def _ensure_markets(self, ex: _Exchange) -> None:
        if not ex.markets_loaded:
            self._with_retries(ex, lambda: ex.client.load_markets(), what="markets")
            ex.markets_loaded = True
        market = ex.client.markets.get(self.symbol)
        if market is None:
            raise _GiveUp(f"{ex.id}: no spot market {self.symbol!r}", disable=True)
        if not market.get("spot"):
            raise _GiveUp(f"{ex.id}: {self.symbol!r} is not a spot market", disable=True)

    def _with_retries(self, ex: _Exchange, call: Callable[[], Any], what: str) -> Any:
        retry = 0
        while True:
            self._check_deadline(what)
            try:
                return call()
            except (_RawRowError, MalformedPayloadError) as exc:
                raise _GiveUp(str(MalformedPayloadError(ex.id, ex.last_request, str(exc))), disable=False) from exc
            except _PayloadFault as exc:
                if not exc.transient:
                    raise _GiveUp(str(MalformedPayloadError(ex.id, ex.last_request, str(exc))), disable=False) \
                        from exc
                fault, desc = Fault.TRANSIENT, str(MalformedPayloadError(ex.id, ex.last_request, str(exc)))
            except Exception as exc:  # noqa: BLE001 - classified below
                status = ex.client._k_status
                fault = classify(exc, status)
                desc = f"{ex.id} {what}: {type(exc).__name__}" + (f" (HTTP {status})" if status else "")
                if status is not None and 200 <= status < 300:  # an error in a 2xx body: say what the body was
                    desc += f" {_quote(ex.client.last_http_response)}"
                if fault is Fault.MALFORMED:
                    raise _GiveUp(str(MalformedPayloadError(ex.id, ex.last_request, f"{type(exc).__name__}: {exc}")),
                                  disable=False) from exc
                if fault is Fault.PERMANENT:
                    raise _GiveUp(f"{desc}: {_short(exc)}", disable=True) from exc
            if fault is Fault.RATE_LIMIT:
                retry_after = parse_retry_after(ex.client._k_headers)
                if retry_after is not None and retry_after > self.policy.max_retry_after_s:
                    raise _GiveUp(f"{desc}: Retry-After {retry_after:g}s exceeds "
                                  f"{self.policy.max_retry_after_s:g}s", disable=True)
                wait = self.policy.rate_limit_wait(retry_after, retry)
            else:
                wait = self.policy.backoff(retry)
            if retry >= self.policy.max_retries:
                raise _GiveUp(f"{desc}: still failing after {retry} retries", disable=False)
            retry += 1
            self.report.retries += 1
            self.report.events.append(f"{desc}: retry {retry} in {wait:g}s")
            self.source._sleep(min(wait, max(0.0, self.deadline_at - time.monotonic())))

    def _check_deadline(self, what: str) -> None:
        if time.monotonic() >= self.deadline_at:
            raise FetchError(
                f"{self.symbol} {self.timeframe}: the fetch ran past its {self.source.config.fetch_deadline_s:g}s "
                f"deadline before {what}; exchanges: "
                + ("; ".join(f"{k}: {v}" for k, v in self.causes.items()) or "no failures recorded"),
                self.report,
            )

    def _check_page(self, ex: _Exchange, raw: Any, w_start: int, w_end: int) -> list[list]:
        """The rows of ``[w_start, w_end)`` in an answer, or MalformedPayloadError when the answer is broken, holds
        two different rows for one open time, or does not advance (bars before the start asked for, or bars
        only outside the window: an exchange that ignores the cursor would otherwise end the data silently)."""
        def bad(problem: str) -> MalformedPayloadError:
            return MalformedPayloadError(ex.id, ex.last_request, problem, self.report)

        if not isinstance(raw, list):
            raise bad(f"ccxt returned {type(raw).__name__}")
        out: dict[int, list] = {}
        for row in raw:
            problem = _row_problem(row, self.step)
            if problem:
                raise bad(problem)
            ts = row[0]
            if ts < w_start:
                raise bad(f"pagination does not advance: asked for bars from {ms_to_dt(w_start):%Y-%m-%d %H:%M}, "
                          f"got one opening {ms_to_dt(ts):%Y-%m-%d %H:%M}")
            if ts in out and out[ts] != row:
                raise bad(f"two different rows for the bar opening {ms_to_dt(ts):%Y-%m-%d %H:%M} UTC: "
                          f"{_ohlcv(out[ts])} and {_ohlcv(row)}")
            if ts < w_end:
                out[ts] = row
        if raw and not out:
            raise bad(f"pagination does not advance: asked for bars of [{ms_to_dt(w_start):%Y-%m-%d %H:%M}, "
                      f"{ms_to_dt(w_end):%Y-%m-%d %H:%M}), got only bars outside it, the first opening "
                      f"{ms_to_dt(raw[0][0]):%Y-%m-%d %H:%M}")
        return [out[t] for t in sorted(out)]


def _ohlcv(row: list) -> str:
    return "open {} high {} low {} close {} volume {}".format(*row[1:6])


def _row_problem(row: Any, step: int) -> str | None:
    if not isinstance(row, list) or len(row) != 7:
        return f"unexpected parsed row {row!r}"
    ts, o, h, l, c, v, a = row
    if not isinstance(ts, int) or isinstance(ts, bool):
        return f"row {row[:6]!r}: timestamp is not an integer"
    if ts % step:
        return f"row at {ts}: open time is not on the {step // 1000}s grid"
    for name, x in (("open", o), ("high", h), ("low", l), ("close", c), ("volume", v)):
        if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
            return f"row at {ms_to_dt(ts):%Y-%m-%d %H:%M}: {name} is {x!r}"
    if a is not None and (not math.isfinite(a) or a < 0):
        return f"row at {ms_to_dt(ts):%Y-%m-%d %H:%M}: quote volume is {a!r}"
    if min(o, h, l, c) <= 0 or v < 0:
        return f"row at {ms_to_dt(ts):%Y-%m-%d %H:%M}: non-positive price or negative volume"
    if h < max(o, c, l) or l > min(o, c):
        return f"row at {ms_to_dt(ts):%Y-%m-%d %H:%M}: high/low do not bound open/close"
    return None


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
