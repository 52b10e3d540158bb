"""Reads what the site shows from the warehouse: forecast records, recent candles, past forecasts, scoreboard."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from kronos_assets.evaluation.track_record import confidence_tables, newest_scored_origin, verdicts
from kronos_assets.evaluation.track_record import scoreboard as board_rows
from kronos_assets.forecasting.kinds import BASELINES
from kronos_assets.metrics import MIN_INDEPENDENT_HORIZONS, pit_histogram
from kronos_assets.metrics.coverage import coverage_test
from kronos_assets.publishing.contract import HistoryDocument, ScoreboardRow, SeriesSnapshot, TrackRecord
from kronos_assets.publishing.public import public_forecast, rounded
from kronos_assets.warehouse import Warehouse, json_rows
from kronos_assets.warehouse.score_sums import FINAL

CHART_BARS = 96
PAST_FORECASTS = 72
# A track record is shown as a number only once it covers this many non-overlapping horizons: forecasts made
# one bar apart with a 24-bar horizon share 23 of their 24 bars, so 24 of them are about one observation. The
# same minimum as the Diebold-Mariano test's (kronos_assets.metrics.compare), so a number and its verdict
# appear together.
MIN_INDEPENDENT = MIN_INDEPENDENT_HORIZONS
PIT_BINS = 10
CALIBRATION_BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MIN_BIN = 10  # forecasts in a probability bin before its hit rate is shown
PATH_COLUMNS = ("open", "high", "low", "close", "volume", "amount")


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def forecast_records(wh: Warehouse, symbol: str, timeframe: str, origins: list[datetime]) -> list[HistoryDocument]:
    """One record per origin with every model's summary, per-step quantiles, sampling and provenance, as published
    (``publishing.public.public_forecast``)."""
    heads = wh.query(
        "SELECT * FROM forecasts WHERE symbol = ? AND timeframe = ? AND origin IN (SELECT unnest(?::TIMESTAMPTZ[])) "
        "ORDER BY origin, model",
        [symbol, timeframe, origins],
    )
    steps = wh.query(  # median_close is q50 again: the warehouse keeps it, the files do not repeat it
        "SELECT * EXCLUDE (median_close) FROM forecast_steps WHERE symbol = ? AND timeframe = ? "
        "AND origin IN (SELECT unnest(?::TIMESTAMPTZ[])) ORDER BY origin, model, step",
        [symbol, timeframe, origins],
    )
    by_key: dict[tuple, list] = {}
    for s in json_rows(steps.drop("symbol", "timeframe")):
        by_key.setdefault((s.pop("origin"), s.pop("model")), []).append(s)
    records: dict[str, dict[str, Any]] = {}
    for h in json_rows(heads):
        rec = records.setdefault(
            h["origin"], {"symbol": symbol, "timeframe": timeframe, "origin": h["origin"], "forecasts": {}}
        )
        model = h["model"]
        h["sampling"] = json.loads(h["sampling"])
        h["provenance"] = json.loads(h["provenance"])
        h["steps"] = rounded(by_key.get((h["origin"], model), []))  # see public.rounded
        for k in ("symbol", "timeframe", "origin"):
            h.pop(k)
        rec["forecasts"][model] = public_forecast(h)  # checkpoints by name; null where the page says n/a
    return [records[k] for k in sorted(records)]


def series_snapshot(
    wh: Warehouse,
    symbol: str,
    timeframe: str,
    origin: datetime,
    bar: timedelta,
    primary_model: str,
    synthetic: bool,
    replay: str | None = None,
) -> SeriesSnapshot | None:
    """Everything the dashboard shows for a series at one origin, or None when no forecast exists there.
    ``replay`` names the exchange whose candles a replay market serves (None for a live or synthetic market)."""
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
    horizon = records[0]["forecasts"][primary_model]["horizon"]
    verdict = [
        v for v in verdicts(wh, timeframe, 30, scored_before=origin, symbols=[symbol]) if v["model"] == primary_model
    ]
    return records[0] | {
        "primary_model": primary_model,
        "synthetic": synthetic,
        "replay": replay,
        "bar_seconds": int(bar.total_seconds()),
        "last_bar": _iso(origin - bar),
        "candles": json_rows(candles),
        "past": json_rows(past),
        "track_record": track_record(wh, symbol, timeframe, primary_model, origin, bar, horizon)
        | {"direction_by_confidence": confidence_tables(wh, timeframe, scored_before=origin, symbols=[symbol])},
        "verdict": verdict[0] if verdict else None,
    }


def independent_count(origins: list[datetime], span: timedelta) -> int:
    """How many of the (sorted) origins are at least ``span`` apart, greedily: non-overlapping horizons."""
    n, last = 0, None
    for o in origins:
        if last is None or o - last >= span:
            n, last = n + 1, o
    return n


def _f(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def track_record(
    wh: Warehouse, symbol: str, timeframe: str, model: str, origin: datetime, bar: timedelta, horizon: int
) -> TrackRecord:
    """What was known at ``origin`` about the model's forecasts of this series (scored before the origin).

    The P(up) calibration (Brier score and hit rate per probability bin), the PIT histogram, the Brier score of
    P(volatility amplification), and the CRPS skill against each baseline on the origins both scored, with the
    count of non-overlapping horizons behind it. ``enough`` says whether the numbers mean anything yet; whether a
    difference is significant is the verdict's (``kronos_assets.evaluation.track_record.verdicts``).
    """
    df = wh.query(  # the last steps, kept by the scoring step in final_scores: not a scan of every score
        f"SELECT origin, model, crps, p_up, brier_up, brier_vol_amp, pit, up FROM {FINAL} "
        "WHERE symbol = ? AND timeframe = ? AND scored_bar < ? ORDER BY origin, model",
        [symbol, timeframe, origin],
    )
    span = horizon * bar
    mine = df.filter(pl.col("model") == model)
    origins = mine["origin"].to_list()
    n_ind = independent_count(origins, span)
    out: dict[str, Any] = {
        "model": model,
        "scored_before": _iso(origin),
        "n": mine.height,
        "n_independent": n_ind,
        "min_independent": MIN_INDEPENDENT,
        "enough": n_ind >= MIN_INDEPENDENT,
        "first_origin": _iso(origins[0]) if origins else None,
        "last_origin": _iso(origins[-1]) if origins else None,
    }
    if mine.height:
        p, up = mine["p_up"].to_numpy(), mine["up"].to_numpy()
        vol = mine["brier_vol_amp"].drop_nulls()
        out |= {
            "brier_up": _f(mine["brier_up"].mean()),
            "brier_up_coin_flip": 0.25,
            "mean_p_up": _f(p.mean()),
            "up_rate": _f(up.mean()),
            "brier_vol_amp": _f(vol.mean()) if vol.len() else None,
        }
        bins = []
        for lo, hi in zip(CALIBRATION_BINS[:-1], CALIBRATION_BINS[1:]):
            sel = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
            k = int(sel.sum())
            bins.append(
                {
                    "from": lo,
                    "to": hi,
                    "n": k,
                    "mean_p_up": _f(p[sel].mean()) if k else None,
                    "up_rate": _f(up[sel].mean()) if k else None,
                }
            )
        out["calibration"] = bins
        out["pit_histogram"] = pit_histogram(mine["pit"].to_numpy(), PIT_BINS).tolist()
    skills = {}
    for base in BASELINES:
        if base == model:
            continue
        pair = mine.select("origin", "crps").join(
            df.filter(pl.col("model") == base).select("origin", pl.col("crps").alias("base_crps")), on="origin"
        )
        if pair.height == 0:
            continue
        m, b = pair["crps"].to_numpy(), pair["base_crps"].to_numpy()
        k = independent_count(pair["origin"].to_list(), span)
        base_mean = float(b.mean())
        skill = 1 - float(m.mean()) / base_mean if base_mean > 0 else None
        skills[base] = {"n": pair.height, "n_independent": k, "enough": k >= MIN_INDEPENDENT, "crps_skill": _f(skill)}
    out["skill"] = skills
    return out


def path_matrices(wh: Warehouse, symbol: str, timeframe: str, origins: list[datetime]) -> dict[str, pl.DataFrame]:
    """Every model's sample paths per origin (ISO string), long form: one row per model, path and step."""
    df = wh.query(
        "WITH p AS (SELECT origin, model, path, unnest(generate_series(1, len(close))) AS step, "
        + ", ".join(f"unnest({c}) AS {c}" for c in PATH_COLUMNS)
        + " FROM forecast_paths WHERE symbol = $symbol AND timeframe = $timeframe "
        "AND origin IN (SELECT unnest($origins::TIMESTAMPTZ[]))) "
        "SELECT p.origin, p.model, CAST(p.path AS INTEGER) AS path, CAST(p.step AS INTEGER) AS step, s.ts, "
        + ", ".join(f"CAST(p.{c} AS DOUBLE) AS {c}" for c in PATH_COLUMNS)  # FLOAT fields too: one file schema
        + " FROM p LEFT JOIN forecast_steps s ON s.symbol = $symbol AND s.timeframe = $timeframe "
        "AND s.origin = p.origin AND s.model = p.model AND s.step = p.step "
        "ORDER BY p.origin, p.model, p.path, p.step",
        {"symbol": symbol, "timeframe": timeframe, "origins": origins},
    )
    out = {}
    for (o,), part in df.partition_by("origin", as_dict=True, maintain_order=True).items():
        out[_iso(o)] = (
            part.drop("origin")
            .with_columns(
                pl.lit(symbol).alias("symbol"), pl.lit(timeframe).alias("timeframe"), pl.lit(o).alias("origin")
            )
            .select("symbol", "timeframe", "origin", "model", "path", "step", "ts", *PATH_COLUMNS)
        )
    return out


def scoreboard(wh: Warehouse, timeframe: str, symbols: list[str] | None = None) -> list[ScoreboardRow]:
    """All-time scores at the horizon's last step, per symbol (only ``symbols`` unless None) and model (the
    rolling windows, per-step scores, reliability and PIT are in track_record.track_record)."""
    as_of = newest_scored_origin(wh, timeframe)
    if as_of is None:
        return []
    rows = board_rows(wh, timeframe, as_of)  # from the running sums: the same rows, flat in history
    board = [
        r
        for r in rows
        if r["window_name"] == "all" and r["step"] == r["horizon"] and (symbols is None or r["symbol"] in symbols)
    ]
    return with_coverage_tests(wh, timeframe, board)


def with_coverage_tests(wh: Warehouse, timeframe: str, board: list[dict[str, Any]]) -> list[ScoreboardRow]:
    """Adds to each all-time row the 80 % band's coverage pooled over the path (``coverage_80_path``), the test's
    p-value and its judgement (``coverage_80_flag``: 'too narrow', 'too wide' or None; kronos_assets.metrics.
    coverage); None for a point forecast (no band)."""
    hits = wh.query(
        f"SELECT symbol, model, origin, hit_80, expected_80, horizon FROM {FINAL} WHERE timeframe = ? "
        "AND hit_80 IS NOT NULL ORDER BY symbol, model, origin",
        [timeframe],
    )  # one row a forecast
    series = hits.partition_by("symbol", "model", as_dict=True, maintain_order=True) if hits.height else {}
    for r in board:
        part = series.get((r["symbol"], r["model"]))
        test = None
        if part is not None and r.get("expected_coverage_80") is not None:
            test = coverage_test(part["hit_80"].to_numpy(), part["expected_80"].to_numpy(), int(part["horizon"][0]))
        r["coverage_80_path"] = None if test is None else test.observed
        r["coverage_80_p"] = None if test is None or math.isnan(test.p_value) else test.p_value
        r["coverage_80_flag"] = None if test is None else test.judgement
    return board
