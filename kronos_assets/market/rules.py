"""The candle rules, each in one place: what a valid bar is, how amount follows from volume, and how old the
newest bar may be. Every reader, check and model input uses these names; none restates a rule.

* OHLC validity: prices positive, ``low <= min(open, close)``, ``high >= max(open, close)`` (so high >= low).
  Each violation is written once, as a SQL condition that DuckDB checks in stored tables and polars evaluates
  on frames (``pl.sql_expr``); ``ohlc_problem`` is the same rule for one parsed row (tested to agree).
* Volumes: volume and amount (quote volume) are never negative; a missing volume means volume = amount = 0 and
  a missing amount is volume x mean(open, high, low, close) (``volume_and_amount``, Kronos' own convention).
* Freshness: the newest bar is late (warn) once it closed more than ``FRESH_WARN_BARS`` bars plus
  ``FRESHNESS_SLACK`` ago and failing past ``FRESH_FAIL_BARS``; the slack is the schedule's few minutes after
  each close.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Literal

import numpy as np
import polars as pl

PRICE_COLUMNS = ("open", "high", "low", "close")

# (problem name, SQL condition that marks a violating row, what it means), in the order violations are reported.
OHLC_VIOLATIONS: tuple[tuple[str, str, str], ...] = (
    ("non_positive_price", "least(open, high, low, close) <= 0", "a price is zero or negative"),
    ("high_below_low", "high < low", "high is below low"),
    ("high_below_open_close", "high < greatest(open, close)", "high is below open/close"),
    ("low_above_open_close", "low > least(open, close)", "low is above open/close"),
)
# Any OHLC violation, as one SQL condition over columns open/high/low/close (DuckDB and polars SQL).
OHLC_INVALID_SQL = " OR ".join(f"({cond})" for _, cond, _ in OHLC_VIOLATIONS)
VOLUME_COLUMNS = ("volume", "amount")
NEGATIVE_VOLUME_SQL = "volume < 0"


def ohlc_violation_exprs() -> list[tuple[str, pl.Expr, str]]:
    """(problem, boolean polars expression true on violating rows, meaning) for each OHLC violation."""
    return [(name, pl.sql_expr(cond), text) for name, cond, text in OHLC_VIOLATIONS]


def ohlc_invalid_expr() -> pl.Expr:
    """True on rows that break any OHLC rule."""
    return pl.sql_expr(OHLC_INVALID_SQL)


def ohlc_problem(o: float, h: float, l: float, c: float) -> str | None:  # noqa: E741 - the usual OHLC names
    """The first OHLC violation of one bar (a name of OHLC_VIOLATIONS), or None; finite numbers expected."""
    if min(o, h, l, c) <= 0:
        return "non_positive_price"
    if h < l:
        return "high_below_low"
    if h < max(o, c):
        return "high_below_open_close"
    if l > min(o, c):
        return "low_above_open_close"
    return None


def is_finite_number(x: object) -> bool:
    """A real int or float (never a bool) that is finite."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def volume_and_amount(
    prices: dict[str, np.ndarray], volume: np.ndarray | None, amount: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(volume, amount) as a model reads them: no volume (None, or all NaN) -> both zero; a missing amount
    (None, or NaN in a row) -> volume x mean(open, high, low, close) of that row."""
    n = len(prices["close"])
    if volume is None or np.isnan(volume).all():
        zeros = np.zeros(n)
        return zeros, zeros.copy()
    derived = volume * np.mean([prices[c] for c in PRICE_COLUMNS], axis=0)
    return volume, derived if amount is None else np.where(np.isnan(amount), derived, amount)


FRESH_WARN_BARS, FRESH_FAIL_BARS = 2, 3
FRESHNESS_SLACK = timedelta(minutes=15)  # the schedule runs a few minutes after each bar closes
Freshness = Literal["OK", "WARN", "FAIL"]


def freshness_windows(step: timedelta) -> tuple[timedelta, timedelta]:
    """(warn, fail): how long after its close the newest bar of a ``step``-long timeframe may be."""
    return FRESH_WARN_BARS * step + FRESHNESS_SLACK, FRESH_FAIL_BARS * step + FRESHNESS_SLACK


def freshness(age: timedelta, step: timedelta) -> Freshness:
    """OK, WARN or FAIL for a newest bar that closed ``age`` ago."""
    warn, fail = freshness_windows(step)
    return "FAIL" if age > fail else "WARN" if age > warn else "OK"
