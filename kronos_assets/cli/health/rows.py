"""The rows of ``kronos-assets health`` and how their details are written, shared by every module that adds rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable

OK, WARN, FAIL, SKIP, INFO = "OK", "WARN", "FAIL", "SKIP", "INFO"
MAX_LISTED = 3


@dataclass(frozen=True)
class Row:
    section: str
    item: str
    status: str
    detail: str
    fix: str | None = None  # a damaged file named with what to do: repeated as the screen's last line


def fmt_time(ts: datetime | None) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if ts else "none"


def fmt_age(age: timedelta) -> str:
    secs = int(age.total_seconds())
    if secs < 0:
        return "in the future"
    if secs < 3600:
        return f"{secs // 60} min ago"
    if secs < 2 * 86400:
        return f"{secs / 3600:.1f} h ago"
    return f"{secs / 86400:.1f} days ago"


def short(exc: BaseException | str, limit: int = 160) -> str:
    """The first line of an error, cut to ``limit`` characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def listing(items: list[str], limit: int = MAX_LISTED) -> str:
    """The first ``limit`` items and how many more there are."""
    shown = "; ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def worst(statuses: Iterable[str]) -> str:
    order = [FAIL, WARN, OK, INFO, SKIP]
    found = set(statuses)
    return next((s for s in order if s in found), OK)
