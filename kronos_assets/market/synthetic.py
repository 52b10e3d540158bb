"""A deterministic synthetic crypto market for the offline demo and for tests.

Prices follow a stochastic-volatility random walk on a 5-minute grid: log-volatility is the sum of a weekly and
a daily smooth regime (value noise between seeded knots), a fast AR(1) component and an intraday seasonal
profile; innovations are Student-t. Volume rises with volatility and with the size of each move. Candles of any
timeframe are aggregated from the grid, so OHLC are consistent across timeframes.

Determinism: every UTC day is drawn from its own generator seeded by (market seed, symbol, day), and the smooth
regimes from generators seeded by their knot index. The price level at a day's start follows from all earlier
days' returns and a slow pull towards the symbol's reference level (computed once per symbol and cached), so any window
yields the same candles whether it is asked
for alone or inside a longer one: backfills are reproducible.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import polars as pl
from scipy.signal import lfilter

from kronos_assets.market.schema import CANDLE_SCHEMA, empty_candles
from kronos_assets.market.timeframes import timeframe_seconds

STEP_S = 300
STEPS_PER_DAY = 86400 // STEP_S
EPOCH = date(2019, 1, 1)  # first synthetic day
REFERENCE_DAY = date(2025, 1, 1)  # the day whose open price is the symbol's reference price
REFERENCE_PRICES = {"BTC": 95000.0, "ETH": 3300.0, "SOL": 190.0, "BNB": 700.0, "XRP": 2.3}
REFERENCE_VOLUME_USD = 4.0e6  # quote volume of an average 5-minute step

# Log-volatility model (per 5-minute step). Calibrated so that hourly returns match real BTC/USDT 1h closely
# enough: std ~0.6 %, excess kurtosis ~10-20, slowly decaying autocorrelation of absolute returns.
LOG_SIGMA_MEAN = np.log(0.00125)
MONTHLY_SD, WEEKLY_SD, DAILY_SD, FAST_SD, FAST_PHI = 0.4, 0.3, 0.25, 0.35, 0.995
T_DOF = 4.0
# Intraday profile: quiet Asian night, busy US session (peak ~15:00 UTC); amplitude of log-volatility.
SEASON_AMPLITUDE = 0.3
# Log price is pulled back towards the symbol's reference level by this share of its deviation per day, so that
# years of synthetic history stay in a plausible price range.
MEAN_REVERSION_PER_DAY = 0.003


def _symbol_seed(seed: int, symbol: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}|{symbol}".encode()).digest()[:4], "big")


@lru_cache(maxsize=1 << 16)
def _knot(sseed: int, stream: int, k: int) -> float:
    """One knot's value; cached because each knot serves many days (a daily one two, a monthly one ~31) and a
    generator costs more than the rest of the knot's work."""
    return float(np.random.default_rng([sseed, stream, k]).standard_normal())


def _knot_values(sseed: int, stream: int, first: int, last: int) -> np.ndarray:
    return np.array([_knot(sseed, stream, k) for k in range(first, last + 1)])


def _value_noise(sseed: int, stream: int, t_days: np.ndarray, knot_days: float) -> np.ndarray:
    """Smooth noise of unit variance at knots every ``knot_days``, cosine-interpolated in between."""
    u = t_days / knot_days
    k0 = np.floor(u).astype(np.int64)
    vals = _knot_values(sseed, stream, int(k0.min()), int(k0.max()) + 1)
    a, b = vals[k0 - k0.min()], vals[k0 - k0.min() + 1]
    w = (1 - np.cos(np.pi * (u - k0))) / 2
    # Interpolation lowers the variance mid-way; rescale so the regime keeps unit variance everywhere.
    return (a * (1 - w) + b * w) / np.sqrt((1 - w) ** 2 + w**2)


_SEASON = SEASON_AMPLITUDE * np.cos(2 * np.pi * ((np.arange(STEPS_PER_DAY) * STEP_S / 3600.0) - 15.0) / 24.0)


@lru_cache(maxsize=2048)
def _day(sseed: int, day_index: int) -> dict[str, np.ndarray]:
    """The 288 five-minute steps of one day: log returns, high/low excursions and volume factors."""
    rng = np.random.default_rng([sseed, 0, day_index])
    t_days = day_index + np.arange(STEPS_PER_DAY) / STEPS_PER_DAY
    fast = lfilter(
        [1.0],
        [1.0, -FAST_PHI],
        rng.standard_normal(STEPS_PER_DAY) * np.sqrt(1 - FAST_PHI**2),
        zi=[rng.standard_normal() * FAST_PHI],
    )[0]
    log_sigma = (
        LOG_SIGMA_MEAN
        + MONTHLY_SD * _value_noise(sseed, 3, t_days, 30.0)
        + WEEKLY_SD * _value_noise(sseed, 1, t_days, 7.0)
        + DAILY_SD * _value_noise(sseed, 2, t_days, 1.0)
        + FAST_SD * fast
        + _SEASON
    )
    sigma = np.exp(log_sigma)
    z = rng.standard_t(T_DOF, STEPS_PER_DAY) / np.sqrt(T_DOF / (T_DOF - 2))
    ret = sigma * z
    up = np.abs(rng.standard_normal(STEPS_PER_DAY)) * sigma * 0.6
    down = np.abs(rng.standard_normal(STEPS_PER_DAY)) * sigma * 0.6
    vol_noise = rng.lognormal(0.0, 0.35, STEPS_PER_DAY)
    activity = np.exp(0.8 * (log_sigma - LOG_SIGMA_MEAN)) * (0.4 + 0.6 * np.abs(z)) * vol_noise
    return {"ret": ret, "up": up, "down": down, "activity": activity}


class _SymbolPath:
    """Cached per-symbol state: the log price at the start of each day since EPOCH."""

    def __init__(self, sseed: int, ref_price: float):
        self.sseed = sseed
        self.ref_price = ref_price
        self.log_ref = float(np.log(ref_price))
        self.day_start_logp = np.array([self.log_ref])

    def pull(self, day_index: int) -> float:
        """Daily mean-reversion drift, spread evenly over the day's steps."""
        return -MEAN_REVERSION_PER_DAY * (self.log_price_at_day(day_index) - self.log_ref)

    def log_price_at_day(self, day_index: int) -> float:
        starts = self.day_start_logp
        if day_index >= len(starts):
            out = list(starts)
            for d in range(len(starts) - 1, day_index):
                out.append(
                    out[d] + float(_day(self.sseed, d)["ret"].sum()) - MEAN_REVERSION_PER_DAY * (out[d] - self.log_ref)
                )
            self.day_start_logp = starts = np.array(out)
        return float(starts[day_index])


@lru_cache(maxsize=64)
def _symbol_path(sseed: int, ref_price: float) -> _SymbolPath:
    """One walk per (seed, symbol) in the process, shared by every market instance: each instance (a run's
    resources) would otherwise walk every day since EPOCH again, seconds per symbol. The walk is deterministic, so
    sharing it changes no candle."""
    return _SymbolPath(sseed, ref_price)


def _reference_price(symbol: str) -> float:
    base = symbol.split("/")[0]
    if base in REFERENCE_PRICES:
        return REFERENCE_PRICES[base]
    h = int.from_bytes(hashlib.sha256(base.encode()).digest()[:4], "big")
    return float(10 ** (h % 400 / 100.0))  # 1 .. 10,000


class SyntheticMarket:
    """CandleSource of the demo profile. The same (seed, symbol, timeframe, window) always gives the same candles."""

    name = "synthetic"

    def __init__(self, seed: int = 7):
        self.seed = seed

    def _path(self, symbol: str) -> _SymbolPath:
        return _symbol_path(_symbol_seed(self.seed, symbol), _reference_price(symbol))

    def fetch(self, symbol: str, timeframe: str, start: datetime, end: datetime, now: datetime) -> pl.DataFrame:
        bar_s = timeframe_seconds(timeframe)
        if bar_s % STEP_S:
            raise ValueError(f"synthetic market cannot make {timeframe} bars from {STEP_S}s steps")
        end = min(end, now)
        first_day = max(start.astimezone(timezone.utc).date(), EPOCH)
        last_day = (end - timedelta(microseconds=1)).astimezone(timezone.utc).date()
        if end <= start or last_day < first_day:
            return empty_candles()
        path = self._path(symbol)
        frames = []
        d = first_day
        while d <= last_day:
            frames.append(self._day_bars(path, d, bar_s))
            d += timedelta(days=1)
        df = pl.concat(frames)
        # Keep bars whose open is in [start, end) and that have closed by `now`.
        close_by = now - timedelta(seconds=bar_s)
        return df.filter((pl.col("ts") >= start) & (pl.col("ts") < end) & (pl.col("ts") <= close_by))

    def _day_bars(self, path: _SymbolPath, d: date, bar_s: int) -> pl.DataFrame:
        idx = (d - EPOCH).days
        day = _day(path.sseed, idx)
        drift = path.pull(idx) * np.arange(STEPS_PER_DAY + 1) / STEPS_PER_DAY
        logp = path.log_price_at_day(idx) + np.concatenate([[0.0], np.cumsum(day["ret"])]) + drift
        o, c = np.exp(logp[:-1]), np.exp(logp[1:])
        hi = np.maximum(o, c) * np.exp(day["up"])
        lo = np.minimum(o, c) * np.exp(-day["down"])
        amount = REFERENCE_VOLUME_USD * day["activity"] * (path.ref_price / _reference_price("BTC/USDT")) ** 0.1
        vol = amount / ((o + hi + lo + c) / 4)
        n = bar_s // STEP_S
        k = STEPS_PER_DAY // n
        day_start = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
        return pl.DataFrame(
            {
                "ts": [day_start + timedelta(seconds=i * bar_s) for i in range(k)],
                "open": o.reshape(k, n)[:, 0],
                "high": hi.reshape(k, n).max(axis=1),
                "low": lo.reshape(k, n).min(axis=1),
                "close": c.reshape(k, n)[:, -1],
                "volume": vol.reshape(k, n).sum(axis=1),
                "amount": amount.reshape(k, n).sum(axis=1),
                "exchange": ["synthetic"] * k,
            },
            schema=CANDLE_SCHEMA,
        )
