"""The evaluations columns of metrics registered after the first tables (``metrics.registry``, ``since`` > 1):
added to a new warehouse after schema.sql, and to an older one by the migration of their schema version, which
also scores the stored forecasts for them (from their stored sample paths and the realised closes the evaluations
hold), so an upgrade keeps one whole record rather than a column of NULLs. An evaluation whose forecast's paths
are not stored keeps NULL there."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import polars as pl

from kronos_assets.metrics import QUANTILE_LEVELS, score_paths
from kronos_assets.metrics.registry import Metric, added_since, column_versions

FIRST_TABLES = 3  # the newest schema version whose evaluations columns are all in schema.sql
BATCH = 500  # forecasts scored per UPDATE: bounds the memory a large warehouse's migration needs
KEYS = ("symbol", "timeframe", "origin", "model")


def add_columns(con: Any, metrics: list[Metric]) -> None:
    for m in metrics:
        con.execute(f"ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS {m.ddl()}")


def create_added(con: Any) -> None:
    """After schema.sql on a new warehouse: every later metric's column, in the order migrations add them."""
    for version in column_versions():
        if version > FIRST_TABLES:
            add_columns(con, added_since(version))


def _scored(con: Any) -> list[tuple[Any, ...]]:
    """(symbol, timeframe, model, origins) of the forecasts with every horizon step evaluated and paths stored."""
    return con.execute(
        "WITH e AS (SELECT symbol, timeframe, origin, model FROM evaluations GROUP BY ALL "
        "HAVING count(*) = any_value(horizon)) "
        "SELECT e.symbol, e.timeframe, e.model, list(e.origin ORDER BY e.origin) FROM e "
        "WHERE EXISTS (SELECT 1 FROM forecast_paths p WHERE p.symbol = e.symbol AND p.timeframe = e.timeframe "
        "AND p.origin = e.origin AND p.model = e.model) GROUP BY ALL ORDER BY ALL"
    ).fetchall()


def fill(con: Any, metrics: list[Metric]) -> int:
    """Scores the stored forecasts for ``metrics`` and writes their values into the evaluations; returns the
    forecasts filled."""
    names = [m.name for m in metrics]
    filled = 0
    for symbol, timeframe, model, origins in _scored(con):
        for i in range(0, len(origins), BATCH):
            part = origins[i : i + BATCH]
            heads = con.execute(
                "SELECT f.origin, f.last_close, f.p_vol_amp, f.recent_vol, "
                "(SELECT list(p.close ORDER BY p.path) FROM forecast_paths p WHERE p.symbol = f.symbol "
                " AND p.timeframe = f.timeframe AND p.origin = f.origin AND p.model = f.model) AS close_paths, "
                "(SELECT list(e.realised ORDER BY e.step) FROM evaluations e WHERE e.symbol = f.symbol "
                " AND e.timeframe = f.timeframe AND e.origin = f.origin AND e.model = f.model) AS realised "
                "FROM forecasts f WHERE f.symbol = ? AND f.timeframe = ? AND f.model = ? "
                "AND f.origin IN (SELECT unnest(?::TIMESTAMPTZ[]))",
                [symbol, timeframe, model, part],
            ).pl()
            rows = []
            for h in heads.iter_rows(named=True):
                scored = score_paths(
                    np.asarray(h["close_paths"], dtype=np.float64),
                    np.asarray(h["realised"]),
                    h["last_close"],
                    QUANTILE_LEVELS,
                    h["p_vol_amp"],
                    h["recent_vol"],
                )
                key = {"symbol": symbol, "timeframe": timeframe, "origin": h["origin"], "model": model}
                rows += [key | {"step": r["step"]} | {n: r[n] for n in names} for r in scored]
            if not rows:
                continue
            frame = pl.DataFrame(rows, schema_overrides={n: pl.Float64 for n in names}, infer_schema_length=None)
            con.register("_metric_fill", frame.to_arrow())
            on = " AND ".join(f"e.{k} = u.{k}" for k in (*KEYS, "step"))
            con.execute(
                f"UPDATE evaluations e SET {', '.join(f'{n} = u.{n}' for n in names)} FROM _metric_fill u WHERE {on}"
            )
            con.unregister("_metric_fill")
            filled += heads.height
    return filled


def migration(version: int) -> Callable[[Any], None]:
    """The migration of ``version``: its metrics' columns, filled for the stored forecasts."""

    def apply(con: Any) -> None:
        added = added_since(version)
        add_columns(con, added)
        fill(con, added)

    return apply
