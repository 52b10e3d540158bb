"""A planted record for the track record's tests and benchmark: forecasts of a few series and models at hourly
origins with random sample paths (a point forecast among them), their candles, scored by the real scoring step;
and ``replicate``, which grows the scored history by copying whole days of forecasts and scores to earlier
origins (no model runs, no scoring)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl

from kronos_assets.evaluation.scoring import Scored, score_bars
from kronos_assets.warehouse import Warehouse

T0 = datetime(2026, 2, 27, tzinfo=timezone.utc)  # the record crosses a month's end
HOUR = timedelta(hours=1)
POINT = "random_walk"  # every path the same: no P(up), no band
MODELS = ("kronos", "kronos_small", POINT, "random_walk_vol")


def plant(
    wh: Warehouse,
    origins: int,
    horizon: int,
    paths: int,
    symbols: tuple[str, ...] = ("BTC/USDT",),
    models: tuple[str, ...] = MODELS,
    start: datetime = T0,
    seed: int = 7,
) -> None:
    """Candles and forecasts at ``origins`` hourly origins from ``start`` (nothing scored)."""
    rng = np.random.default_rng(seed)
    bars = origins + horizon
    candles, heads, sample = [], [], []
    for s, symbol in enumerate(symbols):
        close = 100.0 * (1 + s) * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
        candles += [{"symbol": symbol, "ts": start + i * HOUR, "close": float(c)} for i, c in enumerate(close)]
        for i in range(origins):
            last = float(close[i - 1]) if i else float(close[0])
            for k, model in enumerate(models):
                spread = 0.0 if model == POINT else 0.01 * (1 + k / 4)
                steps = rng.normal(0.0005 * (k - 1), spread, (paths, horizon)) if spread else np.zeros((paths, horizon))
                p = last * np.exp(np.cumsum(steps, axis=1))
                heads.append(
                    {
                        "symbol": symbol,
                        "origin": start + i * HOUR,
                        "model": model,
                        "last_close": last,
                        "p_up": float(np.mean(p[:, -1] > last)),
                    }
                )
                sample += [
                    {"symbol": symbol, "origin": start + i * HOUR, "model": model, "path": j, "close": p[j].tolist()}
                    for j in range(paths)
                ]

    def fill(con) -> None:
        con.register("_c", pl.DataFrame(candles).to_arrow())
        con.execute("""INSERT INTO clean_candles (symbol, timeframe, ts, open, high, low, close, volume, amount,
                       exchange, log_range, bars_missing_before)
                       SELECT symbol, '1h', ts, close, close, close, close, 1, close, 'x', 0, 0 FROM _c""")
        con.register("_h", pl.DataFrame(heads).to_arrow())
        con.execute(f"""INSERT INTO forecasts SELECT symbol, '1h', origin, model, {paths}, {horizon}, last_close,
                        p_up, 0.5, 0.01, origin - INTERVAL 10 HOUR, origin - INTERVAL 1 HOUR, 'x', 7, '{{}}', '{{}}'
                        FROM _h""")
        con.register("_p", pl.DataFrame(sample).to_arrow())
        con.execute("""INSERT INTO forecast_paths SELECT symbol, '1h', origin, model, path, close, close, close,
                       close, close, close FROM _p""")
        for name in ("_c", "_h", "_p"):
            con.unregister(name)

    wh.transact("planted record", fill)


def score(
    wh: Warehouse,
    symbol: str,
    first: int,
    last: int,
    horizon: int,
    start: datetime = T0,
    models: list[str] | None = None,
) -> Scored:
    """Scores the forecasts made at origins ``first`` .. ``last`` (indices) of one series, in one call."""
    scored = Scored()
    score_bars(
        wh,
        symbol,
        "1h",
        HOUR,
        horizon,
        [start + (i + horizon - 1) * HOUR for i in range(first, last + 1)],
        scored,
        models=models,
    )
    return scored


def replicate(con, days: int, source_day: datetime = T0) -> None:
    """Copies the forecasts and scores whose origins fall on ``source_day`` to each of the ``days`` days before it
    (origins and bars shifted whole days back), inside the caller's transaction."""
    for table in ("forecasts", "evaluations"):
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        shifted = {"origin", "ts", "scored_bar", "data_start", "data_end"}
        select = ", ".join(f"{c} - to_days(CAST(d AS INTEGER))" if c in shifted else c for c in cols)
        con.execute(
            f"INSERT INTO {table} SELECT {select} FROM {table}, range(1, {days + 1}) r(d) "
            "WHERE origin >= ? AND origin < ? ORDER BY d DESC, origin",
            [source_day, source_day + timedelta(days=1)],
        )
