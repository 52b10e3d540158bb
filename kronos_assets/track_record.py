"""The track record of a timeframe: scoreboards, Diebold-Mariano tests against the random walk with volatility,
the reliability of P(up) and the PIT histogram. SQL in dbt_free_sql/ does the aggregation; the DM p-values
need a t distribution, so they are computed here from the loss pairs the SQL selects."""

from __future__ import annotations

from datetime import datetime
from typing import Any


from kronos_assets.metrics import diebold_mariano
from kronos_assets.warehouse import Warehouse, json_rows, read_sql

DM_WINDOWS = {"30d": 30, "all": None}
MIN_DM_PAIRS = 30  # fewer realised forecasts say nothing either way


def newest_scored_origin(wh: Warehouse, timeframe: str) -> datetime | None:
    return wh.query("SELECT max(origin) AS t FROM evaluations WHERE timeframe = ?", [timeframe])["t"][0]


def dm_tests(wh: Warehouse, timeframe: str, as_of: datetime) -> list[dict[str, Any]]:
    """One test per symbol, model and window: is the model's CRPS different from the baseline's?"""
    out = []
    for window, days in DM_WINDOWS.items():
        pairs = wh.query(read_sql("loss_pairs.sql"), {"timeframe": timeframe, "as_of": as_of, "days": days})
        for (symbol, model), grp in pairs.group_by(["symbol", "model"], maintain_order=True):
            n, horizon = grp.height, int(grp["horizon"][0])
            row = {"symbol": symbol, "timeframe": timeframe, "model": model, "window_name": window, "n": n,
                   "mean_loss_difference": float((grp["loss_model"] - grp["loss_baseline"]).mean())}
            try:
                if n < MIN_DM_PAIRS:
                    raise ValueError(f"only {n} paired forecasts (< {MIN_DM_PAIRS})")
                stat, p = diebold_mariano(grp["loss_model"].to_numpy(), grp["loss_baseline"].to_numpy(), horizon)
                better = stat < 0 and p < 0.05
                worse = stat > 0 and p < 0.05
                row |= {"statistic": float(stat), "p_value": float(p),
                        "verdict": "better than baseline" if better else "worse than baseline" if worse
                        else "no significant difference"}
            except ValueError as exc:
                row |= {"statistic": None, "p_value": None, "verdict": f"not tested: {exc}"}
            out.append(row)
    return out


def track_record(wh: Warehouse, timeframe: str, as_of: datetime | None = None) -> dict[str, Any]:
    """Everything the scoreboard shows for one timeframe, as JSON-ready rows."""
    as_of = as_of or newest_scored_origin(wh, timeframe)
    if as_of is None:
        return {"timeframe": timeframe, "as_of": None, "scoreboard": [], "dm_tests": [], "reliability": [],
                "pit_histogram": []}
    params = {"timeframe": timeframe}
    return {
        "timeframe": timeframe,
        "as_of": as_of.isoformat(),
        "scoreboard": json_rows(wh.query(read_sql("scoreboard.sql"), params | {"as_of": as_of})),
        "dm_tests": dm_tests(wh, timeframe, as_of),
        "reliability": json_rows(wh.query(read_sql("reliability.sql"), params)),
        "pit_histogram": json_rows(wh.query(read_sql("pit_histogram.sql"), params)),
    }
