"""Live candles through ccxt: a chain of spot exchanges, paginated, retried, deduplicated, gaps accounted for.

How one ``fetch(symbol, timeframe, start, end, now)`` runs:

* The window is the bars with open time in ``[start, end)`` that have closed by ``now``; the bar forming at
  ``now`` is never requested and never returned.
* The window is walked in request windows of at most ``page_limit`` bars (by default its dialect's: Binance
  1000, Bybit 1000, KuCoin 1499, OKX 100). Each request window goes to the exchanges of the chain in order; the
  first that answers serves it, and every bar records who served it in the ``exchange`` column. Rows outside
  the request window (overlapping pages, the forming bar) and repeated rows are dropped. A window that comes
  back short at its tail moves the next window's start to just after the last bar received, so a page cap
  smaller than asked costs no bars.
* Every HTTP request has a wall-clock deadline (``request_deadline_s``, default 30 s) covering connect, headers
  and body; the whole fetch has one too (``fetch_deadline_s``), past which it raises ``FetchError``.
* Module map: exchange dialects in ``market.dialects``, answer and row checks in ``market.payloads``, one
  ccxt client in ``market.ccxt_client``, fault classes in ``market.retry``, config and report in
  ``market.fetch_config`` / ``market.fetch_report``; this module walks the window.
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
  Bybit and KuCoin turnover: ``Dialect.quote_volume``), else null.

Not thread-safe: one ``CcxtSource`` per thread (ccxt clients are not thread-safe either).
"""

from __future__ import annotations

import time
from dataclasses import fields
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

import polars as pl

from kronos_assets.market.ccxt_client import ExchangeClient
from kronos_assets.market.fetch_config import CcxtSourceConfig, ExchangeConfig
from kronos_assets.market.fetch_report import FetchError, FetchReport, FetchResult, MalformedPayloadError
from kronos_assets.market.gaps import dt_to_ms, find_gaps, ms_to_dt
from kronos_assets.market.payloads import PageProblem, PayloadFault, RawRowError, page_rows, quote, short
from kronos_assets.market.retry import Fault, classify, parse_retry_after
from kronos_assets.market.schema import CANDLE_SCHEMA, validate_candles
from kronos_assets.market.timeframes import timeframe_seconds

__all__ = [
    "CcxtSource",
    "CcxtSourceConfig",
    "ExchangeConfig",
    "FetchError",
    "FetchReport",
    "FetchResult",
    "MalformedPayloadError",
]

# An exchange that fails this many request windows in a row, retries exhausted each time, is given up for the
# rest of the fetch (a dead exchange must not cost a full backoff on every window).
EXHAUSTED_WINDOWS_TO_DISABLE = 2


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
        self._exchanges = [ExchangeClient(e, self.config) for e in self.config.exchanges]
        self.last_report: FetchReport | None = None

    @classmethod
    def from_settings(
        cls, exchanges: Iterable[Any], *, sleep: Callable[[float], None] = time.sleep, **policy: Any
    ) -> "CcxtSource":
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

    def fetch(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, now: datetime | None = None
    ) -> pl.DataFrame:
        """CandleSource.fetch: the candle frame; the report of the call is in ``fetch_report()``."""
        return self.fetch_result(symbol, timeframe, start, end, now).candles

    def fetch_report(self) -> FetchReport | None:
        """Report of the last fetch (also set when it raised)."""
        return self.last_report

    def fetch_result(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, now: datetime | None = None
    ) -> FetchResult:
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

    def __init__(
        self, source: CcxtSource, report: FetchReport, symbol: str, timeframe: str, step: int, deadline_at: float
    ):
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

    def _chain(self) -> Iterable[ExchangeClient]:
        return [e for e in self.source._exchanges if e.id not in self.disabled]

    def _give_up(self, ex: ExchangeClient, exc: _GiveUp, at_ms: int) -> None:
        when = f"{ms_to_dt(at_ms):%Y-%m-%d %H:%M}"
        cause = str(exc)
        for prefix in (f"{ex.id}: ", f"{ex.id} "):  # the message names the exchange once
            cause = cause[len(prefix) :] if cause.startswith(prefix) else cause
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

    def _request(self, ex: ExchangeClient, w_start: int, w_end: int, kind: str) -> list[list]:
        """Bars of ``[w_start, w_end)`` from ``ex``, retried per the policy; ``_GiveUp`` when ex can't serve."""
        self._ensure_markets(ex)
        n = (w_end - w_start) // self.step
        if kind == "page":
            self.report.page_requests += 1
        else:
            self.report.gap_requests += 1

        def call() -> Any:
            return ex.client.fetch_ohlcv(
                self.symbol,
                self.timeframe,
                since=w_start,
                limit=n,
                params={"until": w_end - 1} if ex.dialect.sends_until else {},
            )

        raw = self._with_retries(ex, call, what=f"{kind} {ms_to_dt(w_start):%Y-%m-%d %H:%M}")
        try:
            return self._check_page(ex, raw, w_start, w_end)
        except MalformedPayloadError as exc:
            raise _GiveUp(str(exc), disable=False) from exc

    def _ensure_markets(self, ex: ExchangeClient) -> None:
        if not ex.markets_loaded:
            self._with_retries(ex, lambda: ex.client.load_markets(), what="markets")
            ex.markets_loaded = True
        market = ex.client.markets.get(self.symbol)
        if market is None:
            raise _GiveUp(f"{ex.id}: no spot market {self.symbol!r}", disable=True)
        if not market.get("spot"):
            raise _GiveUp(f"{ex.id}: {self.symbol!r} is not a spot market", disable=True)

    def _with_retries(self, ex: ExchangeClient, call: Callable[[], Any], what: str) -> Any:
        retry = 0
        while True:
            self._check_deadline(what)
            try:
                return call()
            except (RawRowError, MalformedPayloadError) as exc:
                raise _GiveUp(str(MalformedPayloadError(ex.id, ex.last_request, str(exc))), disable=False) from exc
            except PayloadFault as exc:
                if not exc.transient:
                    raise _GiveUp(str(MalformedPayloadError(ex.id, ex.last_request, str(exc))), disable=False) from exc
                fault, desc = Fault.TRANSIENT, str(MalformedPayloadError(ex.id, ex.last_request, str(exc)))
            except Exception as exc:  # noqa: BLE001 - classified below
                status = ex.status
                fault = classify(exc, status)
                desc = f"{ex.id} {what}: {type(exc).__name__}" + (f" (HTTP {status})" if status else "")
                if status is not None and 200 <= status < 300:  # an error in a 2xx body: say what the body was
                    desc += f" {quote(ex.client.last_http_response)}"
                if fault is Fault.MALFORMED:
                    raise _GiveUp(
                        str(MalformedPayloadError(ex.id, ex.last_request, f"{type(exc).__name__}: {exc}")),
                        disable=False,
                    ) from exc
                if fault is Fault.PERMANENT:
                    raise _GiveUp(f"{desc}: {short(exc)}", disable=True) from exc
            if fault is Fault.RATE_LIMIT:
                retry_after = parse_retry_after(ex.headers)
                if retry_after is not None and retry_after > self.policy.max_retry_after_s:
                    raise _GiveUp(
                        f"{desc}: Retry-After {retry_after:g}s exceeds {self.policy.max_retry_after_s:g}s", disable=True
                    )
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

    def _check_page(self, ex: ExchangeClient, raw: Any, w_start: int, w_end: int) -> list[list]:
        try:
            return page_rows(raw, self.step, w_start, w_end)
        except PageProblem as exc:
            raise MalformedPayloadError(ex.id, ex.last_request, str(exc), self.report) from exc
