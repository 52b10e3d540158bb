"""Model input from candles (spec §8 steps 1-5): validation, volume/amount filling, z-score normalisation over the
history window, time features, and the inverse transform of generated bars.

The model only ever sees, and is normalised on, the history window it forecasts from: ``prepare_series`` keeps the
last ``max_history`` bars before validating and normalising, so a long frame gives exactly the forecast of its last
window (the original normalises over every row it is given, so a 30,000-bar file shifted the statistics far from the
bars the model sees).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

import numpy as np
import polars as pl

from kronos_assets.market.rules import PRICE_COLUMNS, volume_and_amount

from .errors import KronosInputError, MissingColumnsError, NonFiniteInputError, TimestampOrderError

FEATURES = ("open", "high", "low", "close", "volume", "amount")
CLOSE, VOLUME = FEATURES.index("close"), FEATURES.index("volume")
NORM_EPS = 1e-5


def time_features(ts: np.ndarray) -> np.ndarray:
    """[minute, hour, weekday (Monday=0), day, month] per timestamp (wall clock), int64 (n, 5)."""
    ts = np.asarray(ts).astype("datetime64[us]")
    days = ts.astype("datetime64[D]")
    months = ts.astype("datetime64[M]")
    return np.stack(
        [
            ts.astype("datetime64[m]").astype(np.int64) % 60,
            ts.astype("datetime64[h]").astype(np.int64) % 24,
            (days.astype(np.int64) + 3) % 7,  # 1970-01-01 was a Thursday
            (days - months.astype("datetime64[D]")).astype(np.int64) + 1,
            months.astype(np.int64) % 12 + 1,
        ],
        axis=1,
    )


@dataclass(frozen=True)
class PreparedSeries:
    """One validated, normalised history and the stamps of its horizon."""

    x: np.ndarray  # (L, 6) float32, z-scored over the whole history and clipped
    mean: np.ndarray  # (6,) float32
    std: np.ndarray  # (6,) float32, population std
    x_stamp: np.ndarray  # (L, 5) int64
    y_stamp: np.ndarray  # (H, 5) int64
    history_close: np.ndarray  # (L,) float64, raw closes
    future_ts: np.ndarray  # (H,) datetime64[us]
    name: str = "series"

    @property
    def horizon(self) -> int:
        return len(self.future_ts)

    def denormalise(self, bars: np.ndarray) -> np.ndarray:
        return (bars.astype(np.float32) * (self.std + np.float32(NORM_EPS)) + self.mean).astype(np.float64)


def _wall_clock(s: pl.Series, what: str) -> np.ndarray:
    if s.dtype == pl.Date:
        s = s.cast(pl.Datetime("us"))
    if not isinstance(s.dtype, pl.Datetime):
        raise KronosInputError(f"{what}: timestamps must be datetimes, got dtype {s.dtype}")
    if s.null_count():
        raise TimestampOrderError(f"{what}: {s.null_count()} missing timestamps")
    if s.dtype.time_zone is not None:  # time features use local wall-clock fields, as pandas .dt does
        s = s.dt.replace_time_zone(None)
    return s.dt.cast_time_unit("us").to_numpy()


def _check_increasing(ts: np.ndarray, what: str) -> None:
    d = np.diff(ts).astype(np.int64)
    if (d == 0).any():
        raise TimestampOrderError(f"{what}: duplicate timestamp {ts[1:][d == 0][0]}")
    if (d < 0).any():
        i = int(np.argmax(d < 0))
        raise TimestampOrderError(f"{what}: timestamps not sorted ascending ({ts[i]} before {ts[i + 1]})")


def _column(frame: pl.DataFrame, col: str) -> np.ndarray | None:
    """float64 values, or None when the column is absent or entirely null."""
    if col not in frame.columns or frame[col].null_count() == frame.height:
        return None
    return frame[col].cast(pl.Float64).to_numpy()  # nulls become NaN


def prepare_series(
    frame: pl.DataFrame,
    future_ts: Sequence[datetime] | np.ndarray | pl.Series,
    *,
    time_column: str = "ts",
    clip: float = 5.0,
    name: str = "series",
    max_history: int | None = None,
) -> PreparedSeries:
    """Validate candles and build the model input (spec §8 steps 1-5) from the last ``max_history`` bars (all
    when None): those bars alone are validated and give the normalisation statistics.

    Volume and amount follow ``market.rules.volume_and_amount``: missing or all-null volume -> both 0; missing or
    null amount -> volume x mean(OHLC) for those rows (the original fills only a missing column; a null amount is
    how our candle frames say "not given").
    """
    if not isinstance(frame, pl.DataFrame):
        raise KronosInputError(f"{name}: candles must be a polars DataFrame, got {type(frame).__name__}")
    missing = [c for c in (time_column, *PRICE_COLUMNS) if c not in frame.columns]
    if missing:
        raise MissingColumnsError(f"{name}: missing columns {missing} (have {frame.columns})")
    if frame.height == 0:
        raise KronosInputError(f"{name}: the history is empty")
    if max_history is not None:
        if max_history < 1:
            raise KronosInputError(f"{name}: max_history must be >= 1, got {max_history}")
        frame = frame.tail(max_history)
    ts = _wall_clock(frame[time_column], f"{name} history")
    _check_increasing(ts, f"{name} history")
    cols: dict[str, np.ndarray] = {c: frame[c].cast(pl.Float64).to_numpy() for c in PRICE_COLUMNS}
    cols["volume"], cols["amount"] = volume_and_amount(cols, _column(frame, "volume"), _column(frame, "amount"))
    for c in FEATURES:
        bad = ~np.isfinite(cols[c])
        if bad.any():
            raise NonFiniteInputError(
                f"{name}: column {c!r} has {int(bad.sum())} missing or non-finite values (first at {ts[bad][0]})"
            )
    # Column-major like pandas' .values of the original: numpy then sums each column pairwise, which gives
    # float32 statistics that differ (~1e-7) from a row-major reduction.
    x = np.asfortranarray(np.stack([cols[c] for c in FEATURES], axis=1).astype(np.float32))
    mean = np.mean(x, axis=0)
    std = np.std(x, axis=0)
    xn = np.ascontiguousarray(np.clip((x - mean) / (std + np.float32(NORM_EPS)), -clip, clip), dtype=np.float32)
    if len(future_ts) == 0:
        raise KronosInputError(f"{name}: no future timestamps (the horizon must be >= 1)")
    if not isinstance(future_ts, pl.Series):
        future_ts = pl.Series("future_ts", future_ts if isinstance(future_ts, np.ndarray) else list(future_ts))
    fut = _wall_clock(future_ts, f"{name} future_ts")
    _check_increasing(fut, f"{name} future_ts")
    if fut[0] <= ts[-1]:
        raise TimestampOrderError(f"{name}: first future timestamp {fut[0]} is not after the last bar {ts[-1]}")
    return PreparedSeries(xn, mean, std, time_features(ts), time_features(fut), cols["close"].copy(), fut, name)
