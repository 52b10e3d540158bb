"""What a tick still has to do, read from the warehouse (the source of truth for what is stored).

* candle days whose stored clean candles stop before the day's last closed bar;
* forecasts missing, or stored at another version key (forecasting/versions.py), per model and bar;
* evaluation bars whose horizon has closed and whose forecasts are not all scored;
* a digest of what the published site is made of, compared with the one the manifest was written with.

Each is a few small SQL reads, so a tick with nothing new costs milliseconds here. The assets use the same
functions to skip stored work inside their partitions, so a run over stored bars (a retried sensor request, a UI
backfill) recomputes nothing either. Bars are partition bars: bar k opens at k, its forecast origin is k + 1 bar.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Sequence

from kronos_assets.forecasting.versions import VERSION_FIELD
from kronos_assets.warehouse import Warehouse


def candle_days_to_refresh(
    wh: Warehouse, symbol: str, timeframe: str, step: timedelta, first_bar: datetime, newest_bar: datetime
) -> list[datetime]:
    """UTC days from ``first_bar``'s to ``newest_bar``'s whose clean candles lack the day's last closed bar (the
    newest bar for the current day). A day stored whole is not fetched again."""
    day0 = first_bar.replace(hour=0, minute=0, second=0, microsecond=0)
    stored = wh.query(
        "SELECT date_trunc('day', ts) AS day, max(ts) AS last FROM clean_candles "
        "WHERE symbol = ? AND timeframe = ? AND ts >= ? AND ts <= ? GROUP BY ALL",
        [symbol, timeframe, day0, newest_bar],
    )
    last = {d: t for d, t in zip(stored["day"].to_list(), stored["last"].to_list())} if stored.height else {}
    out, day = [], day0
    while day <= newest_bar:
        want = min(day + timedelta(days=1) - step, newest_bar)
        have = last.get(day)
        if have is None or have < want:
            out.append(day)
        day += timedelta(days=1)
    return out


def forecasts_to_make(
    wh: Any,
    symbol: str,
    timeframe: str,
    step: timedelta,
    bars: Sequence[datetime],
    versions: dict[str, str],
    only_with_candles: bool = False,
) -> dict[str, list[datetime]]:
    """Model -> the bars (sorted) whose forecast is not stored at the model's current version key.
    ``only_with_candles``: leave out bars not in clean candles yet (nothing can be forecast there)."""
    if not bars:
        return {}
    origins = [b + step for b in bars]
    stored = wh.query(
        f"SELECT origin, model, json_extract_string(provenance, '$.{VERSION_FIELD}') AS version FROM forecasts "
        "WHERE symbol = ? AND timeframe = ? AND origin IN (SELECT unnest(?::TIMESTAMPTZ[]))",
        [symbol, timeframe, origins],
    )
    have = (
        {
            (o, m): v
            for o, m, v in zip(stored["origin"].to_list(), stored["model"].to_list(), stored["version"].to_list())
        }
        if stored.height
        else {}
    )
    candidates = list(bars)
    if only_with_candles:
        present = wh.query(
            "SELECT ts FROM clean_candles WHERE symbol = ? AND timeframe = ? "
            "AND ts IN (SELECT unnest(?::TIMESTAMPTZ[]))",
            [symbol, timeframe, list(bars)],
        )
        known = set(present["ts"].to_list()) if present.height else set()
        candidates = [b for b in bars if b in known]
    out: dict[str, list[datetime]] = {}
    for model, version in versions.items():
        todo = sorted(b for b in candidates if have.get((b + step, model)) != version)
        if todo:
            out[model] = todo
    return out


def scores_to_make(
    wh: Any, symbol: str, timeframe: str, step: timedelta, horizon: int, bars: Sequence[datetime]
) -> dict[datetime, list[str]]:
    """Bar k -> the models (sorted) whose forecast made at origin k - (horizon - 1) bars is stored but not scored
    at k. Bars with no forecast at their origin have nothing to score and are left out."""
    if not bars:
        return {}
    origin_of = {k - (horizon - 1) * step: k for k in bars}
    made = wh.query(
        "SELECT origin, model FROM forecasts WHERE symbol = ? AND timeframe = ? "
        "AND origin IN (SELECT unnest(?::TIMESTAMPTZ[]))",
        [symbol, timeframe, list(origin_of)],
    )
    scored = wh.query(
        "SELECT DISTINCT origin, model FROM evaluations WHERE symbol = ? AND timeframe = ? "
        "AND scored_bar IN (SELECT unnest(?::TIMESTAMPTZ[]))",
        [symbol, timeframe, list(bars)],
    )
    done = set(scored.iter_rows())
    out: dict[datetime, list[str]] = defaultdict(list)
    for o, m in made.iter_rows():
        if (o, m) not in done:
            out[origin_of[o]].append(m)
    return {k: sorted(out[k]) for k in sorted(out)}


def bars_to_score(
    wh: Any, symbol: str, timeframe: str, step: timedelta, horizon: int, bars: Sequence[datetime]
) -> list[datetime]:
    """The bars (sorted) with a stored forecast not yet scored (``scores_to_make``)."""
    return list(scores_to_make(wh, symbol, timeframe, step, horizon, bars))


def _where(timeframe: str, symbols: Sequence[str] | None) -> tuple[str, list[Any]]:
    if symbols is None:
        return "timeframe = ?", [timeframe]
    return "timeframe = ? AND symbol IN (SELECT unnest(?::VARCHAR[]))", [timeframe, list(symbols)]


def scores_digest(wh: Any, timeframe: str, symbols: Sequence[str] | None = None) -> str:
    """A digest of a timeframe's final-step scores: what the track record and the scoreboard are computed from.
    Read from their monthly sums (score_months: each count and sum of each metric, kept in the transaction that
    writes the scores), so it costs the same with a year of scores as with a day. The sums are rounded to 1e-9:
    summing the same scores in another order changes their last bits, not the digest. ``symbols`` None: every
    series in the warehouse."""
    from kronos_assets.warehouse.score_sums import MONTHS, columns

    where, params = _where(timeframe, symbols)
    parts = ", ".join(f"round({c}, 9)" if t == "DOUBLE" else c for c, t in columns())
    row = wh.query(
        f"SELECT sum(n) AS n, bit_xor(hash(symbol, model, month, {parts})) AS h FROM {MONTHS} "
        f"WHERE step = horizon AND {where}",
        params,
    ).row(0)
    return f"{row[0] or 0}-{row[1] or 0}"


def publish_inputs(wh: Any, timeframe: str, symbols: Sequence[str] | None) -> str:
    """A digest of what a timeframe's published files are made of: every stored forecast of the public series
    (key, version, headline numbers) and their final-step scores. Equal digests: publishing again would change
    nothing. ``symbols`` None: every series in the warehouse."""
    where, params = _where(timeframe, symbols)
    row = wh.query(
        f"SELECT count(*) AS n, bit_xor(hash(symbol, origin, model, provenance, p_up, last_close)) AS h "
        f"FROM forecasts WHERE {where}",
        params,
    ).row(0)
    return f"{row[0]}-{row[1] or 0}-{scores_digest(wh, timeframe, symbols)}"
