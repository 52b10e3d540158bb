"""Retention of raw sample paths: the profile's ``retention.paths_days`` (None: every path kept, the default).

forecast_paths is most of the warehouse (benchmarks/bench_warehouse_bytes.py). Past ``paths_days`` a forecast's
paths go, and only its paths: its row in forecasts, its quantiles, mean and median per step (forecast_steps) and
its scores (evaluations) stay for ever. A forecast's paths go only once every step of its horizon is scored
(evaluations hold ``horizon`` steps for it), so scoring, which reads the paths, has always run before. Age is
counted from the newest forecast of the same series, not the wall clock, so a replay (the demo's clock is the
end of its data) prunes the same as a live record.

Readers after pruning: scoring keeps the stored scores of a pruned forecast (``KEEP_SCORES_OF_PRUNED``) and does
not report it missing (``pruned``); a publish of a pruned origin writes its history but no new paths file (the
one published before stays); the sanity check, the scoreboards, coverage, PIT and reliability read forecasts,
forecast_steps and evaluations only; ``kronos-assets verify`` reads the published files.

Each batch is one transaction that picks the oldest prunable forecasts and deletes their paths: a kill -9
anywhere leaves every forecast with all its paths or none, and the next round goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Sequence

BATCH = 1000  # forecasts per transaction (30,000 path rows at 30 paths): bounds memory and the writer's hold
KEYS = ("symbol", "timeframe", "origin", "model")

_HAS_PATHS = (
    "EXISTS (SELECT 1 FROM forecast_paths p WHERE p.symbol = {t}.symbol AND p.timeframe = {t}.timeframe "
    "AND p.origin = {t}.origin AND p.model = {t}.model)"
)

# Forecasts whose paths may go: older than the days (from their series' newest origin) and scored at every step.
_PRUNABLE = f"""
FROM forecasts f
JOIN (SELECT symbol, timeframe, max(origin) AS newest FROM forecasts GROUP BY ALL) n USING (symbol, timeframe)
JOIN (SELECT symbol, timeframe, origin, model, count(DISTINCT step) AS steps FROM evaluations GROUP BY ALL) e
    USING (symbol, timeframe, origin, model)
WHERE f.origin < n.newest - to_days(CAST($days AS INTEGER)) AND e.steps >= f.horizon AND {_HAS_PATHS.format(t="f")}
"""

# A WHERE condition on evaluations: false for the scores of a stored forecast whose paths were pruned, which
# scoring cannot recompute and so must keep.
KEEP_SCORES_OF_PRUNED = (
    "NOT EXISTS (SELECT 1 FROM forecasts f WHERE f.symbol = evaluations.symbol AND f.timeframe = "
    "evaluations.timeframe AND f.origin = evaluations.origin AND f.model = evaluations.model AND NOT "
    + _HAS_PATHS.format(t="f")
    + ")"
)


@dataclass
class PathsPruned:
    days: int
    forecasts: int = 0  # forecasts whose paths went this round
    rows: int = 0  # forecast_paths rows deleted
    batches: int = 0
    left: int = 0  # prunable forecasts still holding paths (the round's deadline came first)
    seconds: float = 0.0

    def summary(self) -> str:
        text = (
            f"sample paths of {self.forecasts} scored forecast(s) older than {self.days} days pruned "
            f"({self.rows} rows, {self.batches} batch(es)) in {self.seconds:.1f} s"
        )
        return text + (f"; {self.left} left for the next round" if self.left else "")


def prunable(wh: Any, days: int) -> int:
    """How many forecasts hold paths that ``days`` of retention would prune now."""
    return int(wh.query(f"SELECT count(*) AS n {_PRUNABLE}", {"days": days})["n"][0])


def _prune_batch(con: Any, days: int, batch: int) -> tuple[int, int]:
    """Inside one transaction: the oldest ``batch`` prunable forecasts lose their paths; (forecasts, rows)."""
    doomed = con.execute(
        f"SELECT f.symbol, f.timeframe, f.origin, f.model {_PRUNABLE} "
        "ORDER BY f.origin, f.symbol, f.timeframe, f.model LIMIT $batch",
        {"days": days, "batch": batch},
    ).pl()
    if doomed.height == 0:
        return 0, 0
    con.register("_doomed", doomed.to_arrow())
    on = " AND ".join(f"p.{k} = d.{k}" for k in KEYS)
    rows = con.execute(f"DELETE FROM forecast_paths p USING _doomed d WHERE {on}").fetchone()[0]
    con.unregister("_doomed")
    return doomed.height, int(rows)


def prune_paths(
    wh: Any, days: int, deadline_s: float, batch: int = BATCH, log: Callable[[str], None] | None = None
) -> PathsPruned:
    """One round: batches of the oldest prunable forecasts until none is left or ``deadline_s`` has passed (the
    batch in hand is finished first)."""
    t0 = time.monotonic()
    out = PathsPruned(days=days)
    while True:
        forecasts, rows = wh.transact(
            f"pruning sample paths older than {days} days", lambda con: _prune_batch(con, days, batch)
        )
        out.forecasts += forecasts
        out.rows += rows
        if forecasts:
            out.batches += 1
        if forecasts < batch:
            break
        if time.monotonic() - t0 > deadline_s:
            out.left = prunable(wh, days)
            break
    out.seconds = time.monotonic() - t0
    if log is not None and (out.forecasts or out.left):
        log(f"retention: {out.summary()}")
    return out


def pruned(wh: Any, symbol: str, timeframe: str, origins: Sequence[datetime]) -> set[tuple[datetime, str]]:
    """(origin, model) of the stored forecasts at ``origins`` whose paths were pruned."""
    if not origins:
        return set()
    df = wh.query(
        f"SELECT origin, model FROM forecasts f WHERE symbol = ? AND timeframe = ? "
        f"AND origin IN (SELECT unnest(?::TIMESTAMPTZ[])) AND NOT {_HAS_PATHS.format(t='f')}",
        [symbol, timeframe, list(origins)],
    )
    return set(zip(df["origin"].to_list(), df["model"].to_list())) if df.height else set()
