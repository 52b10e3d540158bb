"""The real-data study: its wall time (measured on a strided slice, extrapolated and labelled so) and the size of
its Sharpe-difference test under the null.

    .venv/bin/python benchmarks/bench_study.py size [--reps 1000]       # false-positive rate of the bootstrap test
    .venv/bin/python benchmarks/bench_study.py time --stride 24 [--months 1]   # run `kronos-assets study` and
    extrapolate

size: two return series with the same Sharpe ratio by construction (hourly, GARCH(1,1) volatility clustering shared
by both, AR(1) in the innovations, the two correlated 0.5), 8,760 bars like the study; the stationary bootstrap
test (kronos_assets/metrics/strategy.py, mean block 24) should reject at 5 % in about 5 % of samples. A second
design holds the same long/flat positions (persistent: a position lasts 10 bars on average) on both series, as a
strategy's returns are zero while it is flat.

time: runs the study (a home in a temporary folder unless --home) and reports the measured seconds, then the
whole study's projected time on this machine: the forecast-and-score part scaled by origins (an extrapolation,
printed as such). Results: benchmarks/results/study_<what>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from kronos_assets.metrics.strategy import MEAN_BLOCK, sharpe_difference  # noqa: E402


def null_pair(rng: np.random.Generator, n: int, design: str) -> tuple[np.ndarray, np.ndarray]:
    """Two hourly return series whose true Sharpe ratios are equal."""
    omega, alpha, beta = 1e-7, 0.08, 0.9
    z = rng.standard_normal((2, n))
    z[1] = 0.5 * z[0] + np.sqrt(1 - 0.5**2) * z[1]
    e = np.empty_like(z)
    e[:, 0] = z[:, 0]
    for t in range(1, n):  # AR(1) innovations, unit variance
        e[:, t] = 0.2 * e[:, t - 1] + np.sqrt(1 - 0.2**2) * z[:, t]
    var = np.empty(n)
    var[0] = omega / (1 - alpha - beta)
    for t in range(1, n):
        var[t] = omega + alpha * var[t - 1] * z[0, t - 1] ** 2 + beta * var[t - 1]
    mu = 0.05 * np.sqrt(omega / (1 - alpha - beta))  # a small positive drift: Sharpe ~ 4.7 annualised
    a = mu + np.sqrt(var) * e[0]
    b = mu + np.sqrt(var) * e[1]
    if design == "positions":  # the same long/flat positions on both: their Sharpe ratios stay equal
        pos = np.empty(n)
        pos[0] = 1.0
        switch = rng.random(n) < 0.1
        for t in range(1, n):
            pos[t] = 1.0 - pos[t - 1] if switch[t] else pos[t - 1]
        keep = pos > 0
        a = np.where(keep, a, 0.0)
        b = np.where(keep, b, 0.0)
    return a, b


def size(reps: int, n: int, n_boot: int, seed: int, design: str, mean_block: float = MEAN_BLOCK) -> dict:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    rejections = 0
    for i in range(reps):
        a, b = null_pair(rng, n, design)
        rejections += sharpe_difference(a, b, mean_block=mean_block, n_boot=n_boot, seed=i).p_value < 0.05
    rate = rejections / reps
    se = np.sqrt(0.05 * 0.95 / reps)
    return {
        "design": design,
        "reps": reps,
        "bars": n,
        "n_boot": n_boot,
        "mean_block": mean_block,
        "rejection_rate_5pct": rate,
        "standard_error": float(se),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def timing(stride: int, months: int | None, home: str | None) -> dict:
    from kronos_assets.cli.study import run_study, study_window
    from kronos_assets.configuration.settings import load_settings

    home = home or tempfile.mkdtemp(prefix="kronos-study-")
    window = study_window(months, stride)
    t0 = time.perf_counter()
    result = run_study(load_settings("demo", home=home), window, log=lambda m: print(m, flush=True))
    total = time.perf_counter() - t0
    s = result.seconds
    full = study_window(None, stride)
    scale = full.origins / window.origins
    days = (window.end_origin - window.first_origin).days
    # Candles are fetched once for the span (scaled by days); forecasts, scores and the page by origins.
    projected = s["candles"] * 365 / days + (s["forecast_and_score"] + s["study_page"]) * scale + s["dashboard"]
    return {
        "stride": stride,
        "months": months,
        "origins_per_symbol": window.origins,
        "measured_s": round(total, 1),
        "seconds": {k: round(v, 1) for k, v in s.items()},
        "load_average": round(os.getloadavg()[0], 1),
        "cpu_count": os.cpu_count(),
        "home": home,
        "extrapolated_whole_year_h": round(projected / 3600, 2),
        "how": (
            f"an extrapolation to the whole year ({full.origins} origins per symbol at stride {stride}): "
            f"forecast-and-score and page seconds x {scale:.1f} (measured {window.origins} origins), "
            "candles by days"
        ),
        "headline": result.record["headline"],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("size")
    s.add_argument("--reps", type=int, default=1000)
    s.add_argument("--bars", type=int, default=8760)
    s.add_argument("--n-boot", type=int, default=499)
    s.add_argument("--seed", type=int, default=1)
    t = sub.add_parser("time")
    t.add_argument("--stride", type=int, default=24)
    t.add_argument("--months", type=int, default=None)
    t.add_argument("--home")
    args = p.parse_args()
    if args.what == "size":
        out = {"designs": [size(args.reps, args.bars, args.n_boot, args.seed, d) for d in ("returns", "positions")]}
    else:
        out = timing(args.stride, args.months, args.home)
    (HERE / "results").mkdir(exist_ok=True)
    path = HERE / "results" / f"study_{args.what}.json"
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "headline"}, indent=1, default=str))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
