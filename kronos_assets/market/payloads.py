"""Is an exchange's answer what its API promises? Raw kline answers (before ccxt reads them) against the
exchange's dialect, and ccxt's parsed rows of one request window against the candle rules.

Both raise with a message naming the row and the value; the caller decides whose fault it is.
"""

from __future__ import annotations

import json
from typing import Any

from kronos_assets.market.dialects import FIELD_KINDS, dialect_for
from kronos_assets.market.gaps import ms_to_dt
from kronos_assets.market.rules import is_finite_number, ohlc_problem


class PayloadFault(Exception):
    """A 2xx kline answer that is not what the exchange's API promises. ``transient``: the body is not JSON at
    all (a cut connection, a proxy page): worth a retry. Otherwise the next exchange is asked."""

    def __init__(self, problem: str, transient: bool):
        super().__init__(problem)
        self.transient = transient


class RawRowError(Exception):
    """A raw kline row ccxt cannot turn into a bar (too few fields, a quote volume that is not a number)."""


class PageProblem(Exception):
    """ccxt's rows for one request window are broken, conflicting, or do not advance."""


def json_text(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


def quote(body: Any, limit: int = 160) -> str:
    text = body if isinstance(body, str) else repr(body)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_kline_answer(exchange_id: str, body: Any) -> None:
    """Raise ``PayloadFault`` unless ``body`` (ccxt's parsed answer: JSON, or the raw text when it was not
    JSON) is a kline answer of ``exchange_id`` whose every row has that format's exact field count and types."""
    if not isinstance(body, (list, dict)):
        raise PayloadFault(f"the body is not JSON: {quote(body)}", transient=True)
    dialect = dialect_for(exchange_id)
    rows = dialect.rows(body)
    if rows is None:
        raise PayloadFault(f"expected {dialect.shape}, got {quote(json_text(body))}", transient=False)
    spec = dialect.fields
    if spec is None:
        return
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(spec):
            n = f"{len(row)} fields" if isinstance(row, list) else type(row).__name__
            raise PayloadFault(
                f"kline row {i + 1} has {n}, {exchange_id} kline rows have {len(spec)}: {quote(json_text(row))}",
                transient=False,
            )
        for (name, kind), x in zip(spec, row):
            fits, want = FIELD_KINDS[kind]
            if not fits(x):
                raise PayloadFault(f"kline row {i + 1}: {name} is {x!r}, expected {want}", transient=False)


def quote_volume(exchange_id: str, raw_row: list | tuple) -> float | None:
    """The quote volume of a raw kline row where its dialect has one, else None; RawRowError if not a number."""
    for idx in dialect_for(exchange_id).quote_volume:
        if len(raw_row) > idx and raw_row[idx] not in (None, ""):
            try:
                return float(raw_row[idx])
            except (TypeError, ValueError):
                raise RawRowError(f"quote volume {raw_row[idx]!r} is not a number") from None
    return None


def page_rows(raw: Any, step: int, w_start: int, w_end: int) -> list[list]:
    """The rows of ``[w_start, w_end)`` in ccxt's parsed answer ([ts, o, h, l, c, v, amount] each), sorted and
    deduplicated, or PageProblem when a row is broken, two rows for one open time differ, or the answer does not
    advance (bars before the start asked for, or only bars outside the window: an exchange that ignores the
    cursor would otherwise end the data silently)."""
    if not isinstance(raw, list):
        raise PageProblem(f"ccxt returned {type(raw).__name__}")
    out: dict[int, list] = {}
    for row in raw:
        problem = row_problem(row, step)
        if problem:
            raise PageProblem(problem)
        ts = row[0]
        if ts < w_start:
            raise PageProblem(
                f"pagination does not advance: asked for bars from {ms_to_dt(w_start):%Y-%m-%d %H:%M}, "
                f"got one opening {ms_to_dt(ts):%Y-%m-%d %H:%M}"
            )
        if ts in out and out[ts] != row:
            raise PageProblem(
                f"two different rows for the bar opening {ms_to_dt(ts):%Y-%m-%d %H:%M} UTC: "
                f"{_ohlcv(out[ts])} and {_ohlcv(row)}"
            )
        if ts < w_end:
            out[ts] = row
    if raw and not out:
        raise PageProblem(
            f"pagination does not advance: asked for bars of [{ms_to_dt(w_start):%Y-%m-%d %H:%M}, "
            f"{ms_to_dt(w_end):%Y-%m-%d %H:%M}), got only bars outside it, the first opening "
            f"{ms_to_dt(raw[0][0]):%Y-%m-%d %H:%M}"
        )
    return [out[t] for t in sorted(out)]


def _ohlcv(row: list) -> str:
    return "open {} high {} low {} close {} volume {}".format(*row[1:6])


def row_problem(row: Any, step: int) -> str | None:
    """What is wrong with one parsed row [ts, o, h, l, c, v, amount] on a ``step`` ms grid, or None."""
    if not isinstance(row, list) or len(row) != 7:
        return f"unexpected parsed row {row!r}"
    ts, o, h, l, c, v, a = row  # noqa: E741
    if not isinstance(ts, int) or isinstance(ts, bool):
        return f"row {row[:6]!r}: timestamp is not an integer"
    if ts % step:
        return f"row at {ts}: open time is not on the {step // 1000}s grid"
    at = f"row at {ms_to_dt(ts):%Y-%m-%d %H:%M}"
    for name, x in (("open", o), ("high", h), ("low", l), ("close", c), ("volume", v)):
        if not is_finite_number(x):
            return f"{at}: {name} is {x!r}"
    if a is not None and (not is_finite_number(a) or a < 0):
        return f"{at}: quote volume is {a!r}"
    problem = ohlc_problem(o, h, l, c)
    if problem == "non_positive_price" or v < 0:
        return f"{at}: non-positive price or negative volume"
    if problem:
        return f"{at}: high/low do not bound open/close"
    return None
