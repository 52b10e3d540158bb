"""Rows of the warehouse's forecast and evaluation tables, built from forecasts and read back for publishing.

Dagster-free: the assets call these with data they read and write through warehouse.Warehouse.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Sequence

import numpy as np
import polars as pl

from kronos_assets.forecasting.interface import CLOSE, PATH_FIELDS, VOLUME, Forecast, Sampling
from kronos_assets.forecasting.summary import QUANTILE_LEVELS, summarise
from kronos_assets.metrics import score_paths
from kronos_assets.warehouse import Warehouse, score_sums

FORECAST_TABLES = ("forecasts", "forecast_steps", "forecast_paths")
Q_COLS = tuple(f"q{round(q * 100):02d}" for q in QUANTILE_LEVELS)
TS = pl.Datetime("us", "UTC")


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


# forecast_paths keeps close as DOUBLE and the other fields as FLOAT (dbt_free_sql/schema.sql)
_FLOAT_FIELDS = [j for j, f in enumerate(PATH_FIELDS) if f != "close"]


def stored_paths(paths: np.ndarray) -> np.ndarray:
    """The paths as the warehouse keeps them (fields but close at FLOAT precision), so that the summaries stored
    beside them are the summaries of the stored paths."""
    out = np.array(paths, dtype=np.float64)
    out[..., _FLOAT_FIELDS] = out[..., _FLOAT_FIELDS].astype(np.float32)
    return out


def forecast_frames(forecasts: Sequence[Forecast], sampling: Sampling) -> dict[str, pl.DataFrame]:
    """Rows for forecasts, forecast_steps and forecast_paths."""
    heads, steps, paths = [], [], []
    for fc in forecasts:
        req = fc.request
        hist = req.history
        close = hist["close"].to_numpy()
        drawn = stored_paths(fc.paths)
        s = summarise(drawn[..., CLOSE], drawn[..., VOLUME], close)
        key = {"symbol": req.symbol, "timeframe": req.timeframe, "origin": req.origin, "model": fc.model}
        exchanges = sorted(set(hist["exchange"].to_list()))
        heads.append(
            key
            | {
                "n_paths": fc.paths.shape[0],
                "horizon": fc.paths.shape[1],
                "last_close": float(close[-1]),
                "p_up": s.p_up,
                "p_vol_amp": s.p_vol_amp,
                "recent_vol": s.recent_vol,
                "data_start": hist["ts"][0],
                "data_end": hist["ts"][-1],
                "exchange": ",".join(exchanges),
                "seed": req.seed,
                "sampling": json.dumps(sampling.as_dict(), sort_keys=True),
                "provenance": json.dumps(fc.provenance, sort_keys=True, default=str),
            }
        )
        for i, ts in enumerate(req.future_ts):
            steps.append(
                key
                | {"step": i + 1, "ts": ts}
                | {q: float(s.quantiles[j, i]) for j, q in enumerate(Q_COLS)}
                | {
                    "mean_close": float(s.mean_close[i]),
                    "median_close": float(s.median_close[i]),
                    "mean_volume": _finite(s.mean_volume[i]),  # NULL when the model does not forecast volume
                    "median_volume": _finite(s.median_volume[i]),
                }
            )
        for p in range(fc.paths.shape[0]):
            paths.append(key | {"path": p} | {f: drawn[p, :, j].tolist() for j, f in enumerate(PATH_FIELDS)})
    key_schema = {"symbol": pl.Utf8, "timeframe": pl.Utf8, "origin": TS, "model": pl.Utf8}
    return {
        "forecasts": pl.DataFrame(heads, schema_overrides=key_schema | {"data_start": TS, "data_end": TS}),
        "forecast_steps": pl.DataFrame(
            steps, schema_overrides=key_schema | {"ts": TS, "mean_volume": pl.Float64, "median_volume": pl.Float64}
        ),
        "forecast_paths": pl.DataFrame(
            paths, schema_overrides=key_schema | {f: pl.List(pl.Float64) for f in PATH_FIELDS}
        ),
    }


def load_close_paths(wh: Warehouse, symbol: str, timeframe: str, origins: Sequence[datetime]) -> pl.DataFrame:
    """Heads of the forecasts at the given origins with their close paths as an (n_paths, H) array column."""
    if not origins:
        return pl.DataFrame()
    return wh.query(
        """
        SELECT f.origin, f.model, f.horizon, f.last_close, f.p_up, f.p_vol_amp, f.recent_vol,
               list(p.close ORDER BY p.path) AS close_paths
        FROM forecasts f JOIN forecast_paths p USING (symbol, timeframe, origin, model)
        WHERE f.symbol = ? AND f.timeframe = ? AND f.origin IN (SELECT unnest(?::TIMESTAMPTZ[]))
        GROUP BY ALL ORDER BY f.origin, f.model
        """,
        [symbol, timeframe, list(origins)],
    )


def evaluation_rows(
    head: dict[str, Any], realised: pl.DataFrame, symbol: str, timeframe: str, bar: timedelta, scored_bar: datetime
) -> list[dict[str, Any]]:
    """Score one stored forecast against the realised closes of its horizon (all of which must be present)."""
    horizon = head["horizon"]
    origin = head["origin"]
    want = [origin + i * bar for i in range(horizon)]
    got = dict(zip(realised["ts"].to_list(), realised["close"].to_list()))
    missing = [t for t in want if t not in got]
    if missing:
        raise ValueError(
            f"{symbol} {timeframe} forecast at {origin}: {len(missing)} of {horizon} horizon bars not realised "
            f"(first missing {missing[0]}); it is scored once every bar of its horizon has closed"
        )
    close_paths = np.asarray(head["close_paths"], dtype=np.float64)
    rows = score_paths(
        close_paths,
        np.array([got[t] for t in want]),
        head["last_close"],
        QUANTILE_LEVELS,
        p_vol_amp=head["p_vol_amp"],
        recent_vol=head["recent_vol"],
    )
    base = {
        "symbol": symbol,
        "timeframe": timeframe,
        "origin": origin,
        "model": head["model"],
        "horizon": horizon,
        "scored_bar": scored_bar,
    }
    return [base | r | {"ts": want[r["step"] - 1]} for r in rows]


def store_forecasts(
    warehouse: Warehouse,
    frames: dict[str, pl.DataFrame],
    symbol: str,
    timeframe: str,
    model: str,
    origins: Sequence[datetime],
) -> None:
    """One series' and model's forecasts at ``origins`` replaced in one transaction: their rows, steps and paths;
    their scores (made from the forecasts replaced) deleted and the running aggregates of those origins' days
    refreshed, so the evaluations step scores them again and no track record read in between counts old scores."""
    origins = list(origins)
    warehouse.replace_many(
        {**{t: frames[t] for t in FORECAST_TABLES}, "evaluations": pl.DataFrame()},
        "symbol = ? AND timeframe = ? AND model = ? AND origin IN (SELECT unnest(?::TIMESTAMPTZ[]))",
        [symbol, timeframe, model, origins],
        after=lambda con: score_sums.refresh(con, symbol, timeframe, score_sums.origin_days(origins)),
    )
