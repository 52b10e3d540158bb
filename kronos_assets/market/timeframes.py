"""Timeframes the project supports: their length, the bar a time falls in, and runs of consecutive bars."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

# Seconds per bar. Every timeframe divides a UTC day evenly, so day partitions hold whole bars.
TIMEFRAME_SECONDS: dict[str, int] = {
    "15m": 15 * 60,
    "30m": 30 * 60,
    "1h": 3600,
    "2h": 2 * 3600,
    "4h": 4 * 3600,
    "6h": 6 * 3600,
    "12h": 12 * 3600,
    "1d": 86400,
}


class UnknownTimeframeError(ValueError):
    pass


@dataclass(frozen=True)
class Timeframe:
    """A bar length parsed once from its name ('1h' -> 3600 s), with the bar arithmetic the layers above need.
    Stored rows and published files keep the name (``str(tf)``); settings and the Dagster layer hold this."""

    name: str
    seconds: int

    @classmethod
    def parse(cls, name: str) -> Timeframe:
        return cls(name, timeframe_seconds(name))

    def __str__(self) -> str:
        return self.name

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def floor(self, ts: datetime) -> datetime:
        """The open time of the bar that contains ``ts`` (UTC)."""
        return floor_time(ts, self.name)

    def last_closed_open(self, now: datetime) -> datetime:
        """Open time of the newest bar that has fully closed at ``now``."""
        return floor_time(now, self.name) - self.delta

    @property
    def boundaries_cron(self) -> str:
        """Cron of the bars' own open times: what time-window partitions of this timeframe are cut by."""
        if self.seconds < 3600:
            return f"*/{self.seconds // 60} * * * *"
        if self.seconds < 86400:
            return "0 * * * *" if self.seconds == 3600 else f"0 */{self.seconds // 3600} * * *"
        return "0 0 * * *"

    def cron(self, minute: int = 5) -> str:
        """Cron of the schedule: a few minutes after each bar closes."""
        return cron_for(self.name, minute)


def timeframe_seconds(timeframe: str) -> int:
    try:
        return TIMEFRAME_SECONDS[timeframe]
    except KeyError:
        known = ", ".join(TIMEFRAME_SECONDS)
        raise UnknownTimeframeError(f"unknown timeframe {timeframe!r}; known: {known}") from None


def timeframe_delta(timeframe: str) -> timedelta:
    return timedelta(seconds=timeframe_seconds(timeframe))


def floor_time(ts: datetime, timeframe: str) -> datetime:
    """The open time of the bar that contains ``ts`` (UTC)."""
    secs = timeframe_seconds(timeframe)
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % secs, tz=timezone.utc)


def last_closed_bar_open(now: datetime, timeframe: str) -> datetime:
    """Open time of the newest bar that has fully closed at ``now``."""
    return floor_time(now, timeframe) - timeframe_delta(timeframe)


def cron_for(timeframe: str, minute: int = 5) -> str:
    """Cron of the schedule for a timeframe: a few minutes after each bar closes."""
    secs = timeframe_seconds(timeframe)
    if secs < 3600:
        step = secs // 60
        return f"{minute % step}-59/{step} * * * *"
    if secs < 86400:
        hours = secs // 3600
        return f"{minute} * * * *" if hours == 1 else f"{minute} */{hours} * * *"
    return f"{minute} 0 * * *"


def contiguous(times: list[datetime], step: timedelta) -> list[tuple[datetime, datetime]]:
    """Sorted times as half-open [start, end) windows of consecutive steps."""
    spans: list[tuple[datetime, datetime]] = []
    for t in times:
        if spans and spans[-1][1] == t:
            spans[-1] = (spans[-1][0], t + step)
        else:
            spans.append((t, t + step))
    return spans
