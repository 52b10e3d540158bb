"""A loopback exchange speaking Binance's, OKX's, Bybit's or KuCoin's spot REST format, serving candle frames.

    with FakeExchange("binance", {"BTC/USDT": {"1h": frame}}, now=datetime(...)) as fake:
        ccxt.binance({...}).urls["api"]["public"] = fake.url + "/api/v3"

* Binance: ``GET /api/v3/exchangeInfo``, ``/api/v3/klines`` (startTime/endTime inclusive, limit default 500
  capped at 1000, first ``limit`` bars from startTime, else the last ``limit``), ``/api/v3/time``, ``/ping``.
  12-field kline rows, prices and volumes as strings. Errors as Binance sends them (-1121, -1120, -1102).
* OKX: ``GET /api/v5/public/instruments?instType=SPOT``, ``/api/v5/market/candles`` and ``history-candles``
  (``after`` = older than, ``before`` = newer than, both exclusive; newest first; limit default 100, max 300).
* Bybit: ``GET /v5/market/instruments-info?category=spot``, ``/v5/market/kline`` (``start``/``end`` inclusive,
  newest first, the ``limit`` newest bars of the range; limit default 200, max 1000; 7 string fields, the last
  the turnover), ``/v5/market/time``. Errors in the body: ``retCode`` 10001 for a bad symbol or interval.
* KuCoin: ``GET /api/v3/currencies`` (empty), ``/api/v2/symbols``, ``/api/v1/market/candles`` (``startAt``/``endAt``
  in seconds, both inclusive, newest first, at most 1500; rows [time s, open, close, high, low, volume,
  turnover], all strings), ``/api/v1/timestamp``. A bad symbol is HTTP 400 with code 400100.
* A dialect is one answering method named after it plus its entry in ``FORMATS`` (where the rows of a kline
  answer are, the time unit, the price order) and its kline/markets path endings in ``KLINE_PATHS`` /
  ``MARKET_PATHS``.
* The clock: bars opening after ``now`` do not exist; the bar containing ``now`` is served as forming (Binance:
  close=open, a quarter of the volume; OKX: the same with confirm "0"). ``now=None`` serves every bar as closed.
* Faults (``add_fault``): an HTTP status with headers/body, a delay, a dropped connection or a replacement
  body, for the n-th..m-th request of an endpoint; and the misbehaviours of real exchanges: pagination that
  never advances (``stuck``: the newest bar whatever the start), a maintenance gap (``gap``), an empty answer
  (``empty``), a bogus first copy of a bar (``conflict``), 11-field Binance rows (``short_rows``), a body
  trickled a byte at a time (``trickle``, ``endless`` for one that never ends) and a connection cut mid-body
  without Content-Length (``cut``). ``extra_bars`` returns bars beyond ``endTime``/``after``
  (overlapping pages); ``repeat_rows`` repeats every row (duplicates within a page).
* ``requests`` logs every request: (endpoint, params, status).

Everything runs in one ThreadingHTTPServer thread on 127.0.0.1 with daemon handler threads; ``close()`` (or
leaving the ``with``) stops it. A delayed handler sleeps at most ``Fault.delay_s``.
"""

from __future__ import annotations

import bisect
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlsplit

import polars as pl

BINANCE_INTERVALS = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
}
OKX_BARS = {
    "1m": "1m",
    "3m": "3m",
    "5m": "5m",
    "15m": "15m",
    "30m": "30m",
    "1H": "1h",
    "2H": "2h",
    "4H": "4h",
    "6H": "6h",
    "12H": "12h",
    "1D": "1d",
    "6Hutc": "6h",
    "12Hutc": "12h",
    "1Dutc": "1d",
}
BYBIT_INTERVALS = {
    "1": "1m",
    "3": "3m",
    "5": "5m",
    "15": "15m",
    "30": "30m",
    "60": "1h",
    "120": "2h",
    "240": "4h",
    "360": "6h",
    "720": "12h",
    "D": "1d",
}
KUCOIN_TYPES = {
    "1min": "1m",
    "3min": "3m",
    "5min": "5m",
    "15min": "15m",
    "30min": "30m",
    "1hour": "1h",
    "2hour": "2h",
    "4hour": "4h",
    "6hour": "6h",
    "8hour": "8h",
    "12hour": "12h",
    "1day": "1d",
}


@dataclass(frozen=True)
class _Format:
    rows_at: tuple[str, ...]  # keys under which a kline answer holds its rows ((): the answer is the list)
    time_ms: int = 1  # ms per unit of a row's time field
    high_close: tuple[int, int] = (2, 4)  # indices of high and close in a row


FORMATS: dict[str, _Format] = {
    "binance": _Format(()),
    "okx": _Format(("data",)),
    "bybit": _Format(("result", "list")),
    "kucoin": _Format(("data",), time_ms=1000, high_close=(3, 2)),
}
KLINE_PATHS = ("/klines", "/candles", "/history-candles", "/kline")
MARKET_PATHS = ("/exchangeInfo", "/instruments", "/instruments-info", "/symbols")
CURSOR_PARAMS = ("startTime", "endTime", "after", "before", "start", "end", "startAt", "endAt")  # "stuck" drops them
TF_SECONDS = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
}


@dataclass
class Fault:
    """What to do instead of a normal answer, for matching requests number ``after+1`` .. ``after+times``.

    endpoint: "klines" (Binance klines / OKX candles), "markets" (exchangeInfo / instruments) or "*".
    action:   "status" (send ``status`` with ``headers`` and ``body``), "delay" (sleep ``delay_s``, then answer
              normally), "reset" (close the connection without an answer), "body" (200 with ``body``),
              "stuck" (the newest bar, whatever start was asked), "gap" (the normal answer without the bars of
              ``[gap[0], gap[1])``), "empty" (a 200 without bars), "conflict" (a bogus copy of the bar opening at
              ``at`` sent before the real one), "short_rows" (Binance rows without the close time: 11 fields),
              "trickle" (the normal body, one byte every ``delay_s``; ``endless``: spaces until the client
              leaves), "cut" (no Content-Length, half the normal body, then the connection is closed).
    times:    None: every matching request from then on.
    """

    endpoint: str = "klines"
    action: str = "status"
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: str | bytes | None = None
    delay_s: float = 0.0
    gap: tuple[datetime, datetime] | None = None
    at: datetime | None = None
    endless: bool = False
    after: int = 0
    times: int | None = 1
    seen: int = 0
    fired: int = 0

    def take(self, endpoint: str) -> bool:
        if self.endpoint not in ("*", endpoint):
            return False
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


@dataclass
class _Series:
    ts: list[int]  # open times, ms, ascending
    rows: list[tuple[str, str, str, str, str, str]]  # open, high, low, close, volume, quote volume (strings)
    forming: tuple[str, str, str, str, str, str] | None  # values served for the bar containing now


def _fmt(x: float) -> str:
    return repr(float(x))


def quote_volume(frame: pl.DataFrame) -> pl.Series:
    """The quote volume the fake serves when a frame has no ``amount``: volume * (open + close) / 2."""
    return (frame["volume"] * (frame["open"] + frame["close"]) / 2).alias("amount")


class FakeExchange:
    def __init__(
        self,
        dialect: str,
        markets: Mapping[str, Mapping[str, pl.DataFrame]],
        now: datetime | None = None,
        *,
        extra_bars: int = 0,
        repeat_rows: bool = False,
        extra_symbols: tuple[str, ...] = (),
    ):
        if dialect not in FORMATS:
            raise ValueError(f"unknown dialect {dialect!r}")
        self.dialect = dialect
        self.now_ms = None if now is None else int(now.timestamp() * 1000)
        self.extra_bars = extra_bars
        self.repeat_rows = repeat_rows
        self.extra_symbols = extra_symbols  # listed in markets but without candles
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, dict[str, str], int]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()  # ends trickling handlers when the fake closes
        self._series: dict[tuple[str, str], _Series] = {}
        for symbol, by_tf in markets.items():
            for tf, frame in by_tf.items():
                self._series[(symbol, tf)] = self._prepare(frame, tf)
        self.symbols = sorted({s for s, _ in self._series} | set(extra_symbols))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=f"fake-{dialect}"
        )
        self._thread.start()

    # -- control -------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_fault(self, **kw: Any) -> Fault:
        fault = Fault(**kw)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def kline_requests(self) -> list[tuple[str, dict[str, str], int]]:
        return [r for r in self.requests if r[0] == "klines"]

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FakeExchange":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- data ------------------------------------------------------------------------------------------------

    def _prepare(self, frame: pl.DataFrame, tf: str) -> _Series:
        step = TF_SECONDS[tf] * 1000
        df = frame.sort("ts")
        if "amount" not in df.columns or df["amount"].null_count() == df.height:
            df = df.with_columns(quote_volume(df))
        ts = (df["ts"].dt.epoch("ms")).to_list()
        cols = [df[c].to_list() for c in ("open", "high", "low", "close", "volume", "amount")]
        rows = [tuple(_fmt(x) for x in r) for r in zip(*cols)]
        forming = None
        if self.now_ms is not None:
            cut = bisect.bisect_right(ts, self.now_ms)
            if cut and ts[cut - 1] + step > self.now_ms:  # the bar containing now is forming
                o, h, lo, c, v, a = rows[cut - 1]
                forming = (o, o, o, o, _fmt(float(v) / 4), _fmt(float(a) / 4))
                ts, rows = ts[:cut], rows[:cut]
            else:
                ts, rows = ts[:cut], rows[:cut]
        return _Series(ts, rows, forming)

    def _bars(self, symbol: str, tf: str, lo: int, hi: int) -> tuple[_Series, int, int]:
        """Index range [i, j) of bars with lo <= ts <= hi."""
        s = self._series[(symbol, tf)]
        return s, bisect.bisect_left(s.ts, lo), bisect.bisect_right(s.ts, hi)

    def _row(self, s: _Series, k: int) -> tuple[tuple[str, ...], bool]:
        if s.forming is not None and k == len(s.ts) - 1:
            return s.forming, False
        return s.rows[k], True

    # -- Binance -------------------------------------------------------------------------------------------------

    def binance(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v3/ping":
            return 200, {}
        if path == "/api/v3/time":
            return 200, {"serverTime": self._now()}
        if path == "/api/v3/exchangeInfo":
            return 200, {
                "timezone": "UTC",
                "serverTime": self._now(),
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
                ],
                "exchangeFilters": [],
                "symbols": [_binance_symbol(s) for s in self.symbols],
            }
        if path == "/api/v3/klines":
            if "symbol" not in q or "interval" not in q:
                return 400, {
                    "code": -1102,
                    "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
                }
            symbol = next((s for s in self.symbols if s.replace("/", "") == q["symbol"]), None)
            if symbol is None:
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            tf = q["interval"]
            if tf not in BINANCE_INTERVALS:
                return 400, {"code": -1120, "msg": "Invalid interval."}
            if (symbol, tf) not in self._series:
                return 200, []
            limit = min(int(q.get("limit", 500)), 1000)
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
            s, i, j = self._bars(
                symbol, tf, start if start is not None else -(2**62), end if end is not None else 2**62
            )
            if start is not None:
                j = min(j, i + limit)
            else:
                i = max(i, j - limit)
            j = min(len(s.ts), j + self.extra_bars)
            step = BINANCE_INTERVALS[tf] * 1000
            out = []
            for k in range(i, j):
                (o, h, lo, c, v, a), _closed = self._row(s, k)
                row = [s.ts[k], o, h, lo, c, v, s.ts[k] + step - 1, a, 100, "0", "0", "0"]
                out.append(row)
                if self.repeat_rows:
                    out.append(row)
            return 200, out
        return 404, {"code": -1, "msg": f"unknown path {path}"}

    # -- OKX -----------------------------------------------------------------------------------------------------

    def okx(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v5/public/time":
            return 200, {"code": "0", "msg": "", "data": [{"ts": str(self._now())}]}
        if path == "/api/v5/public/instruments":
            data = [_okx_instrument(s) for s in self.symbols] if q.get("instType") == "SPOT" else []
            return 200, {"code": "0", "msg": "", "data": data}
        if path in ("/api/v5/market/candles", "/api/v5/market/history-candles"):
            symbol = next((s for s in self.symbols if s.replace("/", "-") == q.get("instId")), None)
            if symbol is None:
                return 200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
            tf = OKX_BARS.get(q.get("bar", "1m"))
            if tf is None:
                return 200, {"code": "51000", "msg": "Parameter bar error", "data": []}
            if (symbol, tf) not in self._series:
                return 200, {"code": "0", "msg": "", "data": []}
            limit = min(int(q.get("limit", 100)), 300)
            after = int(q["after"]) if "after" in q else 2**62  # older than (exclusive)
            before = int(q["before"]) if "before" in q else -(2**62)  # newer than (exclusive)
            s, i, j = self._bars(symbol, tf, before + 1, after - 1)
            i = max(i, j - limit)  # newest first: the `limit` newest bars of the range
            j = min(len(s.ts), j + self.extra_bars)
            out = []
            for k in range(j - 1, i - 1, -1):
                (o, h, lo, c, v, a), closed = self._row(s, k)
                row = [str(s.ts[k]), o, h, lo, c, v, a, a, "1" if closed else "0"]
                out.append(row)
                if self.repeat_rows:
                    out.append(row)
            return 200, {"code": "0", "msg": "", "data": out}
        return 404, {"code": "50000", "msg": f"unknown path {path}", "data": []}

    # -- Bybit ---------------------------------------------------------------------------------------------------

    def bybit(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        def answer(result: Any, code: int = 0, msg: str = "OK") -> tuple[int, Any]:
            return 200, {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": self._now()}

        if path == "/v5/market/time":
            return answer({"timeSecond": str(self._now() // 1000), "timeNano": str(self._now() * 1_000_000)})
        if path == "/v5/market/instruments-info":
            items = [_bybit_instrument(s) for s in self.symbols] if q.get("category") == "spot" else []
            return answer({"category": q.get("category", ""), "list": items, "nextPageCursor": ""})
        if path == "/v5/market/kline":
            symbol = next((s for s in self.symbols if s.replace("/", "") == q.get("symbol")), None)
            if symbol is None:
                return answer({}, 10001, "Not supported symbols")
            tf = BYBIT_INTERVALS.get(q.get("interval", ""))
            if tf is None:
                return answer({}, 10001, "Invalid period!")
            if (symbol, tf) not in self._series:
                return answer({"category": "spot", "symbol": q["symbol"], "list": []})
            limit = min(int(q.get("limit", 200)), 1000)
            s, i, j = self._bars(symbol, tf, int(q.get("start", -(2**62))), int(q.get("end", 2**62)))
            i = max(i, j - limit)  # newest first: the `limit` newest bars of the range
            j = min(len(s.ts), j + self.extra_bars)
            out = []
            for k in range(j - 1, i - 1, -1):
                (o, h, lo, c, v, a), _closed = self._row(s, k)
                out.append([str(s.ts[k]), o, h, lo, c, v, a])
                if self.repeat_rows:
                    out.append(out[-1])
            return answer({"category": "spot", "symbol": q["symbol"], "list": out})
        return 404, {"retCode": 10404, "retMsg": f"unknown path {path}", "result": {}}

    # -- KuCoin --------------------------------------------------------------------------------------------------

    def kucoin(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v1/timestamp":
            return 200, {"code": "200000", "data": self._now()}
        if path == "/api/v3/currencies":
            return 200, {"code": "200000", "data": []}
        if path == "/api/v2/symbols":
            return 200, {"code": "200000", "data": [_kucoin_symbol(s) for s in self.symbols]}
        if path == "/api/v1/market/candles":
            symbol = next((s for s in self.symbols if s.replace("/", "-") == q.get("symbol")), None)
            if symbol is None:
                return 400, {"code": "400100", "msg": "This pair is not provided at present"}
            tf = KUCOIN_TYPES.get(q.get("type", ""))
            if tf is None:
                return 400, {"code": "400100", "msg": "Unsupported type"}
            if (symbol, tf) not in self._series:
                return 200, {"code": "200000", "data": []}
            lo = int(q["startAt"]) * 1000 if "startAt" in q else -(2**62)
            hi = int(q["endAt"]) * 1000 if "endAt" in q else 2**62
            s, i, j = self._bars(symbol, tf, lo, hi)
            i = max(i, j - 1500)  # newest first: at most the 1500 newest bars of the range
            j = min(len(s.ts), j + self.extra_bars)
            out = []
            for k in range(j - 1, i - 1, -1):
                (o, h, low, c, v, a), _closed = self._row(s, k)
                out.append([str(s.ts[k] // 1000), o, c, h, low, v, a])
                if self.repeat_rows:
                    out.append(out[-1])
            return 200, {"code": "200000", "data": out}
        return 404, {"code": "404000", "msg": f"unknown path {path}"}

    def _misbehave(self, fault: Fault, payload: Any) -> Any:
        """The normal kline answer ``payload`` changed the way ``fault`` says."""
        fmt = FORMATS[self.dialect]
        rows = payload
        for key in fmt.rows_at:
            rows = rows.get(key) if isinstance(rows, dict) else None
        if not isinstance(rows, list):
            return payload
        ts = lambda r: int(r[0]) * fmt.time_ms
        if fault.action == "gap" and fault.gap is not None:
            lo, hi = (int(t.timestamp() * 1000) for t in fault.gap)
            rows = [r for r in rows if not lo <= ts(r) < hi]
        elif fault.action == "empty":
            rows = []
        elif fault.action == "conflict" and fault.at is not None:
            at = int(fault.at.timestamp() * 1000)
            out = []
            for r in rows:
                if ts(r) == at:
                    bogus = list(r)
                    hi, close = fmt.high_close
                    bogus[hi] = bogus[close] = _fmt(float(r[hi]) * 1.5)  # high and close 50% up: still a valid bar
                    out.append(bogus)
                out.append(r)
            rows = out
        elif fault.action == "short_rows" and self.dialect == "binance":
            rows = [r[:6] + r[7:] for r in rows]
        return _with_rows(payload, fmt.rows_at, rows)

    def _now(self) -> int:
        return self.now_ms if self.now_ms is not None else int(time.time() * 1000)


def _binance_symbol(symbol: str) -> dict[str, Any]:
    base, quote = symbol.split("/")
    return {
        "symbol": base + quote,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.00000100",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.00000100",
            },
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000000.00000000", "stepSize": "0.00001000"},
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
    }


def _with_rows(payload: Any, keys: tuple[str, ...], rows: list) -> Any:
    """``payload`` with the rows under ``keys`` replaced."""
    if not keys:
        return rows
    return {**payload, keys[0]: _with_rows(payload[keys[0]], keys[1:], rows)}


def _bybit_instrument(symbol: str) -> dict[str, Any]:
    base, quote = symbol.split("/")
    return {
        "symbol": base + quote,
        "baseCoin": base,
        "quoteCoin": quote,
        "innovation": "0",
        "status": "Trading",
        "marginTrading": "none",
        "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": "0.00001",
            "quotePrecision": "0.0000001",
            "minOrderQty": "0.00001",
            "maxOrderQty": "9000000",
            "minOrderAmt": "5",
            "maxOrderAmt": "9000000",
        },
        "priceFilter": {"tickSize": "0.000001"},
    }


def _kucoin_symbol(symbol: str) -> dict[str, Any]:
    base, quote = symbol.split("/")
    return {
        "symbol": f"{base}-{quote}",
        "name": f"{base}-{quote}",
        "baseCurrency": base,
        "quoteCurrency": quote,
        "feeCurrency": quote,
        "market": "USDS",
        "baseMinSize": "0.00001",
        "quoteMinSize": "0.1",
        "baseMaxSize": "10000000000",
        "quoteMaxSize": "99999999",
        "baseIncrement": "0.00001",
        "quoteIncrement": "0.000001",
        "priceIncrement": "0.000001",
        "priceLimitRate": "0.1",
        "minFunds": "0.1",
        "isMarginEnabled": False,
        "enableTrading": True,
    }


def _okx_instrument(symbol: str) -> dict[str, Any]:
    base, quote = symbol.split("/")
    rec = {
        k: ""
        for k in (
            "alias",
            "ctMult",
            "ctType",
            "ctVal",
            "ctValCcy",
            "expTime",
            "instFamily",
            "lever",
            "optType",
            "settleCcy",
            "stk",
            "uly",
            "ruleType",
        )
    }
    rec.update(
        {
            "instId": f"{base}-{quote}",
            "instType": "SPOT",
            "baseCcy": base,
            "quoteCcy": quote,
            "tickSz": "0.000001",
            "lotSz": "0.00001",
            "minSz": "0.00001",
            "maxLmtSz": "10000000",
            "maxMktSz": "1000000",
            "state": "live",
            "listTime": "1",
        }
    )
    return rec


def _make_handler(fake: FakeExchange) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes; don't wait for delayed ACKs

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
            pass

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            path, q = parts.path, dict(parse_qsl(parts.query))
            endpoint = _endpoint(path)
            with fake._lock:
                fault = next((f for f in fake.faults if f.take(endpoint)), None)
            try:
                if fault is not None and fault.action == "delay":
                    time.sleep(fault.delay_s)
                    fault = None
                if fault is not None and fault.action == "reset":
                    fake.requests.append((endpoint, q, 0))
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault is not None and fault.action in ("status", "body"):
                    status = fault.status if fault.action == "status" else 200
                    body = (
                        fault.body
                        if fault.body is not None
                        else json.dumps(
                            {"code": -1000, "msg": "An unknown error occurred while processing the request."}
                        )
                    )
                    fake.requests.append((endpoint, q, status))
                    self._send(status, body, fault.headers)
                    return
                handler = getattr(fake, fake.dialect)
                if fault is not None and fault.action == "stuck":
                    q = {k: v for k, v in q.items() if k not in CURSOR_PARAMS}
                    q["limit"] = "1"
                status, payload = handler(path, q)
                if fault is not None and status == 200:
                    payload = fake._misbehave(fault, payload)
                fake.requests.append((endpoint, q, status))
                body = json.dumps(payload, separators=(",", ":"))
                if fault is not None and fault.action == "trickle":
                    self._trickle(body.encode(), fault)
                elif fault is not None and fault.action == "cut":
                    self._cut(body.encode())
                else:
                    self._send(status, body, {})
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True

        def _trickle(self, data: bytes, fault: Fault) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)) if not fault.endless else str(1 << 40))
            self.end_headers()
            self.close_connection = True
            k = 0
            while not fake._closing.is_set():
                self.wfile.write(data[k : k + 1] if not fault.endless else b" ")
                self.wfile.flush()
                k += 1
                if not fault.endless and k >= len(data):
                    return
                fake._closing.wait(fault.delay_s)

        def _cut(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[: max(1, len(data) // 2)])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _send(self, status: int, body: str | bytes, headers: Mapping[str, str]) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-MBX-USED-WEIGHT-1M", "2")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _endpoint(path: str) -> str:
    if path.endswith(KLINE_PATHS):
        return "klines"
    if path.endswith(MARKET_PATHS):
        return "markets"
    return "other"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)
