"""Missing bars of a candle series, as half-open ranges of open times on the timeframe grid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def dt_to_ms(ts: datetime) -> int:
    """Milliseconds since the epoch; a naive datetime is taken as UTC."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return int(round(ts.timestamp() * 1000))


@dataclass(frozen=True)
class Gap:
    """Bars with open time in ``[start, end)`` are missing; ``bars`` is how many."""

    start: datetime
    end: datetime
    bars: int

    def as_tuple(self) -> tuple[datetime, datetime]:
        return (self.start, self.end)

    def __str__(self) -> str:
        return f"[{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M}) UTC ({self.bars} bars)"


def find_gaps(ts_ms: Iterable[int], start_ms: int, stop_ms: int, step_ms: int) -> list[Gap]:
    """Ranges of the grid ``start_ms, start_ms + step_ms, ... < stop_ms`` that ``ts_ms`` does not cover.

    ``ts_ms`` must be sorted; values outside ``[start_ms, stop_ms)`` are ignored. ``start_ms`` is a grid point.
    """
    gaps: list[Gap] = []
    expected = start_ms
    for t in ts_ms:
        if t < expected:
            continue
        if t >= stop_ms:
            break
        if t > expected:
            gaps.append(Gap(ms_to_dt(expected), ms_to_dt(t), (t - expected) // step_ms))
        expected = t + step_ms
    if expected < stop_ms:
        last = start_ms - (-(stop_ms - start_ms) // step_ms) * step_ms  # first grid point >= stop_ms
        gaps.append(Gap(ms_to_dt(expected), ms_to_dt(last), (last - expected) // step_ms))
    return gaps
