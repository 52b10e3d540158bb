"""A small fixed record for the verdict tests: seeded prices, three forecasters (a point forecast, the random walk
with volatility and a wider model) on two series, scored by ``metrics.score_paths`` and stored in a warehouse as the
scoring step stores them; the same scores as ``kronos-assets verify`` holds them after re-scoring."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kronos_assets.evaluation.track_record import dm_table, verdicts, window_floor
from kronos_assets.metrics import QUANTILE_LEVELS, registry, score_paths
from kronos_assets.warehouse import Warehouse

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
H = 6
N_PATHS = 20
# origins per series: BTC more than 10 independent horizons (a verdict), ETH fewer ("too few")
ORIGINS = {"BTC/USDT": 260, "ETH/USDT": 40}
MODELS = {"random_walk": 0.0, "random_walk_vol": 1.0, "wide": 1.4}  # path volatility x the recent one
GOLDEN = Path(__file__).parent / "golden" / "verdicts.json"
PINNED = ("crps", "point_error", "p_up")  # the measures golden/verdicts.json holds, and verdict_sentence words

Scored = dict[tuple[str, str, str], dict[datetime, dict[str, Any]]]


def build(wh: Warehouse, seed: int = 26) -> Scored:
    """Stores the record in ``wh`` (forecasts and every step's evaluations); returns the last-step rows as
    ``publishing.verify.rescore`` returns them."""
    rng = np.random.default_rng(seed)
    evals, forecasts, scored = [], [], {}
    for symbol, n in ORIGINS.items():
        closes = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.006, n + H + 200)))
        for model, scale in MODELS.items():
            by_origin = scored.setdefault((symbol, "1h", model), {})
            for i in range(200, 200 + n):
                origin = T0 + (i - 200) * HOUR
                last = float(closes[i - 1])
                sigma = float(np.std(np.diff(np.log(closes[i - 168 : i])), ddof=1))
                paths = last * np.exp(np.cumsum(rng.normal(0.0003 * scale, sigma * scale, (N_PATHS, H)), axis=1))
                p_vol_amp, recent_vol = float(rng.uniform()), sigma
                rows = score_paths(paths, closes[i : i + H], last, QUANTILE_LEVELS, p_vol_amp, recent_vol)
                scored_bar = origin + (H - 1) * HOUR
                evals += [
                    {
                        "symbol": symbol,
                        "timeframe": "1h",
                        "origin": origin,
                        "model": model,
                        "horizon": H,
                        "scored_bar": scored_bar,
                        "ts": origin + (r["step"] - 1) * HOUR,
                    }
                    | r
                    for r in rows
                ]
                forecasts.append(
                    {
                        "symbol": symbol,
                        "timeframe": "1h",
                        "origin": origin,
                        "model": model,
                        "n_paths": N_PATHS,
                        "horizon": H,
                        "last_close": last,
                        "p_up": float(np.mean(paths[:, -1] > last)),
                        "p_vol_amp": p_vol_amp,
                        "recent_vol": recent_vol,
                        "data_start": origin - 200 * HOUR,
                        "data_end": origin - HOUR,
                        "exchange": "test",
                        "seed": seed,
                        "sampling": "{}",
                        "provenance": "{}",
                    }
                )
                by_origin[origin] = rows[-1] | {"last_close": last, "horizon": H, "scored_bar": scored_bar}
    with wh.connect() as con:
        for table, rows in (("evaluations", evals), ("forecasts", forecasts)):
            frame = pl.DataFrame(rows, infer_schema_length=None)
            frame = frame.with_columns(pl.col(c).cast(pl.Float64) for c, t in frame.schema.items() if t == pl.Null)
            con.register("new_rows", frame.to_arrow())
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM new_rows")
            con.unregister("new_rows")
    return scored


def only_verdicts(measures: tuple[str, ...] = PINNED) -> tuple[registry.Metric, ...]:
    """The registry with only these measures judged: a metric registered later keeps its scores, but its verdict is
    left out (for tests that pin the verdicts' output; its own test shows its verdict)."""
    return tuple(
        m if m.verdict is None or m.verdict.measure in measures else dataclasses.replace(m, verdict=None)
        for m in registry.METRICS
    )


CASES = {"30d": 30, "3d": 3, "all": None}


def warehouse_verdicts(wh: Any) -> dict[str, Any]:
    """What the track record publishes from ``wh``: the verdicts of each window (with and without the window
    floor the track record reads from), as of a bar in the middle too, and their DM table."""
    out: dict[str, Any] = {}
    for name, days in CASES.items():
        out[name] = verdicts(wh, "1h", days, floor=window_floor(wh, "1h", days))
        out[f"{name} no floor"] = verdicts(wh, "1h", days)
        out[f"{name} as of"] = verdicts(wh, "1h", days, scored_before=T0 + 120 * HOUR)
        out[f"{name} dm"] = dm_table(out[name], name)
    return out


def dumps(doc: Any) -> str:
    return json.dumps(doc, indent=1, default=str) + "\n"


def differences(ours: Any, golden: Any, path: str = "") -> list[str]:
    """Where two verdict documents differ: structure, words and counts exactly, numbers to 1e-9 of their size (a
    numpy, DuckDB or SciPy release may sum in another order: the last of 16 digits moves, the verdicts do not)."""
    if isinstance(ours, dict) and isinstance(golden, dict):
        if ours.keys() != golden.keys():
            return [f"{path}: keys {sorted(ours)} != {sorted(golden)}"]
        return [d for k in ours for d in differences(ours[k], golden[k], f"{path}/{k}")]
    if isinstance(ours, list) and isinstance(golden, list):
        if len(ours) != len(golden):
            return [f"{path}: {len(ours)} items != {len(golden)}"]
        return [d for i, (a, b) in enumerate(zip(ours, golden)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(ours, float) and isinstance(golden, float):
        return [] if math.isclose(ours, golden, rel_tol=1e-9, abs_tol=1e-15) else [f"{path}: {ours!r} != {golden!r}"]
    return [] if ours == golden and type(ours) is type(golden) else [f"{path}: {ours!r} != {golden!r}"]
