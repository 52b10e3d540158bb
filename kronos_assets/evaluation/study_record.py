"""The real-data study's numbers, recomputed from the warehouse alone: verdicts by month and overall, calibration,
and the long/flat strategy against buy-and-hold (no Dagster here; kronos_assets/cli/study.py runs the backfill).

Verdicts reuse the track record's comparison (track_record.compare_losses: means and the Diebold-Mariano test of
metrics/compare.py). Origins of a strided study are ``stride`` bars apart, so forecasts overlap for
ceil(horizon / stride) origins: that is the horizon the test is told.

The strategy's rule, fixed before the study period: before each bar opens, hold it long when the newest forecast
gives more than 50 % to that bar closing above the previous close (the share of sample paths that rise over that
step), else stay flat. With every origin forecast (stride 1) that is P(up at step 1) of the forecast made at the
bar's open; a strided study uses step j of the forecast made j - 1 bars earlier. 10 bp per position change;
buy-and-hold pays it once on entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from kronos_assets.evaluation.track_record import COIN_FLIP_BRIER, SIGNIFICANCE, compare_losses
from kronos_assets.metrics import pit_histogram, reliability_table
from kronos_assets.metrics.strategy import COST, MEAN_BLOCK, N_BOOT, performance, sharpe_difference
from kronos_assets.warehouse import read_sql

RULE = (
    "Before each bar opens: long over that bar when the newest forecast gives more than 50 % to it closing above "
    "the previous close (the share of sample paths rising over that step), else flat; 10 bp of equity per "
    "position change; buy-and-hold pays 10 bp once on entry. Fixed before the study period (2024-07-01)."
)
REFERENCES = (  # (measure, model's loss, reference's loss or a constant, reference's name, models it skips)
    ("crps_vs_rw_vol", "crps_model", "crps_baseline", "random walk with volatility", ("random_walk_vol",)),
    ("crps_vs_garch", "crps_model", "crps_garch", "GARCH(1,1)-t", ("garch",)),
    ("point_error", "rel_error_model", "rel_error_last_price", "the last price", ("random_walk",)),
    ("p_up", "brier_model", COIN_FLIP_BRIER, "a coin flip", ()),
)


@dataclass(frozen=True)
class StudyWindow:
    first_origin: datetime
    end_origin: datetime  # exclusive
    stride: int = 1

    @property
    def origins(self) -> int:
        return math.ceil((self.end_origin - self.first_origin) / timedelta(hours=1) / self.stride)


def study_record(
    wh: Any, timeframe: str, window: StudyWindow, primary: str, models: list[str], n_boot: int = N_BOOT
) -> dict[str, Any]:
    params = {"timeframe": timeframe, "first_origin": window.first_origin, "end_origin": window.end_origin}
    losses = wh.query(read_sql("study_losses.sql"), params)
    out: dict[str, Any] = {
        "title": "Real-data study",
        "timeframe": timeframe,
        "primary_model": primary,
        "models": models,
        "first_origin": window.first_origin.isoformat(),
        "end_origin": window.end_origin.isoformat(),
        "stride": window.stride,
        "origins_per_symbol": window.origins,
        "rule": RULE,
        "cost_bp": COST * 1e4,
        "sharpe_test": {
            "method": "stationary block bootstrap (Politis-Romano), pairs resampled together",
            "mean_block_bars": MEAN_BLOCK,
            "n_boot": n_boot,
            "significance": SIGNIFICANCE,
        },
        "symbols": {},
    }
    for symbol in losses["symbol"].unique(maintain_order=True).to_list():
        rows = losses.filter(pl.col("symbol") == symbol)
        horizon = int(rows["horizon"][0])
        overlap = max(1, math.ceil(horizon / window.stride))
        entry: dict[str, Any] = {
            "horizon": horizon,
            "overall": {},
            "months": {},
            "calibration": {},
            "strategy": strategy(wh, symbol, timeframe, window, models, n_boot),
        }
        for model in models:
            grp = rows.filter(pl.col("model") == model)
            if grp.height == 0:
                continue
            entry["overall"][model] = verdict(grp, model, overlap)
            for month, mgrp in grp.group_by("month", maintain_order=True):
                entry["months"].setdefault(month[0], {})[model] = verdict(mgrp, model, overlap)
            entry["calibration"][model] = calibration(grp)
        out["symbols"][symbol] = entry
    out["headline"] = headline(out)
    return out


def verdict(grp: pl.DataFrame, model: str, overlap: int) -> dict[str, Any]:
    """Means, relative differences and the DM verdict against every reference, and one sentence."""
    point = bool(grp["point_forecast"].all())
    row: dict[str, Any] = {
        "n": grp.height,
        "first_origin": grp["origin"][0].isoformat(),
        "last_origin": grp["origin"][-1].isoformat(),
        "crps": float(grp["crps_model"].mean()),
    }
    for measure, loss, reference, name, skip in REFERENCES:
        if model in skip or (measure == "p_up" and point):
            row[measure] = None
            continue
        c = compare_losses(grp, loss, reference, overlap)
        row[measure] = None if c is None else c | {"reference_name": name}
    row["sentence"] = sentence(model, row)
    return row


def _said(c: dict[str, Any]) -> str:
    if c["p_value"] is None:  # no test: its verdict says why (too few horizons, too persistent a difference)
        return c["verdict"]
    return f"significant, p = {c['p_value']:.2g}" if c["significant"] else f"within noise, p = {c['p_value']:.2f}"


def sentence(model: str, row: dict[str, Any]) -> str:
    """The verdict in words: CRPS against both volatility baselines, the median against the last price, P(up)
    against a coin flip."""
    parts = []
    for measure in ("crps_vs_rw_vol", "crps_vs_garch"):
        c = row.get(measure)
        if c and c["relative"] is not None:
            side = "better" if c["relative"] < 0 else "worse"
            parts.append(f"{100 * abs(c['relative']):.1f} % {side} than the {c['reference_name']} on CRPS ({_said(c)})")
    c = row.get("point_error")
    if c and c["relative"] is not None:
        side = "closer to the outcome" if c["relative"] < 0 else "further off"
        parts.append(f"its median {100 * abs(c['relative']):.1f} % {side} than the last price ({_said(c)})")
    c = row.get("p_up")
    if c:
        side = "better" if c["model"] < COIN_FLIP_BRIER else "worse"
        parts.append(f"its P(up) {side} than a coin flip (Brier {c['model']:.4f} vs 0.2500; {_said(c)})")
    else:
        parts.append("no P(up) forecast (every path the same)")
    return f"{model} ({row['n']} forecasts): " + "; ".join(parts) + "."


def calibration(grp: pl.DataFrame) -> dict[str, Any]:
    """Coverage of the 50/80/90 % bands at the last step against what N sample paths give a calibrated
    forecaster (p x (N-1)/(N+1)), the PIT histogram and the reliability of P(up)."""
    n_paths = int(grp["n_paths"][0])
    cover = {f"coverage_{p}": float(grp[f"covered_{p}"].mean()) for p in (50, 80, 90)}
    expected = {f"expected_{p}": p / 100 * (n_paths - 1) / (n_paths + 1) for p in (50, 80, 90)}
    hist = pit_histogram(grp["pit"].to_numpy())
    rel = [b for b in reliability_table(grp["p_up"].to_numpy(), grp["went_up"].to_numpy()) if b["count"]]
    return (
        cover
        | expected
        | {
            "n": grp.height,
            "pit_histogram": hist.tolist(),
            "pit_max_share": float(hist.max() / hist.sum() * len(hist)),
            "reliability_p_up": rel,
        }
    )


def step_signals(wh: Any, symbol: str, timeframe: str, window: StudyWindow, models: list[str]) -> pl.DataFrame:
    """Per model and bar of the study: the share of the newest forecast's paths rising over that bar."""
    return wh.query(
        """
        SELECT f.model, f.origin + to_hours(s.j - 1) AS bar,
               avg(CASE WHEN p.close[s.j] > (CASE WHEN s.j = 1 THEN f.last_close ELSE p.close[s.j - 1] END)
                   THEN 1.0 ELSE 0.0 END) AS p_step_up
        FROM forecasts f JOIN forecast_paths p USING (symbol, timeframe, origin, model)
        CROSS JOIN (SELECT range + 1 AS j FROM range(CAST(? AS BIGINT))) s
        WHERE f.symbol = ? AND f.timeframe = ? AND f.origin >= ? AND f.origin < ? AND f.model IN (SELECT unnest(?))
        GROUP BY ALL ORDER BY f.model, bar
        """,
        [window.stride, symbol, timeframe, window.first_origin, window.end_origin, models],
    )


def bar_returns(wh: Any, symbol: str, timeframe: str, window: StudyWindow) -> pl.DataFrame:
    """Simple return of every bar opening in the study (0 after a gap: no price to trade at)."""
    return wh.query(
        "SELECT ts AS bar, coalesce(exp(log_return) - 1, 0.0) AS ret FROM clean_candles "
        "WHERE symbol = ? AND timeframe = ? AND ts >= ? AND ts < ? ORDER BY ts",
        [symbol, timeframe, window.first_origin, window.end_origin],
    )


def strategy(
    wh: Any, symbol: str, timeframe: str, window: StudyWindow, models: list[str], n_boot: int = N_BOOT
) -> dict[str, Any]:
    """Each model's long/flat strategy over the study's bars against buy-and-hold, with the Sharpe test."""
    rets = bar_returns(wh, symbol, timeframe, window)
    signals = step_signals(wh, symbol, timeframe, window, models)
    r = rets["ret"].to_numpy()
    hold = np.ones_like(r)
    out: dict[str, Any] = {"bars": rets.height, "buy_and_hold": performance(hold, r)}
    from kronos_assets.metrics.strategy import net_returns

    hold_net = net_returns(hold, r)
    for model in models:
        sig = rets.join(signals.filter(pl.col("model") == model), on="bar", how="left")
        p = sig["p_step_up"].fill_null(0.0).to_numpy()  # no forecast for a bar: flat
        pos = (p > 0.5).astype(np.float64)
        perf = performance(pos, r)
        test = sharpe_difference(net_returns(pos, r), hold_net, n_boot=n_boot)
        perf["sharpe_vs_buy_and_hold"] = test._asdict() | {"significant": test.p_value < SIGNIFICANCE}
        perf["bars_with_a_forecast"] = int(sig["p_step_up"].is_not_null().sum())
        out[model] = perf
    return out


def headline(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per symbol and model, over the whole study: the numbers the README and the page lead with."""
    rows = []
    for symbol, entry in record["symbols"].items():
        for model, v in entry["overall"].items():
            s = entry["strategy"].get(model, {})
            cal = entry["calibration"][model]

            def rel(m: str) -> float | None:
                return v[m]["relative"] if v.get(m) else None

            def p(m: str) -> float | None:
                return v[m]["p_value"] if v.get(m) else None

            rows.append(
                {
                    "symbol": symbol,
                    "model": model,
                    "n": v["n"],
                    "crps": v["crps"],
                    "crps_vs_rw_vol": rel("crps_vs_rw_vol"),
                    "p_rw_vol": p("crps_vs_rw_vol"),
                    "crps_vs_garch": rel("crps_vs_garch"),
                    "p_garch": p("crps_vs_garch"),
                    "point_error_vs_last": rel("point_error"),
                    "p_point": p("point_error"),
                    "brier_up": v["p_up"]["model"] if v.get("p_up") else None,
                    "p_brier": p("p_up"),
                    "coverage_80": cal["coverage_80"],
                    "expected_80": cal["expected_80"],
                    "sharpe": s.get("sharpe"),
                    "sharpe_buy_and_hold": entry["strategy"]["buy_and_hold"]["sharpe"],
                    "p_sharpe": s["sharpe_vs_buy_and_hold"]["p_value"] if s else None,
                    "total_return": s.get("total_return"),
                    "total_return_buy_and_hold": entry["strategy"]["buy_and_hold"]["total_return"],
                }
            )
    return rows
