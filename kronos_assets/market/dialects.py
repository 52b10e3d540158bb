"""What differs between exchanges: one ``Dialect`` entry per exchange, registered in ``DIALECTS``.

Adding an exchange that ccxt supports is one entry here: its page size, the path endings of its kline
endpoints, how to find the rows in a kline answer, the exact fields of one raw row, where the quote volume is,
and any ccxt options it needs to load spot markets in one request. An exchange without an entry still works
through ``GENERIC`` (ccxt parses its rows; the raw answer is only checked to be JSON).

Field kinds of a raw row are in ``FIELD_KINDS`` (a new format's kind goes there too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

_DECIMAL = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_digits(x: Any) -> bool:
    return isinstance(x, str) and x.isdigit()


# kind -> (does a raw field value have it, what it should have been)
FIELD_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "ms": (_is_int, "an integer time in ms"),
    "ms_text": (_is_digits, "a time in ms as a digit string"),
    "s_text": (_is_digits, "a time in seconds as a digit string"),
    "num": (lambda x: isinstance(x, str) and bool(_DECIMAL.match(x)), "a decimal string"),
    "int": (_is_int, "an integer"),
    "flag": (lambda x: x in ("0", "1"), '"0" or "1"'),
    "any": (lambda x: True, "anything"),
}


def _list(body: Any) -> list | None:
    return body if isinstance(body, list) else None


def _path(*keys: str) -> Callable[[Any], list | None]:
    """Rows found under ``body[k1][k2]...``, None when a level is missing or the rows are not a list."""

    def rows(body: Any) -> list | None:
        for k in keys:
            body = body.get(k) if isinstance(body, dict) else None
        return body if isinstance(body, list) else None

    return rows


@dataclass(frozen=True)
class Dialect:
    id: str  # the ccxt exchange id
    page_limit: int  # largest page its spot kline endpoint serves
    kline_paths: tuple[str, ...]  # path endings of its kline endpoints: their answers are checked before ccxt
    shape: str  # what a kline answer looks like, for error messages
    rows: Callable[[Any], list | None]  # the rows of a parsed kline answer; None: not that shape
    fields: tuple[tuple[str, str], ...] | None = None  # (name, kind) of each raw row field; None: unchecked
    quote_volume: tuple[int, ...] = ()  # candidate indices of the quote volume in a raw row, first present wins
    options: dict[str, Any] = field(default_factory=dict)  # ccxt options it needs (under the user's own)
    sends_until: bool = True  # ccxt maps params["until"] to its end-of-window parameter (else ccxt derives one)


DIALECTS: dict[str, Dialect] = {
    d.id: d
    for d in (
        Dialect(
            "binance",
            1000,
            ("/klines",),
            "a JSON array of klines",
            _list,
            (
                ("open time", "ms"),
                ("open", "num"),
                ("high", "num"),
                ("low", "num"),
                ("close", "num"),
                ("volume", "num"),
                ("close time", "ms"),
                ("quote volume", "num"),
                ("trades", "int"),
                ("taker base volume", "num"),
                ("taker quote volume", "num"),
                ("ignore", "any"),
            ),
            quote_volume=(7,),
        ),
        Dialect(
            "okx",
            100,
            ("/candles", "/history-candles"),
            "an object with a 'data' array",
            _path("data"),
            (
                ("ts", "ms_text"),
                ("open", "num"),
                ("high", "num"),
                ("low", "num"),
                ("close", "num"),
                ("vol", "num"),
                ("volCcy", "num"),
                ("volCcyQuote", "num"),
                ("confirm", "flag"),
            ),
            quote_volume=(7, 6),
        ),
        Dialect(
            "bybit",
            1000,
            ("/kline",),
            "an object with 'result.list'",
            _path("result", "list"),
            (
                ("startTime", "ms_text"),
                ("open", "num"),
                ("high", "num"),
                ("low", "num"),
                ("close", "num"),
                ("volume", "num"),
                ("turnover", "num"),
            ),
            quote_volume=(6,),
        ),
        # KuCoin: times in seconds, prices in open-close-high-low order; its fee lookup would cost a second request.
        # At most 1500 rows, newest first, and ccxt asks up to endAt = since + limit bars: with an inclusive endAt a
        # 1500-bar page would lose its oldest bar, so 1499.
        Dialect(
            "kucoin",
            1499,
            ("/market/candles",),
            "an object with a 'data' array",
            _path("data"),
            (
                ("time", "s_text"),
                ("open", "num"),
                ("close", "num"),
                ("high", "num"),
                ("low", "num"),
                ("volume", "num"),
                ("turnover", "num"),
            ),
            quote_volume=(6,),
            options={"fetchMarkets": {"fetchTickersFees": False}},
            sends_until=False,
        ),
    )
}
GENERIC = Dialect("*", 500, ("/klines", "/candles", "/kline"), "klines", lambda body: [] if body is not None else None)


def dialect_for(exchange_id: str) -> Dialect:
    return DIALECTS.get(exchange_id, GENERIC)
