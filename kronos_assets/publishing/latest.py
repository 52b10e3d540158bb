"""latest.json: a series' newest state, written by every publish of the series and read back by the next one.

Format 2 holds the snapshot (``contract.SeriesSnapshot``) without its forecasts: the newest forecast is published
once, in its immutable history file, which ``links.history`` names. The candles and the past forecasts are
tables (a ``columns`` list and ``rows`` of values in that order: ``pandas.DataFrame(rows, columns=columns)``).
Before format 2 (no ``format`` field) the forecasts were repeated inline and the tables were lists of objects:
a third of every tick's published bytes said twice. ``stored_snapshot`` reads either.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from kronos_assets.publishing.contract import HistoryDocument, LatestDocument, SeriesSnapshot, Table
from kronos_assets.publishing.keys import history_key, paths_key, series_keys
from kronos_assets.publishing.sentences import market_banner
from kronos_assets.publishing.store import Store

LATEST_FORMAT = 2
CANDLE_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
PAST_COLUMNS = ("origin", "ts", "median", "realised")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Table:
    return {"columns": list(columns), "rows": [[r[c] for c in columns] for r in rows]}


def records(value: Table | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A table's rows as objects (a format 1 list of objects as it is)."""
    if isinstance(value, list):
        return value
    columns = value["columns"]
    return [dict(zip(columns, row)) for row in value["rows"]]


def latest_document(snapshot: SeriesSnapshot) -> LatestDocument:
    """The snapshot without its forecasts (``links.history`` holds them), its tables compact, the banner flag and
    links (relative to the site root) to the rest."""
    symbol, timeframe, origin = snapshot["symbol"], snapshot["timeframe"], snapshot["origin"]
    keys = series_keys(symbol, timeframe)
    state = {k: v for k, v in snapshot.items() if k not in ("forecasts", "actual")}
    return state | {  # type: ignore[return-value]
        "format": LATEST_FORMAT,
        "candles": table(snapshot["candles"], CANDLE_COLUMNS),
        "past": table(snapshot["past"], PAST_COLUMNS),
        "demo_banner": market_banner(snapshot),
        "links": {
            "history": history_key(symbol, timeframe, origin),
            "paths": paths_key(symbol, timeframe, origin),
            "chart": keys["chart.html"],
            "chart_png": keys["chart.png"],
            "scoreboard": keys["scoreboard.json"],
            "dashboard": "index.html",
        },
    }


def snapshot_of(doc: dict[str, Any], history: HistoryDocument | None) -> SeriesSnapshot:
    """The snapshot a latest.json was written from; ``history``: the file its ``links.history`` names (unused for
    a format 1 document, which repeats the forecasts)."""
    snap = {k: v for k, v in doc.items() if k not in ("format", "demo_banner", "links")}
    if doc.get("format") is None:
        return snap  # type: ignore[return-value]
    if history is None or history.get("origin") != doc["origin"]:
        raise ValueError(f"latest.json of {doc['symbol']} {doc['timeframe']}: no forecast file for {doc['origin']}")
    return snap | {  # type: ignore[return-value]
        "forecasts": history["forecasts"],
        "candles": records(doc["candles"]),
        "past": records(doc["past"]),
    }


def _read(store: Store, key: str) -> Any:
    body = store.get(key)
    return json.loads(body) if body else None


def stored_snapshot(store: Store, symbol: str, timeframe: str, log: Any = None) -> SeriesSnapshot | None:
    """The snapshot of a series' published latest.json (with the forecasts of the history file it names); a
    missing or damaged one counts as none: the publish that has the series writes it anew, and until then the
    dashboard leaves the series out."""
    key = series_keys(symbol, timeframe)["latest.json"]
    try:
        doc = _read(store, key)
        if not isinstance(doc, dict) or "origin" not in doc:
            return None
        if doc.get("format") not in (None, LATEST_FORMAT):
            raise ValueError(f"format {doc.get('format')!r}, this release reads up to {LATEST_FORMAT}")
        history = _read(store, doc["links"]["history"]) if doc.get("format") else None
        return snapshot_of(doc, history)
    except (ValueError, KeyError, TypeError) as exc:
        if log is not None:
            log.warning(f"{store.location(key)} cannot be read ({type(exc).__name__}: {exc}); treated as not published")
        return None
