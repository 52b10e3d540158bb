"""What a candle frame holds: its timeframe (inferred from the spacing, checked against the UTC grid), span and
gaps."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from kronos_assets.market.files.errors import CandleFileError
from kronos_assets.market.files.validation import first_true
from kronos_assets.market.gaps import Gap, find_gaps
from kronos_assets.market.timeframes import TIMEFRAME_SECONDS, timeframe_seconds


def infer_timeframe(ts: pl.Series, *, path: str | os.PathLike[str] = "<candles>") -> str:
    """The supported timeframe of a sorted, unique timestamp series: its most common spacing.

    Raises CandleFileError (unknown_timeframe, off_grid) when the spacing is not a supported timeframe, when a
    bar does not sit on that timeframe's UTC grid, or when fewer than two bars make it undecidable.
    """
    if ts.len() < 2:
        raise CandleFileError(path, "unknown_timeframe", "need at least two bars to infer the timeframe")
    secs = ts.dt.epoch("s").diff().drop_nulls()
    counts = secs.value_counts(sort=True)
    top = counts[counts.columns[1]][0]
    mode = min(v for v, n in zip(counts[counts.columns[0]], counts[counts.columns[1]]) if n == top)
    by_secs = {v: k for k, v in TIMEFRAME_SECONDS.items()}
    if mode not in by_secs:
        raise CandleFileError(
            path,
            "unknown_timeframe",
            f"most common spacing is {_human(mode)}; supported: {', '.join(TIMEFRAME_SECONDS)}",
        )
    tf = by_secs[mode]
    check_grid(ts, tf, path)
    return tf


def check_grid(ts: pl.Series, tf: str, path: str | os.PathLike[str]) -> None:
    step = timeframe_seconds(tf)
    epoch = ts.dt.epoch("us")
    off = first_true((epoch % (step * 1_000_000)) != 0)
    if off is not None:
        raise CandleFileError(path, "off_grid", f"row {off + 1}: {ts[off]} is not on the UTC {tf} grid")


def _human(secs: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % n == 0 and secs >= n:
            return f"{secs // n}{unit}"
    return f"{secs}s"


@dataclass
class CandleProfile:
    rows: int
    first_ts: datetime
    last_ts: datetime
    timeframe: str
    expected_bars: int  # bars from first_ts to last_ts inclusive
    missing_bars: int
    gaps: list[Gap] = field(default_factory=list)
    zero_volume_bars: int = 0
    has_volume: bool = True
    has_amount: bool = False

    def gap_ranges(self) -> list[tuple[datetime, datetime]]:
        return [g.as_tuple() for g in self.gaps]

    def to_metadata(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "first_ts": self.first_ts.isoformat(),
            "last_ts": self.last_ts.isoformat(),
            "timeframe": self.timeframe,
            "expected_bars": self.expected_bars,
            "missing_bars": self.missing_bars,
            "gaps": [[g.start.isoformat(), g.end.isoformat(), g.bars] for g in self.gaps],
            "zero_volume_bars": self.zero_volume_bars,
            "has_volume": self.has_volume,
            "has_amount": self.has_amount,
        }


def profile_candles(
    candles: pl.DataFrame,
    timeframe: str | None = None,
    *,
    path: str | os.PathLike[str] = "<candles>",
    has_volume: bool = True,
) -> CandleProfile:
    """Profile of a validated candle frame; the timeframe is inferred unless given (then checked)."""
    if candles.height == 0:
        raise CandleFileError(path, "empty", "no rows")
    ts = candles["ts"]
    if timeframe is None:
        timeframe = infer_timeframe(ts, path=path)
    else:
        timeframe_seconds(timeframe)
        check_grid(ts, timeframe, path)
    step = timeframe_seconds(timeframe) * 1000
    ms = ts.dt.epoch("ms").to_list()
    gaps = find_gaps(ms, ms[0], ms[-1] + step, step)
    return CandleProfile(
        rows=candles.height,
        first_ts=ts[0],
        last_ts=ts[-1],
        timeframe=timeframe,
        expected_bars=(ms[-1] - ms[0]) // step + 1,
        missing_bars=sum(g.bars for g in gaps),
        gaps=gaps,
        zero_volume_bars=int((candles["volume"] == 0).sum()) if has_volume else 0,
        has_volume=has_volume,
        has_amount=candles["amount"].null_count() < candles.height,
    )
