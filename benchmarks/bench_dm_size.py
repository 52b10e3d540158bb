"""Size and power of the Diebold-Mariano test the track record publishes, on overlapping 24-step forecasts.

    .venv/bin/python benchmarks/bench_dm_size.py [--reps 2000]

Loss differentials of two forecasters at n origins one bar apart, horizon h = 24: MA(23) with Gaussian or t3
shocks, and differences of absolute 24-step errors of t3 returns. Size: rejection rate at 5 % when both are
equally good; power: when the first is worse by half (and by one) standard deviation of d. Next to it, the
textbook test it replaces (Newey-West with h-1 lags, Harvey-Leybourne-Newbold correction, t with n-1 degrees of
freedom), which the track record used to apply from 30 pairs. Writes benchmarks/results/dm_size.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

from kronos_assets.metrics import TooFewHorizons, diebold_mariano

H = 24
SIZES = (30, 72, 240, 480, 960, 1920)


def textbook_dm_p(d: np.ndarray, h: int) -> float:
    """The replaced test: NW (rectangular, h-1 lags) + HLN + t(n-1)."""
    n = d.size
    e = d - d.mean()
    gamma = [float(np.dot(e[k:], e[: n - k]) / n) for k in range(min(h, n))]
    v = gamma[0] + 2 * sum(gamma[1:])
    v = v if v > 0 else gamma[0]
    hln = (n + 1 - 2 * h + h * (h - 1) / n) / n
    if hln <= 0:
        return float("nan")
    stat = d.mean() / np.sqrt(v / n) * np.sqrt(hln)
    return float(2 * stats.t.sf(abs(stat), df=n - 1))


def differentials(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "abs_t3":
        a, b = (np.abs(np.convolve(rng.standard_t(3, n + H - 1), np.ones(H), "valid")) for _ in range(2))
        return a - b
    shocks = rng.standard_normal(n + H - 1) if kind == "gauss" else rng.standard_t(3, n + H - 1)
    return np.convolve(shocks, np.ones(H), "valid")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    rows = []
    t0 = time.perf_counter()
    for kind in ("gauss", "t3", "abs_t3"):
        for n in SIZES:
            ds = [differentials(kind, n, rng) for _ in range(args.reps)]
            sd = float(np.std(np.concatenate(ds)))
            row = {"kind": kind, "n": n, "independent_horizons": n // H,
                   "textbook_size": float(np.nanmean([textbook_dm_p(d, H) < 0.05 for d in ds]))}
            try:
                for label, shift in (("size", 0.0), ("power_0.5sd", 0.5), ("power_1sd", 1.0)):
                    row[label] = float(np.mean([diebold_mariano(d + shift * sd, np.zeros(n), H).p_value < 0.05
                                                for d in ds]))
            except TooFewHorizons:
                row |= {"size": None, "power_0.5sd": None, "power_1sd": None, "note": "too few independent horizons"}
            rows.append(row)
    print(f"{args.reps} replications per cell, h = {H}, {time.perf_counter() - t0:.1f} s")
    print("| losses | n | indep. horizons | textbook size | size | power 0.5 sd | power 1 sd |")
    print("|---|---|---|---|---|---|---|")
    fmt = lambda v: "no verdict" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    for r in rows:
        print(f"| {r['kind']} | {r['n']} | {r['independent_horizons']} | {fmt(r['textbook_size'])} | {fmt(r['size'])} "
              f"| {fmt(r['power_0.5sd'])} | {fmt(r['power_1sd'])} |")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "dm_size.json").write_text(json.dumps({"reps": args.reps, "horizon": H, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
