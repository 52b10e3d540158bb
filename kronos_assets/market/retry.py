"""How an exchange fault is handled: waited out and retried, or handed to the next exchange.

ccxt raises one family of exceptions for very different HTTP answers (a 451 geo-block and a 503 are both
``ExchangeNotAvailable``), so the HTTP status of the failed response, when there was one, decides first and the
exception class second.
"""

from __future__ import annotations

import email.utils
import enum
import time
from dataclasses import dataclass
from typing import Mapping

import ccxt


class Fault(enum.Enum):
    RATE_LIMIT = "rate_limit"  # 429/418: wait Retry-After (bounded), then retry the same exchange
    TRANSIENT = "transient"  # 5xx, 408, timeouts, connection resets: back off, retry the same exchange
    PERMANENT = "permanent"  # bad symbol, 451, other 4xx: this exchange cannot serve the request; next exchange
    MALFORMED = "malformed"  # a 2xx whose body is not what the exchange's API promises: next exchange


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4  # retries per request on one exchange (attempts = max_retries + 1)
    backoff_s: float = 0.5  # first transient backoff; doubles per retry
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0  # a Retry-After longer than this (an IP ban) gives the exchange up for the fetch

    def backoff(self, retry: int) -> float:
        return min(self.backoff_s * (2**retry), self.backoff_max_s)

    def rate_limit_wait(self, retry_after: float | None, retry: int) -> float:
        return self.backoff(retry) if retry_after is None else max(retry_after, 0.0)


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds, fractional accepted, or an HTTP date)."""
    if not headers:
        return None
    value = None
    for k, v in headers.items():
        if k.lower() == "retry-after":
            value = str(v).strip()
            break
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def classify(exc: BaseException, status: int | None) -> Fault:
    """The kind of fault ``exc`` is, given the HTTP status of the response that caused it (None: no response)."""
    if status in (418, 429):
        return Fault.RATE_LIMIT
    if status is not None and (status >= 500 or status == 408):
        return Fault.TRANSIENT
    if status == 451:
        return Fault.PERMANENT
    if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        return Fault.RATE_LIMIT
    if isinstance(exc, (ccxt.BadResponse, ccxt.NullResponse)):
        return Fault.MALFORMED
    if status is not None and 400 <= status < 500:
        return Fault.PERMANENT
    if isinstance(
        exc,
        (
            ccxt.BadSymbol,
            ccxt.BadRequest,
            ccxt.AuthenticationError,
            ccxt.PermissionDenied,
            ccxt.NotSupported,
            ccxt.AccountSuspended,
        ),
    ):
        return Fault.PERMANENT
    if isinstance(exc, ccxt.NetworkError):  # RequestTimeout, ExchangeNotAvailable, OnMaintenance, resets
        return Fault.TRANSIENT
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return Fault.TRANSIENT
    if isinstance(exc, ccxt.BaseError):
        return Fault.PERMANENT
    return Fault.MALFORMED
