"""Real candles replayed from files, behind a replay clock: the demo's market.

``ReplayMarket`` serves each configured (symbol, timeframe) from one candle file (CSV, optionally gzipped;
Parquet; Feather), read and validated exactly as an upload is (market.files: unsorted rows, repeated
timestamps, broken OHLC... are ``CandleFileError``s naming the file and the row), with two more refusals: a
file whose timeframe is not the configured one (``timeframe_mismatch``), and a bar that closes after the wall
clock (``bar_after_now``: real data cannot come from the future). Gaps stay gaps. A refused file raises before
anything is returned, so an ingest stores nothing from it.

``fetch(..., now)`` is a CandleSource fetch: bars with open time in ``[start, end)`` that closed by ``now``; the
caller's ``now`` is the replay clock, so no bar after it ever leaves the source.

The replay clock (``clock_now``): ``data_end`` is the newest close common to every configured series (the series
that ends first bounds the replay, so every series has every bar up to ``now``). For a wall time ``w``::

    replay_now = min(data_end, start + (w - anchor))

where ``anchor`` (a wall time) and ``start`` (a replay time, ``data_end - lead``) are written once, on the first
look, to the clock file (``<home>/<profile>/replay_clock.json``). Replay time then moves at the wall clock's pace:
the hourly schedule's ticks step through the last ``lead`` of the data bar by bar, and stop at its end. Delete
the file to start the walk again. ``kronos-assets run`` does not use the clock: its ``now`` is ``--now`` or
``data_end``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

import polars as pl

from kronos_assets.market.files import CandleFileError, ReadLimits, load_candle_file
from kronos_assets.market.files.profile import infer_timeframe
from kronos_assets.market.files.validation import first_true
from kronos_assets.market.timeframes import timeframe_delta, timeframe_seconds

DEFAULT_LEAD = timedelta(days=7)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


@dataclass(frozen=True)
class ReplayFile:
    symbol: str
    timeframe: str
    path: Path


class ReplayClockError(ValueError):
    """The clock file cannot be read; the message names it and the fix."""


class ReplayMarket:
    """CandleSource over real candle files with a replay clock (see the module docstring)."""

    name = "replay"

    def __init__(
        self,
        files: Iterable[ReplayFile],
        exchange: str = "binance",
        clock_file: Path | None = None,
        lead: timedelta = DEFAULT_LEAD,
        wall: Callable[[], datetime] = _utc_now,
        limits: ReadLimits = ReadLimits(),
    ):
        self.files = {(f.symbol, f.timeframe): Path(f.path) for f in files}
        self.exchange = exchange
        self.clock_file = Path(clock_file) if clock_file else None
        self.lead = lead
        self.wall = wall
        self.limits = limits
        self._cache: dict[Path, tuple[tuple[float, int], pl.DataFrame]] = {}

    # -- the files ----------------------------------------------------------------------------------------------
    def candles(self, symbol: str, timeframe: str) -> pl.DataFrame:
        """Every bar of the series' file, validated (cached until the file changes)."""
        path = self.files.get((symbol, timeframe))
        if path is None:
            known = ", ".join(f"{s} {t}" for s, t in self.files) or "none"
            raise KeyError(f"the replay market has no file for {symbol} {timeframe} (configured: {known})")
        st = path.stat()
        key = (st.st_mtime, st.st_size)
        cached = self._cache.get(path)
        if cached is None or cached[0] != key:
            cached = (key, self._read(path, timeframe))
            self._cache[path] = cached
        return cached[1]

    def _read(self, path: Path, timeframe: str) -> pl.DataFrame:
        frame = load_candle_file(path, limits=self.limits).candles  # upload rules: rows, order, OHLC
        found = infer_timeframe(frame["ts"], path=path) if frame.height > 1 else timeframe
        if found != timeframe:
            raise CandleFileError(path, "timeframe_mismatch", f"holds {found} candles, {timeframe} are configured")
        wall = _utc(self.wall())
        i = first_true(frame["ts"] + timeframe_delta(timeframe) > wall)
        if i is not None:
            raise CandleFileError(
                path,
                "bar_after_now",
                f"row {i + 1}: the bar {frame['ts'][i]} closes after the "
                f"current time ({wall:%Y-%m-%d %H:%M} UTC); real data cannot hold it",
            )
        return frame.with_columns(pl.lit(self.exchange).alias("exchange"))

    def series_end(self, symbol: str, timeframe: str) -> datetime:
        """When the newest bar of the series closed."""
        return self.candles(symbol, timeframe)["ts"][-1] + timeframe_delta(timeframe)

    def data_end(self) -> datetime:
        """The newest close common to every configured series: the default replay ``now``."""
        return min(self.series_end(s, t) for s, t in self.files)

    # -- the source ---------------------------------------------------------------------------------------------
    def fetch(self, symbol: str, timeframe: str, start: datetime, end: datetime, now: datetime) -> pl.DataFrame:
        step = pl.duration(seconds=timeframe_seconds(timeframe))
        return self.candles(symbol, timeframe).filter(
            (pl.col("ts") >= _utc(start)) & (pl.col("ts") < _utc(end)) & (pl.col("ts") + step <= _utc(now))
        )

    # -- the clock ----------------------------------------------------------------------------------------------
    def clock_now(self, wall: datetime | None = None, start_clock: bool = True) -> datetime:
        """The replay time at wall time ``wall`` (default: now). Without a clock file yet, ``start_clock`` writes
        one (anchored at ``wall``); otherwise (a read-only look, e.g. health) the clock stands at the data end."""
        end = self.data_end()
        wall = _utc(wall or self.wall())
        if self.clock_file is None:
            return end
        anchor = self._read_clock() or (self._start_clock(wall, end - self.lead) if start_clock else None)
        if anchor is None:
            return end
        anchor_wall, start = anchor
        return min(end, start + max(wall - anchor_wall, timedelta(0)))

    def _read_clock(self) -> tuple[datetime, datetime] | None:
        assert self.clock_file is not None
        try:
            data = json.loads(self.clock_file.read_text())
            return _utc(datetime.fromisoformat(data["wall_anchor"])), _utc(datetime.fromisoformat(data["replay_start"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReplayClockError(
                f"{self.clock_file}: not a replay clock ({type(exc).__name__}: {exc}); delete it "
                "to start the replay clock again"
            ) from None

    def _start_clock(self, wall: datetime, start: datetime) -> tuple[datetime, datetime]:
        """Writes the clock file once: a complete temporary file linked into place, so the first writer wins and
        no reader ever sees half a file."""
        assert self.clock_file is not None
        self.clock_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.clock_file.with_name(f".{self.clock_file.name}.{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps(
                {
                    "wall_anchor": wall.isoformat(),
                    "replay_start": start.isoformat(),
                    "rule": "replay_now = min(data_end, replay_start + (wall_now - wall_anchor))",
                }
            )
        )
        try:
            os.link(tmp, self.clock_file)
        except FileExistsError:
            pass  # another process started the clock first: its anchor holds
        finally:
            tmp.unlink(missing_ok=True)
        found = self._read_clock()
        assert found is not None
        return found
