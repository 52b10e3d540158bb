"""Training data: candle frames -> per-series feature arrays -> windows of lookback + horizon contiguous bars.

A window is normalised with statistics of its *lookback* rows only (the history a forecast would see), then clipped
to ±clip, exactly as ``kronos.inputs.prepare_series`` normalises a history at inference: population std, float32,
``(x - mean) / (std + 1e-5)``. The horizon rows are scaled with the same statistics, so nothing about them leaks into
the normalisation. Windows never span a gap in the bars.

Frames come from the warehouse's ``clean_candles`` table, from the synthetic demo market, or from CSV files; every
source yields the project's candle schema (``ts`` UTC, open/high/low/close/volume, amount optional).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import polars as pl
import torch

from kronos_assets.base import environment
from kronos_assets.kronos.inputs import FEATURES, NORM_EPS, time_features
from kronos_assets.market.rules import PRICE_COLUMNS, volume_and_amount
from kronos_assets.market.timeframes import timeframe_seconds


class TrainingDataError(ValueError):
    """Candles that cannot be turned into training windows; the message says which series and why."""


def as_utc(day_or_time: date | datetime) -> datetime:
    """A date means midnight UTC; a naive datetime is UTC."""
    if isinstance(day_or_time, datetime):
        return day_or_time if day_or_time.tzinfo else day_or_time.replace(tzinfo=timezone.utc)
    return datetime.combine(day_or_time, time(0), tzinfo=timezone.utc)


# -- sources -------------------------------------------------------------------------------------------------
def frames_from_synthetic(
    symbols: Sequence[str], timeframe: str, start: date | datetime, end: date | datetime, seed: int = 7
) -> dict[str, pl.DataFrame]:
    """Candles of the demo market (``SyntheticMarket(seed)``) for [start, end)."""
    from kronos_assets.market.synthetic import SyntheticMarket

    market = SyntheticMarket(seed=seed)
    s, e = as_utc(start), as_utc(end)
    return {sym: market.fetch(sym, timeframe, s, e, e) for sym in symbols}


def frames_from_warehouse(
    warehouse: Any, symbols: Sequence[str], timeframe: str, start: date | datetime, end: date | datetime
) -> dict[str, pl.DataFrame]:
    """Rows of ``clean_candles`` for each symbol and [start, end), sorted by ts."""
    out = {}
    for sym in symbols:
        out[sym] = warehouse.query(
            "SELECT ts, open, high, low, close, volume, amount FROM clean_candles "
            "WHERE symbol = ? AND timeframe = ? AND ts >= ? AND ts < ? ORDER BY ts",
            [sym, timeframe, as_utc(start), as_utc(end)],
        )
    return out


def frames_from_csv(
    files: Mapping[str, str | Path], start: date | datetime | None = None, end: date | datetime | None = None
) -> dict[str, pl.DataFrame]:
    """Candle CSVs (optionally .gz; a time column plus OHLC, volume/amount optional), cut to [start, end). A bad file
    raises TrainingDataError naming the file, the row and the problem."""
    from kronos_assets.market.files import CandleFileError, read_candle_file

    out = {}
    for sym, path in files.items():
        try:
            df = read_candle_file(Path(path)).sort("ts")
        except CandleFileError as exc:
            raise TrainingDataError(f"{path}: {exc.detail}") from exc
        df = df.with_columns(pl.col("ts").dt.cast_time_unit("us"))
        if start is not None:
            df = df.filter(pl.col("ts") >= as_utc(start))
        if end is not None:
            df = df.filter(pl.col("ts") < as_utc(end))
        out[sym] = df
    return out


SHARED_PREFIX = "$KRONOS_SHARED_DIR/"


def resolve_data_file(path: str | Path, root: Path) -> Path:
    """A configured candle file: ``$KRONOS_SHARED_DIR/...`` lies in the shared folder (that variable, else
    ``../shared`` beside the repository), so committed configs name no machine's folders; any other relative path
    is relative to ``root``."""
    text = str(path)
    if text.startswith(SHARED_PREFIX):
        return environment.shared_dir(root.parent / "shared") / text[len(SHARED_PREFIX) :]
    p = Path(text).expanduser()
    return p if p.is_absolute() else root / p


def cut(frame: pl.DataFrame, start: date | datetime | None, end: date | datetime | None) -> pl.DataFrame:
    if start is not None:
        frame = frame.filter(pl.col("ts") >= as_utc(start))
    if end is not None:
        frame = frame.filter(pl.col("ts") < as_utc(end))
    return frame


# -- series --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """One symbol's bars as model features: raw (unnormalised) float32 features, stamps and bar times."""

    name: str
    features: np.ndarray  # (N, 6) float32, FEATURES order
    stamps: np.ndarray  # (N, 5) int64: minute, hour, weekday, day, month
    ts: np.ndarray  # (N,) datetime64[us], UTC wall clock
    step_us: int  # bar length

    def __len__(self) -> int:
        return len(self.ts)


def series_from_frame(name: str, frame: pl.DataFrame, timeframe: str) -> Series:
    """Features of a candle frame; volume and amount by the rule of market.rules (missing volume -> both 0,
    missing or null amount -> volume x mean OHLC), so training sees what inference sees."""
    missing = [c for c in ("ts", *PRICE_COLUMNS) if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"{name}: missing columns {missing} (have {frame.columns})")
    frame = frame.sort("ts")
    ts_col = frame["ts"]
    if isinstance(ts_col.dtype, pl.Datetime) and ts_col.dtype.time_zone is not None:
        ts_col = ts_col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    ts = ts_col.dt.cast_time_unit("us").to_numpy()
    if len(ts) and (np.diff(ts).astype(np.int64) <= 0).any():
        raise TrainingDataError(f"{name}: duplicate timestamps")
    cols = {c: frame[c].cast(pl.Float64).to_numpy() for c in PRICE_COLUMNS}
    vol = frame["volume"].cast(pl.Float64).to_numpy() if "volume" in frame.columns else None
    amt = frame["amount"].cast(pl.Float64).to_numpy() if "amount" in frame.columns else None
    cols["volume"], cols["amount"] = volume_and_amount(cols, vol, amt)
    x = np.stack([cols[c] for c in FEATURES], axis=1)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise TrainingDataError(f"{name}: {bad} bars with missing or non-finite values")
    return Series(name, x.astype(np.float32), time_features(ts), ts, timeframe_seconds(timeframe) * 1_000_000)


def normalise_window(window: np.ndarray, lookback: int, clip: float = 5.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normalised window, mean, std) with mean/std of ``window[:lookback]`` only (float32, population std)."""
    hist = np.asfortranarray(window[:lookback], dtype=np.float32)  # column-wise sums, as prepare_series
    mean = np.mean(hist, axis=0)
    std = np.std(hist, axis=0)
    xn = np.clip((window.astype(np.float32) - mean) / (std + np.float32(NORM_EPS)), -clip, clip)
    return np.ascontiguousarray(xn, dtype=np.float32), mean, std


# -- windows -------------------------------------------------------------------------------------------------
@dataclass
class Batch:
    x: torch.Tensor  # [B, W, 6] float32, normalised per window over its lookback
    stamp: torch.Tensor  # [B, W, 5] int64

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.x.to(device), self.stamp.to(device))


class WindowSet:
    """Every window of ``lookback + horizon`` contiguous bars that lies in [start, end) of each series.

    Batches are drawn by index from a generator seeded with (seed, stream, step): the batch of a given step does
    not depend on what was drawn before, so a resumed run sees exactly the batches of an uninterrupted one.
    """

    def __init__(
        self,
        series: Sequence[Series],
        lookback: int,
        horizon: int,
        *,
        start: date | datetime | None = None,
        end: date | datetime | None = None,
        clip: float = 5.0,
    ) -> None:
        if lookback < 2 or horizon < 1:
            raise TrainingDataError(f"lookback must be >= 2 and horizon >= 1, got {lookback} and {horizon}")
        self.series = list(series)
        self.lookback, self.horizon, self.clip = lookback, horizon, clip
        self.length = lookback + horizon
        lo = None if start is None else np.datetime64(as_utc(start).replace(tzinfo=None), "us")
        hi = None if end is None else np.datetime64(as_utc(end).replace(tzinfo=None), "us")
        index = []
        for k, s in enumerate(self.series):
            starts = _contiguous_starts(s, self.length, lo, hi)
            index.append(np.stack([np.full(len(starts), k), starts], axis=1))
        self.index = np.concatenate(index).astype(np.int64) if index else np.zeros((0, 2), np.int64)
        if len(self.index) == 0:
            where = f" in [{start}, {end})" if start or end else ""
            names = ", ".join(f"{s.name} ({len(s)} bars)" for s in self.series) or "no series"
            raise TrainingDataError(f"no window of {self.length} contiguous bars{where}: {names}")

    def __len__(self) -> int:
        return len(self.index)

    def counts(self) -> dict[str, int]:
        ks, n = np.unique(self.index[:, 0], return_counts=True)
        return {self.series[int(k)].name: int(c) for k, c in zip(ks, n)}

    def window(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(normalised features [W, 6], stamps [W, 5], bar times [W]) of window i."""
        k, s0 = self.index[i]
        s = self.series[int(k)]
        sl = slice(int(s0), int(s0) + self.length)
        xn, _, _ = normalise_window(s.features[sl], self.lookback, self.clip)
        return xn, s.stamps[sl], s.ts[sl]

    def batch_indices(self, seed: int, stream: int, step: int, batch_size: int) -> np.ndarray:
        rng = np.random.default_rng([int(seed), int(stream), int(step)])
        return rng.integers(0, len(self.index), size=batch_size)

    def batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        xs, stamps = zip(*((x, st) for x, st, _ in (self.window(int(i)) for i in indices)))
        return Batch(torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(stamps)))

    def draw(self, seed: int, stream: int, step: int, batch_size: int) -> Batch:
        return self.batch(self.batch_indices(seed, stream, step, batch_size))

    def fixed(self, n: int) -> np.ndarray:
        """n window indices spread evenly over the set (for validation losses)."""
        n = min(n, len(self.index))
        return np.linspace(0, len(self.index) - 1, n).round().astype(np.int64)


def _contiguous_starts(s: Series, length: int, lo: np.datetime64 | None, hi: np.datetime64 | None) -> np.ndarray:
    n = len(s)
    if n < length:
        return np.zeros(0, np.int64)
    gap = (np.diff(s.ts).astype(np.int64) != s.step_us).astype(np.int64)  # gap[i]: between bar i and i+1
    bad = np.concatenate([[0], np.cumsum(gap)])
    starts = np.arange(n - length + 1)
    ok = bad[starts + length - 1] - bad[starts] == 0
    if lo is not None:
        ok &= s.ts[starts] >= lo
    if hi is not None:  # the window's last bar must open before hi
        ok &= s.ts[starts + length - 1] < hi
    return starts[ok]
