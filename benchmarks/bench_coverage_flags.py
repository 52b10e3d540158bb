"""False-flag rate and power of the scoreboard's "too narrow" / "too wide" flag on the 80 % band.

    .venv/bin/python benchmarks/bench_coverage_flags.py [--reps 400] [--n 240 480 720] [--seed 26]

A random walk with known volatility; a forecast of 24 bars made at every bar (consecutive forecasts overlap in
23 bars), its band the linear 10 % / 90 % sample quantiles of 30 paths drawn from the walk with its volatility
scaled by c. c = 1 is the correctly specified model (calibrated coverage 80 % x 29/31 = 74.8 % at every step);
other c are chosen (by Monte Carlo, once) so that the band covers 5, 10 or 15 points less or more at every
step. For n origins one bar apart (n / 24 independent horizons) it prints how often each rule flags:

* pooled: the published test (kronos_assets.metrics.coverage: hits at every step weighted 1/s^2, cosine
  long-run variance with 2 terms per horizon, Student t, 5 %);
* last step: the same test on the hits at the horizon's last step only;
* old rule: more than two binomial standard errors over n / 24 independent horizons, last step.

Issue 26 asks for false flags of 3-7 % and a 10-point shortfall flagged in at least 80 % of runs at n = 240.
Writes benchmarks/results/coverage_flags.json.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from kronos_assets.metrics.coverage import coverage_batch, path_hits

H, N_PATHS, LEVEL = 24, 30, 0.8
EXPECTED = LEVEL * (N_PATHS - 1) / (N_PATHS + 1)
SHIFTS = (0.0, -0.05, -0.10, -0.15, 0.05, 0.10, 0.15)  # coverage minus the calibrated coverage, at every step
CHUNK_CELLS = 6_000_000  # sample-path values per chunk (~24 MB in float32)


def band(paths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy's linear 10 % and 90 % quantiles over axis -2 (the paths), as the forecasts store them."""
    s = np.sort(paths, axis=-2)
    lo_pos, hi_pos = (1 - LEVEL) / 2 * (N_PATHS - 1), (1 + LEVEL) / 2 * (N_PATHS - 1)
    i, j = int(lo_pos), int(hi_pos)
    lo = s[..., i, :] * (1 - (lo_pos - i)) + s[..., i + 1, :] * (lo_pos - i)
    hi = s[..., j, :] * (1 - (hi_pos - j)) + s[..., j + 1, :] * (hi_pos - j)
    return lo, hi


def simulate_hits(rng: np.random.Generator, reps: int, n: int, scale: float) -> np.ndarray:
    """(reps, n, H) hits of the 80 % band of 30 paths with volatility ``scale`` (the walk's is 1)."""
    out = []
    per_chunk = max(1, CHUNK_CELLS // (n * N_PATHS * H))
    for start in range(0, reps, per_chunk):
        r = min(per_chunk, reps - start)
        walk = np.cumsum(rng.standard_normal((r, n + H)), axis=1)
        win = sliding_window_view(walk, H + 1, axis=1)[:, :n, :]
        outcome = win[..., 1:] - win[..., :1]
        paths = scale * np.cumsum(rng.standard_normal((r, n, N_PATHS, H), dtype=np.float32), axis=-1)
        lo, hi = band(paths)
        out.append((outcome >= lo) & (outcome <= hi))
    return np.concatenate(out)


def scale_for(shift: float, rng: np.random.Generator, draws: int = 400_000) -> float:
    """The volatility scale whose band covers EXPECTED + shift of a one-bar outcome (so of every step)."""
    if shift == 0.0:
        return 1.0
    z = rng.standard_normal((draws, N_PATHS + 1), dtype=np.float32)
    lo, hi = band(z[:, :N_PATHS, None])
    lo, hi, y = lo[:, 0], hi[:, 0], z[:, N_PATHS]
    a, b = 0.2, 4.0
    for _ in range(40):
        c = (a + b) / 2
        a, b = (c, b) if np.mean((y >= c * lo) & (y <= c * hi)) < EXPECTED + shift else (a, c)
    return (a + b) / 2


def rates(hits: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per rule: (share flagged too narrow, share flagged too wide)."""
    n = hits.shape[1]
    out = {}
    for name, x in (("pooled", path_hits(hits)), ("last_step", hits[..., -1].astype(np.float64))):
        stat, p = coverage_batch(x, EXPECTED, H)
        out[name] = (float(np.mean((p < 0.05) & (stat < 0))), float(np.mean((p < 0.05) & (stat > 0))))
    last = hits[..., -1].mean(axis=1)
    se = math.sqrt(EXPECTED * (1 - EXPECTED) / (n // H))
    out["old_rule"] = (float(np.mean(last < EXPECTED - 2 * se)), float(np.mean(last > EXPECTED + 2 * se)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400, help="simulated records per n and shift")
    ap.add_argument("--n", type=int, nargs="+", default=[240, 480, 720], help="origins one bar apart")
    ap.add_argument("--seed", type=int, default=26)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    scales = {s: scale_for(s, rng) for s in SHIFTS}
    t0 = time.time()
    results = []
    print(
        f"80 % band of {N_PATHS} paths, calibrated coverage {EXPECTED:.1%}, horizon {H}, {args.reps} runs each; "
        "cells: flagged too narrow / too wide"
    )
    print(
        f"{'n':>4} {'indep':>5} {'shift':>6} {'scale':>6} | {'pooled (published)':>19} | {'last step':>13} | "
        f"{'old rule':>13}"
    )
    for n in args.n:
        for shift in SHIFTS:
            r = rates(simulate_hits(rng, args.reps, n, scales[shift]))
            results.append(
                {
                    "n": n,
                    "independent": n // H,
                    "shift": shift,
                    "scale": scales[shift],
                    **{f"{k}_narrow": v[0] for k, v in r.items()},
                    **{f"{k}_wide": v[1] for k, v in r.items()},
                }
            )
            cells = " | ".join(f"{100 * a:5.1f} / {100 * b:5.1f}" for a, b in r.values())
            print(
                f"{n:4d} {n // H:5d} {100 * shift:+5.0f}p {scales[shift]:6.3f} | {cells.split(' | ')[0]:>19} | "
                f"{' | '.join(cells.split(' | ')[1:])}",
                flush=True,
            )
    print(
        "false flags (shift 0) are the sum of both cells; power is the cell on the shift's side. "
        f"{time.time() - t0:.0f} s"
    )
    out = Path(__file__).parent / "results" / "coverage_flags.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "reps": args.reps,
                "seed": args.seed,
                "horizon": H,
                "n_paths": N_PATHS,
                "expected": EXPECTED,
                "rows": results,
            },
            indent=1,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
