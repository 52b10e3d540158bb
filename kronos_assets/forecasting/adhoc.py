"""Ad-hoc forecasts: forecast a series from the bars before a held-out tail and score the forecast on that tail.

What a person does by hand from the UI (pick candles, a model and its sampling, look at the forecast against what
really happened), as plain functions: ``resolve_model`` finds the model as the scheduled graph does (a configured
model of any kind, ``forecasting.kinds``) or takes a Kronos checkpoint folder, ``split_tail`` cuts the candles,
``forecast_and_score`` runs the chosen model and the built-in baselines on the same history and scores them with
``kronos_assets.metrics``, and ``adhoc_snapshot`` / ``adhoc_chart`` draw the fan over the held-out candles.
Nothing here touches the warehouse: an ad-hoc forecast is not a forecast of record.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import polars as pl
from pydantic import ValidationError

from kronos_assets.forecasting import kinds
from kronos_assets.forecasting.interface import CLOSE, VOLUME, Forecaster, ForecastRequest, Sampling, run_forecaster
from kronos_assets.forecasting.requests import MIN_HISTORY  # the scheduled forecasts' floor too
from kronos_assets.forecasting.summary import summarise
from kronos_assets.market.files import (
    CandleFile,
    CandleFileError,
    PathEscapeError,
    ReadLimits,
    load_candle_file,
    resolve_in_folder,
)
from kronos_assets.market.timeframes import timeframe_delta, timeframe_seconds
from kronos_assets.metrics import score_paths
from kronos_assets.metrics.registry import aggregate, metrics, on_board

CHART_BARS = 120  # history candles drawn before the origin
FOLDER_CONTEXT = 512  # a checkpoint folder named directly: the context of the released Kronos models


class AdhocConfigError(ValueError):
    """A setting of an ad-hoc forecast that cannot work; the message names the setting and what would."""


def nearest_name(name: str, valid: Iterable[str], what: str) -> AdhocConfigError:
    """'unknown <what> X; did you mean Y? valid: ...' (the nearest valid name by spelling)."""
    options = sorted(valid)
    near = difflib.get_close_matches(name, options, n=1, cutoff=0.0)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return AdhocConfigError(f"unknown {what} {name!r}{hint} (valid: {', '.join(options)})")


def checkpoint_folder(name: str) -> kinds.ModelSpec:
    """A folder holding model/ and tokenizer/, read by the kronos kind as a models.yaml ``local_dir`` entry is."""
    folder = Path(name).expanduser().resolve()
    entry = {"local_dir": str(folder), "max_context": FOLDER_CONTEXT}
    kind = kinds.kronos.KIND
    try:
        return kinds.ModelSpec(folder.name, kind.name, kind.parse(folder.name, entry, folder))
    except ValidationError as exc:
        raise AdhocConfigError(f"model folder {name!r} is not a Kronos checkpoint: {exc.errors()[0]['msg']}") from None


def resolve_model(specs: Mapping[str, kinds.ModelSpec], name: str, device: str) -> kinds.ModelSpec:
    """A model the profile configures, of any kind (``Settings.model_specs``, what the scheduled graph builds from),
    else a Kronos checkpoint folder; a model whose options take a device is given ``device``."""
    if name in specs:
        spec = specs[name]
    elif Path(name).expanduser().is_dir():
        spec = checkpoint_folder(name)
    else:
        raise nearest_name(name, specs, "model (or checkpoint folder)")
    if not takes_device(spec):
        return spec
    check_device(device)
    return dataclasses.replace(spec, options=dataclasses.replace(spec.options, device=device))


def takes_device(spec: kinds.ModelSpec) -> bool:
    """Whether the kind's options have a ``device`` (Kronos); the others run on the CPU whatever is asked."""
    return dataclasses.is_dataclass(spec.options) and "device" in {f.name for f in dataclasses.fields(spec.options)}


def context_of(spec: kinds.ModelSpec) -> int | None:
    """The most history bars the model reads (its options' ``max_context``); None: no limit."""
    return getattr(spec.options, "max_context", None)


def check_device(device: str) -> None:
    if device in ("auto", "cpu"):
        return
    import torch  # only for a model that runs on a device

    if device == "cuda" and not torch.cuda.is_available():
        raise AdhocConfigError("device cuda: torch sees no CUDA GPU on this machine; use auto or cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise AdhocConfigError("device mps: Apple's MPS is not available on this machine; use auto or cpu")


@dataclass(frozen=True)
class Split:
    history: pl.DataFrame  # the last ``lookback`` bars before the tail: all the model sees
    tail: pl.DataFrame  # the held-out bars, never shown to any forecaster
    future_ts: list[datetime]  # the ``horizon`` open times forecast (the tail's own, then extrapolated)


def check_window(rows: int, lookback: int, horizon: int, holdout: int, max_context: int | None, source: str) -> None:
    """Every reason the window cannot work, as one clear error (or nothing); ``max_context`` None: no limit."""
    if lookback < MIN_HISTORY:
        raise AdhocConfigError(f"lookback {lookback} is too short: a forecast needs at least {MIN_HISTORY} bars")
    if max_context is not None and lookback > max_context:
        raise AdhocConfigError(
            f"lookback {lookback} is over the model's context of {max_context} bars; use lookback <= {max_context}"
        )
    if horizon < 2 or holdout < 1:
        raise AdhocConfigError(f"horizon must be >= 2 and holdout >= 1 (got horizon {horizon}, holdout {holdout})")
    if horizon + holdout > rows:
        raise AdhocConfigError(
            f"horizon {horizon} + holdout {holdout} = {horizon + holdout} bars is longer than {source} ({rows} bars)"
        )
    if lookback + holdout > rows:
        raise AdhocConfigError(
            f"lookback {lookback} + holdout {holdout} bars is more than {source} holds ({rows} "
            f"bars); use lookback <= {rows - holdout}"
        )


def split_tail(
    candles: pl.DataFrame,
    timeframe: str,
    lookback: int,
    horizon: int,
    holdout: int,
    max_context: int | None,
    source: str = "the candles",
) -> Split:
    """Hold out the last ``holdout`` bars; the history is the ``lookback`` bars just before them."""
    candles = candles.sort("ts")
    check_window(candles.height, lookback, horizon, holdout, max_context, source)
    cut = candles.height - holdout
    history, tail = candles.slice(cut - lookback, lookback), candles.slice(cut, holdout)
    step = timeframe_delta(timeframe)
    future = list(tail["ts"][:horizon])
    while len(future) < horizon:
        future.append((future[-1] if future else history["ts"][-1]) + step)
    return Split(history, tail, future)


@dataclass
class ModelResult:
    model: str
    paths: np.ndarray  # (n_paths, horizon, 6)
    metrics: dict[str, float | None]  # None: the model makes no such forecast (P(up) of a point forecast)
    provenance: dict[str, Any] = field(default_factory=dict)


def metric_keys() -> tuple[str, ...]:
    """The scores of an ad-hoc forecast: every registered scoreboard metric, then P(up) and its hit."""
    return (*(m.board for m in on_board()), "p_up", "p_up_hit")


def score(paths: np.ndarray, history: pl.DataFrame, tail: pl.DataFrame) -> dict[str, float | None]:
    """Every registered scoreboard metric over the steps the tail covers, aggregated as the scoreboard does
    (``metrics.registry``; None where it does not apply, as the published files say), and P(up) with its hit at
    the last one. A point forecast (every path the same: the plain random walk) gives no P(up): None."""
    k = min(paths.shape[1], tail.height)
    last = float(history["close"][-1])
    close = paths[:, :k, CLOSE]
    rows = [r | {"last_close": last} for r in score_paths(close, tail["close"].to_numpy()[:k], last)]
    final = rows[-1]
    point = bool(np.all(close == close[:1]))
    return {m.board: aggregate(m, rows) for m in on_board()} | {
        "p_up": None if point else float(final["p_up"]),
        "p_up_hit": None if point else final["p_up_hit"],
        "scored_steps": float(k),
    }


def forecast_and_score(
    model: Forecaster,
    split: Split,
    sampling: Sampling,
    symbol: str,
    timeframe: str,
    baselines: Mapping[str, kinds.ModelSpec] = kinds.BUILTIN,
) -> list[ModelResult]:
    """The chosen model, then each baseline (the kinds' built-in ones unless given; not the model itself again),
    each forecasting from the same history and seed."""
    request = ForecastRequest(
        symbol=symbol,
        timeframe=timeframe,
        origin=split.future_ts[0],
        history=split.history,
        future_ts=split.future_ts,
        seed=sampling.seed,
    )
    forecasters = [model, *(kinds.build(spec) for name, spec in baselines.items() if name != model.name)]
    out = []
    for fc in forecasters:
        [forecast] = run_forecaster(fc, [request], sampling)
        out.append(
            ModelResult(fc.name, forecast.paths, score(forecast.paths, split.history, split.tail), forecast.provenance)
        )
    return out


def _candles(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {"ts": r["ts"].isoformat(), **{c: float(r[c]) for c in ("open", "high", "low", "close")}}
        for r in frame.iter_rows(named=True)
    ]


def adhoc_snapshot(
    result: ModelResult, split: Split, symbol: str, timeframe: str, synthetic: bool, replay: str | None = None
) -> dict[str, Any]:
    """A snapshot the publishing charts draw (fan_chart / fan_chart_png / fan_text), with the held-out tail as
    ``actual``; ``replay`` names the exchange whose candles a replay market serves (the charts say so)."""
    close = result.paths[..., CLOSE]
    summary = summarise(close, result.paths[..., VOLUME], split.history["close"].to_numpy())
    steps = [
        {
            "ts": ts.isoformat(),
            **{f"q{round(lv * 100):02d}": float(summary.quantiles[i, j]) for i, lv in enumerate(summary.levels)},
        }
        for j, ts in enumerate(split.future_ts)
    ]
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "origin": split.future_ts[0].isoformat(),
        "synthetic": synthetic,
        "replay": replay,
        "bar_seconds": timeframe_seconds(timeframe),
        "last_bar": split.history["ts"][-1].isoformat(),
        "candles": _candles(split.history.tail(CHART_BARS)),
        "actual": _candles(split.tail),
        "primary_model": result.model,
        "forecasts": {
            result.model: {"steps": steps, "horizon": len(steps), "last_close": float(split.history["close"][-1])}
        },
    }


FIXED_COLUMNS = ("model", "MAE", "RMSE", "MAPE %", "CRPS", "cov 50/80/90 %")
FIXED_METRICS = ("mape", "crps", "coverage_80")  # registry columns the fixed ones above already show


def _amount(x: float) -> str:
    return f"{x:,.2f}" if abs(x) >= 1 else f"{x:.4g}"


def _shown() -> list[Any]:
    """The registered metrics with a dashboard column that the fixed columns do not already show."""
    return sorted(
        (m for m in metrics() if m.column and m.board and m.board not in FIXED_METRICS), key=lambda m: m.column.position
    )


def metric_columns() -> tuple[str, ...]:
    return (*FIXED_COLUMNS, *(m.column.header for m in _shown()), "P(up)", "P(up) hit")


def _cell(value: float | None, fmt: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0%}" if fmt == "pct" else f"{value:.4g}"


def metrics_rows(results: list[ModelResult]) -> list[dict[str, str]]:
    """One row of text per forecaster (``metric_columns``): point errors of the median, CRPS, coverage of the
    central bands, the other registered dashboard metrics, P(up) and its hit ("n/a" where the model makes no such
    forecast). Short cells: the run page's table is narrow."""
    rows = []
    for r in results:
        m = r.metrics
        cover = "/".join(f"{100 * m[f'coverage_{b}']:.0f}" for b in (50, 80, 90))
        cells = [
            r.model,
            _amount(m["mae"]),
            _amount(m["rmse"]),
            f"{m['mape']:.3f}",
            f"{m['crps']:.5f}",
            cover,
            *(_cell(m.get(x.board), x.column.format) for x in _shown()),
            "n/a" if m["p_up"] is None else f"{m['p_up']:.0%}",
            "n/a" if m["p_up_hit"] is None else "yes" if m["p_up_hit"] else "no",
        ]
        rows.append(dict(zip(metric_columns(), cells)))
    return rows


def metrics_note(results: list[ModelResult]) -> str:
    k = int(results[0].metrics["scored_steps"])
    return (
        f"Scored on {k} held-out bars. CRPS is on log returns; coverage is the share of those bars inside the "
        "central band; Winkler 80 % is that band's width plus 10 x how far outside it the outcome fell; P(up) "
        "hit says whether P(up) > 50 % matched the last scored bar's move (n/a: a point forecast gives no "
        "P(up), or P(up) was exactly 50 %)."
    )


def metrics_markdown(results: list[ModelResult]) -> str:
    """``metrics_rows`` as a markdown table, with ``metrics_note`` under it."""
    columns = metric_columns()
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row.values()) + " |" for row in metrics_rows(results)]
    return "\n".join([*lines, "", metrics_note(results)])


def load_market(source: Any, symbol: str, timeframe: str, bars: int, now: datetime) -> pl.DataFrame:
    """The last ``bars`` closed bars of a market from its CandleSource (a margin of extra bars covers gaps)."""
    step = timeframe_delta(timeframe)
    end = datetime.fromtimestamp(now.timestamp() // step.total_seconds() * step.total_seconds(), now.tzinfo)
    candles = source.fetch(symbol, timeframe, end - (bars + bars // 10 + 10) * step, end, now)
    return candles.sort("ts").tail(bars)


def load_upload(folder: str | os.PathLike[str], name: str, limits: ReadLimits = ReadLimits()) -> CandleFile:
    """A file of the uploads folder, read and validated as the uploads sensor does; errors name the file."""
    try:
        return load_candle_file(resolve_in_folder(folder, name), limits=limits)
    except (CandleFileError, PathEscapeError, OSError) as exc:
        raise AdhocConfigError(f"file {name!r} cannot be used: {exc}") from exc
