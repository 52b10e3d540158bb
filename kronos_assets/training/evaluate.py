"""Held-out evaluation: forecast origins in a later range with several forecasters and score them alike.

Origins are spread evenly over the held-out range: every origin has ``history_bars`` contiguous bars up to it and
``horizon`` contiguous bars after it, all of the realised bars lying inside the held-out range. Each forecaster
gets the same requests (its own per-request seed, as in the live pipeline) and is scored with
``kronos_assets.metrics.score_paths`` on the closes: CRPS (log-return space), interval coverage, direction hit,
Brier of P(up), Brier of P(volatility amplification) (last step) and pinball loss.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

import numpy as np
import polars as pl

from kronos_assets.forecasting.interface import CLOSE, VOLUME, Forecaster, ForecastRequest, Sampling, request_seed
from kronos_assets.forecasting.summary import summarise
from kronos_assets.metrics import mean_of, score_paths, skill_score
from kronos_assets.training.data import as_utc, cut

SCORE_KEYS = (
    "crps",
    "pinball",
    "covered_50",
    "covered_80",
    "covered_90",
    "direction_hit",
    "brier_up",
    "brier_vol_amp",
    "width_80",
    "ape",
)
REFERENCE = "random_walk_vol"


@dataclass
class HeldOut:
    """Scores of every forecaster over the same held-out origins."""

    scores: dict[str, dict[str, float]]  # model -> metric -> mean
    n_forecasts: int
    origins: dict[str, list[str]]  # symbol -> origins (ISO)
    sampling: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    per_forecast_crps: dict[str, list[float]] = field(default_factory=dict)

    def skill(self, model: str, reference: str = REFERENCE, key: str = "crps") -> float:
        return skill_score(self.scores[model][key], self.scores[reference][key])

    def table_rows(self) -> list[dict[str, Any]]:
        rows = []
        for model, s in self.scores.items():
            row = {"model": model, **{k: s.get(k) for k in SCORE_KEYS}}
            if REFERENCE in self.scores:
                row["crps_skill_vs_rw_vol"] = self.skill(model)
            rows.append(row)
        return rows

    def markdown(self) -> str:
        cols = ("crps", "covered_80", "covered_50", "direction_hit", "brier_up", "brier_vol_amp")
        head = (
            "| model | CRPS (log ret) | skill vs rw_vol | cover 80% | cover 50% | direction hit | Brier P(up) "
            "| Brier P(vol amp) |"
        )
        lines = [head, "|" + "---|" * (len(cols) + 2)]
        for model, s in self.scores.items():
            skill = f"{self.skill(model):+.3f}" if REFERENCE in self.scores else "n/a"
            vals = [f"{s[c]:.5f}" if c == "crps" else f"{s[c]:.3f}" for c in cols]
            lines.append(f"| {model} | {vals[0]} | {skill} | " + " | ".join(vals[1:]) + " |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": self.scores,
            "n_forecasts": self.n_forecasts,
            "origins": self.origins,
            "sampling": self.sampling,
            "seconds": self.seconds,
        }


def heldout_requests(
    frames: Mapping[str, pl.DataFrame],
    timeframe: str,
    start: datetime,
    end: datetime,
    *,
    history_bars: int,
    horizon: int,
    origins_per_symbol: int,
    seed: int,
    model_name: str = "",
) -> tuple[list[ForecastRequest], dict[str, np.ndarray]]:
    """Requests at evenly spread origins in [start, end) and the realised closes [horizon] of each (by index)."""
    reqs: list[ForecastRequest] = []
    realised: dict[str, np.ndarray] = {}
    for symbol, frame in frames.items():
        f = cut(frame.sort("ts"), None, end)
        ts = f["ts"].dt.cast_time_unit("us").to_numpy()
        if len(ts) < history_bars + horizon:
            raise ValueError(f"{symbol}: {len(ts)} bars before {end} are too few for {history_bars}+{horizon}")
        step = np.median(np.diff(ts[-1000:]).astype(np.int64))
        gap = (np.diff(ts).astype(np.int64) != step).astype(np.int64)
        bad = np.concatenate([[0], np.cumsum(gap)])
        lo = np.datetime64(as_utc(start).replace(tzinfo=None), "us")
        # i = index of the last history bar; bars i+1..i+horizon are the targets.
        i = np.arange(history_bars - 1, len(ts) - horizon)
        ok = (bad[i + horizon] - bad[i - history_bars + 1] == 0) & (ts[i + 1] >= lo)
        valid = i[ok]
        if len(valid) == 0:
            raise ValueError(
                f"{symbol}: no origin in [{start}, {end}) with {history_bars} bars before and {horizon} after"
            )
        pick = valid[np.unique(np.linspace(0, len(valid) - 1, origins_per_symbol).round().astype(np.int64))]
        closes = f["close"].to_numpy()
        for k in pick:
            k = int(k)
            history = f.slice(k - history_bars + 1, history_bars)
            origin = (history["ts"][-1] + (history["ts"][-1] - history["ts"][-2])).astimezone(timezone.utc)
            fut = f["ts"].slice(k + 1, horizon).to_list()
            rid = f"{symbol}|{origin.isoformat()}"
            realised[rid] = closes[k + 1 : k + 1 + horizon].astype(np.float64)
            reqs.append(
                ForecastRequest(
                    symbol, timeframe, origin, history, fut, request_seed(seed, symbol, timeframe, origin, model_name)
                )
            )
    return reqs, realised


def _rid(req: ForecastRequest) -> str:
    return f"{req.symbol}|{req.origin.isoformat()}"


def evaluate_forecasters(
    forecasters: Mapping[str, Forecaster],
    frames: Mapping[str, pl.DataFrame],
    timeframe: str,
    start: datetime,
    end: datetime,
    *,
    history_bars: int,
    origins_per_symbol: int,
    sampling: Sampling,
) -> HeldOut:
    """Forecast and score each forecaster on the same held-out origins (the origins' spread is drawn with
    ``sampling.seed``; each forecast is ``sampling.horizon`` bars)."""
    horizon, seed = sampling.horizon, sampling.seed
    scores: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    per_crps: dict[str, list[float]] = {}
    origins: dict[str, list[str]] = {}
    n = 0
    for label, fc in forecasters.items():
        reqs, realised = heldout_requests(
            frames,
            timeframe,
            start,
            end,
            history_bars=history_bars,
            horizon=horizon,
            origins_per_symbol=origins_per_symbol,
            seed=seed,
            model_name=label,
        )
        t0 = time.perf_counter()
        paths = fc.forecast_batch(reqs, sampling)
        seconds[label] = round(time.perf_counter() - t0, 2)
        rows: list[dict[str, Any]] = []
        crps_each = []
        for req, p in zip(reqs, paths):
            p = np.asarray(p, dtype=np.float64)
            hist_close = req.history["close"].to_numpy().astype(np.float64)
            # An untrained network may emit non-positive prices: floor them so they score (very badly) instead of
            # failing.
            close = np.maximum(np.nan_to_num(p[..., CLOSE], nan=1e-12, posinf=1e12, neginf=1e-12), 1e-12)
            summ = summarise(close, p[..., VOLUME], hist_close)
            r = score_paths(
                close, realised[_rid(req)], hist_close[-1], p_vol_amp=summ.p_vol_amp, recent_vol=summ.recent_vol
            )
            rows.extend(r)
            crps_each.append(float(np.mean([x["crps"] for x in r])))
        scores[label] = {k: mean_of(rows, k) for k in SCORE_KEYS}
        per_crps[label] = crps_each
        n = len(reqs)
        origins = {s: [r.origin.isoformat() for r in reqs if r.symbol == s] for s in frames}
    return HeldOut(scores, n, origins, sampling.as_dict(), seconds, per_crps)


def kronos_forecaster(
    model: Any,
    tokenizer: Any,
    name: str,
    max_context: int,
    device: str = "cpu",
    model_info: Any = None,
    tokenizer_info: Any = None,
) -> Forecaster:
    """A KronosForecaster over in-memory networks (the normal inference path, fast mode)."""
    from kronos_assets.forecasting.kronos_forecaster import KronosForecaster
    from kronos_assets.kronos.predictor import KronosPredictor

    pred = KronosPredictor(
        model, tokenizer, device=device, max_context=max_context, model_info=model_info, tokenizer_info=tokenizer_info
    )
    return KronosForecaster.from_predictor(pred, name=name)


def baselines() -> dict[str, Forecaster]:
    from kronos_assets.forecasting.baselines import RandomWalk, RandomWalkVol

    return {"random_walk": RandomWalk(), "random_walk_vol": RandomWalkVol()}


__all__ = ["HeldOut", "baselines", "evaluate_forecasters", "heldout_requests", "kronos_forecaster"]
