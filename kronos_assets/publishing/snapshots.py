"""Reads what the site shows from the warehouse: forecast records, recent candles, past forecasts, scoreboard."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from kronos_assets.warehouse import Warehouse, read_sql

CHART_BARS = 96
PAST_FORECASTS = 72


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def _rows(df) -> list[dict[str, Any]]:
    return [{k: _iso(v) for k, v in r.items()} for r in df.iter_rows(named=True)]


def forecast_records(wh: Warehouse, symbol: str, timeframe: str, origins: list[datetime]) -> list[dict[str, Any]]:
    """One record per origin with every model's summary, per-step quantiles, sampling and provenance."""
    heads = wh.query(
        "SELECT * FROM forecasts WHERE symbol = ? AND timeframe = ? AND origin IN (SELECT unnest(?::TIMESTAMPTZ[])) "
        "ORDER BY origin, model",
        [symbol, timeframe, origins],
    )
    steps = wh.query(
        "SELECT * FROM forecast_steps WHERE symbol = ? AND timeframe = ? "
        "AND origin IN (SELECT unnest(?::TIMESTAMPTZ[])) ORDER BY origin, model, step",
        [symbol, timeframe, origins],
    )
    by_key: dict[tuple, list] = {}
    for s in _rows(steps.drop("symbol", "timeframe")):
        by_key.setdefault((s.pop("origin"), s.pop("model")), []).append(s)
    records: dict[str, dict[str, Any]] = {}
    for h in _rows(heads):
        rec = records.setdefault(h["origin"], {"symbol": symbol, "timeframe": timeframe, "origin": h["origin"],
                                               "forecasts": {}})
        model = h["model"]
        h["sampling"] = json.loads(h["sampling"])
        h["provenance"] = json.loads(h["provenance"])
        h["steps"] = by_key.get((h["origin"], model), [])
        for k in ("symbol", "timeframe", "origin"):
            h.pop(k)
        rec["forecasts"][model] = h
    return [records[k] for k in sorted(records)]


def series_snapshot(
    wh: Warehouse, symbol: str, timeframe: str, origin: datetime, bar: timedelta, primary_model: str, synthetic: bool
) -> dict[str, Any] | None:
    """Everything the dashboard shows for a series at one origin, or None when no forecast exists there."""
    records = forecast_records(wh, symbol, timeframe, [origin])
    if not records or primary_model not in records[0]["forecasts"]:
        return None
    candles = wh.query(
        "SELECT ts, open, high, low, close, volume FROM clean_candles WHERE symbol = ? AND timeframe = ? "
        "AND ts < ? AND ts >= ? ORDER BY ts",
        [symbol, timeframe, origin, origin - CHART_BARS * bar],
    )
    past = wh.query(
        "SELECT origin, ts, median, realised FROM evaluations WHERE symbol = ? AND timeframe = ? AND model = ? "
        "AND step = horizon AND ts < ? ORDER BY origin DESC LIMIT ?",
        [symbol, timeframe, primary_model, origin, PAST_FORECASTS],
    ).reverse()
    return records[0] | {
        "primary_model": primary_model,
        "synthetic": synthetic,
        "last_bar": _iso(origin - bar),
        "candles": _rows(candles),
        "past": _rows(past),
    }


def scoreboard(wh: Warehouse, timeframe: str) -> list[dict[str, Any]]:
    return _rows(wh.query(read_sql("scoreboard.sql"), {"timeframe": timeframe}))
