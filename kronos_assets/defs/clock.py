"""The time a run works at: ``now`` of its candle fetches and checks.

A run tagged ``kronos/now`` (``kronos-assets run --now``, or a schedule tick) works at that time, never later than
the wall clock, so the same command stores the same candles whatever the hour it runs. Untagged (a run launched
from the UI), it works at the market's clock: the replay clock for a replay market (market/replay.py), else the
wall clock.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

NOW_TAG = "kronos/now"


def now_tag(now: datetime) -> dict[str, str]:
    return {NOW_TAG: now.astimezone(timezone.utc).isoformat(timespec="seconds")}


def market_now(market: Any, wall: datetime | None = None, start_clock: bool = True) -> datetime:
    """The market's time at wall time ``wall``: a replay clock's reading, else the wall clock."""
    wall = wall or datetime.now(timezone.utc)
    clock = getattr(market, "clock_now", None)
    return clock(wall, start_clock=start_clock) if clock else wall


def run_now(tags: Mapping[str, str], market: Any) -> datetime:
    """The run's ``kronos/now`` tag (at most the wall clock), else the market's time."""
    wall = datetime.now(timezone.utc)
    text = tags.get(NOW_TAG)
    if not text:
        return market_now(market, wall)
    try:
        tagged = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"run tag {NOW_TAG}={text!r} is not an ISO 8601 time") from None
    tagged = tagged.replace(tzinfo=timezone.utc) if tagged.tzinfo is None else tagged.astimezone(timezone.utc)
    return min(tagged, wall)
