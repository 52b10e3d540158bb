"""Size and power of the Diebold-Mariano test the track record publishes, on overlapping 24-step forecasts.

    .venv/bin/python benchmarks/bench_dm_size.py [--reps 1000] [--calibrate]

Nulls (issue 26), each at n = 240, 480 and 720 origins one bar apart, horizon h = 24:

* signs24, signs120: real loss differences (CRPS of the plain random walk minus that of the random walk with
  volatility, 24 bars ahead on real Binance 1h candles of five symbols, centred per symbol) with random signs
  per block of 24 or 120 origins (blocks at a random phase);
* seeds: the random walk with volatility against itself with another seed (30 paths each) on real candles;
* garch_ma23: GARCH(1,1) shocks with t5 innovations through an MA(23) (a 24-bar moving sum);
* varbreak: Gaussian MA(23) whose shocks' variance is nine times larger from halfway;
* each of those plus an AR(1) part with a half-life of 14, 34, 69 or 138 bars, its share of the variance set so
  that d's autocorrelation at lag 24 is 0.5 (with a half-life of 14 even the AR(1) alone has only 0.31 there:
  then it is the AR(1) alone).

Size: the rejection rate at nominal 5 %; a withheld verdict (TooPersistent) is not a rejection. Power for a 3 %
CRPS gap: (a) shift: the two-seed difference plus 3 % of the mean CRPS; (b) narrow: the random walk with
volatility with its spread scaled so that its mean CRPS is 3 % higher, against the unscaled one (a real gap,
as persistent as volatility). Next to the test, the previous one (EWC with one cosine per two horizons, t, no
persistence allowance). --calibrate prints, per n, the smallest persistence allowance that keeps every null at
or below 6.5 % (compare.PERSISTENCE_ALLOWANCE). Writes benchmarks/results/dm_size.json. Needs the shared real
candles (KRONOS_SHARED_DIR or ../shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

from kronos_assets.metrics import crps_samples, dm_batch
from kronos_assets.metrics.compare import PERSISTENCE_LIMIT, cosine_terms, persistence_allowance

H = 24
SIZES = (240, 480, 720)
BASES = ("signs24", "signs120", "seeds", "garch_ma23", "varbreak")
HALF_LIVES = (None, 14, 34, 69, 138)
SYMBOLS = ("BTC", "ETH", "SOL", "BNB", "XRP")
N_PATHS, VOL_WINDOW = 30, 168
REPO = Path(__file__).resolve().parents[1]
CANDLES = Path(os.environ.get("KRONOS_SHARED_DIR", REPO.parent / "shared")) / "data" / "candles"


def real_losses(symbol: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per origin on real 1h candles: the 24-bar log return's absolute value (CRPS of the plain random walk),
    the random walk with volatility's spread and its CRPS with two seeds."""
    path = CANDLES / f"binance_{symbol}USDT_1h_20200920_20250919.csv.gz"
    log_close = np.log(pl.read_csv(path)["close"].to_numpy().astype(np.float64))
    r = np.diff(log_close)
    t = np.arange(VOL_WINDOW, log_close.size - H)  # origin index: its close is the last one seen
    cs, cs2 = np.concatenate([[0.0], np.cumsum(r)]), np.concatenate([[0.0], np.cumsum(r * r)])
    mean = (cs[t] - cs[t - VOL_WINDOW]) / VOL_WINDOW
    sigma = np.sqrt(np.maximum((cs2[t] - cs2[t - VOL_WINDOW]) / VOL_WINDOW - mean**2, 1e-18) * H)
    y = log_close[t + H] - log_close[t]
    z_a, z_b = rng.standard_normal((N_PATHS, t.size)), rng.standard_normal((N_PATHS, t.size))
    return {
        "rw": np.abs(y),
        "a": crps_samples(sigma * z_a, y),
        "b": crps_samples(sigma * z_b, y),
        "sigma": sigma,
        "y": y,
        "z_b": z_b,
    }


class Nulls:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.real = [real_losses(s, rng) for s in SYMBOLS]
        self.centred = [(p["rw"] - p["a"]) - (p["rw"] - p["a"]).mean() for p in self.real]
        self.mean_crps = float(np.mean([p["a"].mean() for p in self.real]))

    def windows(self, series: list[np.ndarray], n: int, reps: int) -> np.ndarray:
        which = self.rng.integers(len(series), size=reps)
        out = np.empty((reps, n))
        for i, s in enumerate(which):
            start = self.rng.integers(0, series[s].size - n)
            out[i] = series[s][start : start + n]
        return out

    def block_signs(self, reps: int, n: int, block: int) -> np.ndarray:
        signs = self.rng.choice([-1.0, 1.0], size=(reps, n // block + 2))
        index = (np.arange(n)[None, :] + self.rng.integers(0, block, size=reps)[:, None]) // block
        return np.take_along_axis(signs, index, axis=1)

    def garch_t(
        self, reps: int, length: int, omega: float = 0.02, alpha: float = 0.08, beta: float = 0.90, nu: int = 5
    ) -> np.ndarray:
        z = self.rng.standard_t(nu, (reps, length + 200)) / np.sqrt(nu / (nu - 2))
        var, out = np.full(reps, omega / (1 - alpha - beta)), np.empty((reps, length + 200))
        for t in range(length + 200):
            out[:, t] = np.sqrt(var) * z[:, t]
            var = omega + alpha * out[:, t] ** 2 + beta * var
        return out[:, 200:]

    def base(self, kind: str, n: int, reps: int) -> np.ndarray:
        if kind in ("signs24", "signs120"):
            return self.windows(self.centred, n, reps) * self.block_signs(reps, n, int(kind[5:]))
        if kind == "seeds":
            return self.windows([p["a"] - p["b"] for p in self.real], n, reps)
        if kind == "garch_ma23":
            return moving_sum(self.garch_t(reps, n + H - 1))
        shocks = self.rng.standard_normal((reps, n + H - 1))
        shocks[:, (n + H - 1) // 2 :] *= 3.0
        return moving_sum(shocks)

    def ar1(self, reps: int, n: int, half_life: float) -> np.ndarray:
        phi = 0.5 ** (1 / half_life)
        e = self.rng.standard_normal((reps, n)) * np.sqrt(1 - phi * phi)
        x = np.empty((reps, n))
        x[:, 0] = self.rng.standard_normal(reps)
        for t in range(1, n):
            x[:, t] = phi * x[:, t - 1] + e[:, t]
        return x

    def null(self, kind: str, n: int, reps: int, half_life: float | None) -> np.ndarray:
        d = self.base(kind, n, reps)
        if half_life is None:
            return d
        e = d - d.mean(axis=1, keepdims=True)
        base_acf = float((e[:, H:] * e[:, :-H]).mean() / (e * e).mean())
        share = min(1.0, (0.5 - base_acf) / (0.5 ** (H / half_life) - base_acf))
        ar = np.sqrt(e.var()) * self.ar1(reps, n, half_life)
        return np.sqrt(1 - share) * d + np.sqrt(share) * ar

    def narrow_gap(self, gap: float) -> list[np.ndarray]:
        """Per symbol: CRPS of the random walk with volatility with its spread scaled (bisection) so that its mean
        CRPS is ``gap`` higher, minus that of the unscaled one."""
        out = []
        for p in self.real:

            def crps_at(scale: float, p: dict[str, np.ndarray] = p) -> np.ndarray:
                return crps_samples(scale * p["sigma"] * p["z_b"], p["y"])

            lo, hi = 0.2, 1.0
            for _ in range(30):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if crps_at(mid).mean() / p["a"].mean() - 1 > gap else (lo, mid)
            out.append(crps_at(hi) - p["a"])
        return out


def moving_sum(x: np.ndarray) -> np.ndarray:
    c = np.cumsum(np.pad(x, ((0, 0), (1, 0))), axis=1)
    return c[:, H:] - c[:, :-H]


def previous_p(d: np.ndarray) -> np.ndarray:
    """The test this replaces: EWC with one cosine per two independent horizons, Student t, no allowance."""
    n = d.shape[1]
    nu = (n // H) // 2
    basis = np.sqrt(2.0 / n) * np.cos(np.pi * np.arange(1, nu + 1)[:, None] * (np.arange(n) + 0.5) / n)
    omega = np.mean(((d - d.mean(axis=1, keepdims=True)) @ basis.T) ** 2, axis=1)
    return 2 * stats.t.sf(np.abs(d.mean(axis=1) / np.sqrt(omega / n)), nu)


def cell(d: np.ndarray) -> dict[str, float]:
    statistic, p, persistence = dm_batch(d, H)
    k = d.shape[1] // H
    t_crit = stats.t.ppf(0.975, cosine_terms(k))
    # allowance needed for this cell at 6.5 %: quantile of |t| / t_crit over samples with a verdict
    needed = np.where(persistence > PERSISTENCE_LIMIT, 0.0, np.abs(statistic) / t_crit)
    return {
        "reject": float(np.mean(p < 0.05)),
        "withheld": float(np.mean(np.isnan(p))),
        "previous": float(np.mean(previous_p(d) < 0.05)),
        "allowance_needed": float(np.quantile(needed, 0.935)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000, help="replications per cell (default 1000)")
    ap.add_argument("--seed", type=int, default=26)
    ap.add_argument("--calibrate", action="store_true", help="print the allowance each n needs")
    args = ap.parse_args()
    if not CANDLES.is_dir():
        sys.exit(f"real candles not found at {CANDLES}: set KRONOS_SHARED_DIR to the shared folder")
    t0 = time.perf_counter()
    nulls = Nulls(np.random.default_rng(args.seed))
    size: dict[str, dict[int, dict[str, float]]] = {}
    for kind in BASES:
        for hl in HALF_LIVES:
            name = kind if hl is None else f"{kind} + AR(1) hl {hl}"
            size[name] = {n: cell(nulls.null(kind, n, args.reps, hl)) for n in SIZES}
    narrow = nulls.narrow_gap(0.03)
    power = {
        "shift 3 %": {
            n: cell(nulls.windows([p["a"] - p["b"] for p in nulls.real], n, args.reps) + 0.03 * nulls.mean_crps)
            for n in SIZES
        },
        "narrow 3 %": {n: cell(nulls.windows(narrow, n, args.reps)) for n in SIZES},
    }
    print(
        f"{args.reps} replications per cell, h = {H}, {time.perf_counter() - t0:.0f} s; "
        f"rejections at nominal 5 % (withheld: no verdict, too persistent; previous: the EWC test it replaces)"
    )
    head = " | ".join(f"n = {n}: size (withheld; previous)" for n in SIZES)
    print(f"| null | {head} |\n|---|{'---|' * len(SIZES)}")
    fmt = lambda c: f"{100 * c['reject']:.1f} % ({100 * c['withheld']:.0f} %; {100 * c['previous']:.1f} %)"  # noqa: E731
    for name, row in (size | power).items():
        print(f"| {name} | " + " | ".join(fmt(row[n]) for n in SIZES) + " |")
    worst = {n: max(row[n]["reject"] for row in size.values()) for n in SIZES}
    print("worst size: " + ", ".join(f"n = {n}: {100 * w:.1f} %" for n, w in worst.items()))
    if args.calibrate:
        for n in SIZES:
            need = max(row[n]["allowance_needed"] for row in size.values())
            print(f"n = {n} (k = {n // H}): allowance needed {need:.2f}, in use {persistence_allowance(n // H):.2f}")
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "dm_size.json").write_text(
        json.dumps({"reps": args.reps, "horizon": H, "size": size, "power": power, "worst_size": worst}, indent=1)
    )


if __name__ == "__main__":
    main()
