"""Benchmark Kronos generation on CPU: fast (KV-cached) vs reference (full recompute) mode, and the pipeline.

    python benchmarks/bench_kronos.py [--repeats 3] [--skip-small-reference] [--threads 2]

Random weights (speed does not depend on their values), real BTCUSDT 1h candles from ../shared/data/candles when
present (synthetic bars otherwise). Prints a table and writes benchmarks/results/bench_kronos[_<time>].json.
Targets (issue 14, 2 threads): A fast <= 0.25 s; B fast "exact" <= 2.0 s; D pipeline/direct <= 1.2.

Cases (context policy "exact", the default, unless named):
  A. Kronos-mini + Tokenizer-2k, 480 history bars, horizon 24, 30 paths, max_context 512: fast vs reference,
     median wall time over repeats, peak RSS growth, and whether both modes drew the same tokens.
  B. Kronos-small + Tokenizer-base, 400 history bars, horizon 120, 1 path, max_context 512 (the window slides
     for the last 8 steps): fast mode with the "exact" and the "trim" context policy (+ one reference run).
  C. Kronos-mini, 64 requests (rolling origins one bar apart) of 480 bars, horizon 24, 30 paths: seconds per
     request one at a time (``sample``) vs batched (``sample_many``: groups of batch_size on all usable CPUs as
     workers), in the same run; whether a request draws the same tokens alone as in the batch, and its paths'
     largest relative difference (float rounding: the batch size changes the GEMM shapes).
  D. A lone request through the forecasting pipeline (KronosForecaster.forecast_batch, as the hourly live run
     and the CLI) against the direct call (``KronosPredictor.sample``) on the same prepared input, interleaved;
     the ratio of their medians and whether the paths are bitwise equal.
Achieved GFLOP/s (FLOPs counted by torch's FlopCounterMode, causal attention counted at half) is compared with a
plain float32 torch.mm on the same machine. The machine may be shared: wall and process-CPU times and the load
average are recorded, and every target is shown next to the reference mode timed in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
import torch
from torch.utils import flop_counter

import kronos_assets  # noqa: F401  (first: it bounds OpenMP's spinning before torch loads OpenMP)
from kronos_assets.forecasting.interface import ForecastRequest, Sampling
from kronos_assets.forecasting.kronos_forecaster import KronosForecaster
from kronos_assets.kronos.config import KRONOS_MINI, KRONOS_SMALL, TOKENIZER_2K, TOKENIZER_BASE
from kronos_assets.kronos.generate import STEP_THREADS
from kronos_assets.kronos.inputs import PreparedSeries
from kronos_assets.kronos.model import Kronos
from kronos_assets.kronos.predictor import KronosPredictor
from kronos_assets.kronos.sampling import SamplingParams
from kronos_assets.kronos.tokenizer import KronosTokenizer

ROOT = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("KRONOS_SHARED_DIR", ROOT.parent.parent / "shared")) / "data" / "candles"
CANDLES = "binance_BTCUSDT_1h_20220101_20251202.csv.gz"
SAMPLING = SamplingParams(temperature=1.0, top_k=0, top_p=0.9)


# -- measurement helpers -------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident-set growth during a block, sampled every millisecond (Linux; 0 elsewhere)."""

    def __enter__(self) -> "PeakRSS":
        self.ok = os.path.exists("/proc/self/statm")
        self.base = self.peak = _rss_bytes() if self.ok else 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if self.ok:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.ok:
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def _sdpa_cpu_flops(
    q: Any,
    k: Any,
    v: Any,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    n = flop_counter.sdpa_flop_count(q, k, v)
    return n // 2 if is_causal else n  # a causal mask skips (about) half the scores


def count_flops(fn: Callable[[], Any]) -> tuple[int, Any]:
    aten = torch.ops.aten
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}
    with flop_counter.FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        out = fn()
    return int(counter.get_total_flops()), out


def matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


@dataclass
class Timing:
    times: list[float]
    cpu_times: list[float]  # process CPU seconds (all threads): less sensitive to other load than wall time
    peak_mib: float
    flops: int | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def as_dict(self) -> dict[str, Any]:
        gflops = self.flops / self.median / 1e9 if self.flops else None
        return {
            "wall_s": self.times,
            "median_s": self.median,
            "cpu_s": self.cpu_times,
            "median_cpu_s": statistics.median(self.cpu_times),
            "peak_rss_growth_mib": round(self.peak_mib, 1),
            "gflop": self.flops / 1e9 if self.flops else None,
            "gflop_per_s": gflops,
        }


def timed(fn: Callable[[], Any], repeats: int, flops: str = "separate") -> tuple[Timing, Any]:
    """Run fn ``repeats`` times. FLOPs: "separate" counts in an extra untimed run (right for many small ops,
    where the counter's per-op overhead would distort the timing); "inline" counts during the first timed run
    (for slow runs of few large ops, where that overhead is negligible); "none"."""
    times, cpu, peak, out, n_flops = [], [], 0.0, None, None
    for i in range(repeats):
        with PeakRSS() as mem:
            t, c = time.perf_counter(), time.process_time()
            if flops == "inline" and i == 0:
                n_flops, out = count_flops(fn)
            else:
                out = fn()
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        peak = max(peak, mem.growth_mib)
    if flops == "separate":
        n_flops = count_flops(fn)[0]
    return Timing(times, cpu, peak, n_flops), out


# -- inputs --------------------------------------------------------------------------------------------------
def candles(n: int) -> tuple[pl.DataFrame, str]:
    path = SHARED / CANDLES
    if path.is_file():
        df = pl.read_csv(path).tail(n)
        ts = pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").dt.cast_time_unit("us")
        return df.with_columns(ts.alias("ts")).drop("timestamp"), f"{CANDLES} (last {n} bars)"
    rng = np.random.default_rng(0)
    close = 30000 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return pl.DataFrame(
        {
            "ts": [start + timedelta(hours=i) for i in range(n)],
            "open": close,
            "high": close * 1.005,
            "low": close * 0.995,
            "close": close,
            "volume": rng.uniform(100, 200, n),
        }
    ), "synthetic GBM"


def predictor(model_cfg: Any, tok_cfg: Any, policy: str) -> KronosPredictor:
    torch.manual_seed(0)
    return KronosPredictor(
        Kronos(model_cfg), KronosTokenizer(tok_cfg), device="cpu", max_context=512, context_policy=policy
    )  # type: ignore[arg-type]


def series(pred: KronosPredictor, history: int, horizon: int) -> tuple[PreparedSeries, str]:
    df, source = candles(history)
    fut = [df["ts"][-1] + timedelta(hours=i + 1) for i in range(horizon)]
    return pred.prepare(df, fut), source


# -- cases ---------------------------------------------------------------------------------------------------
def case_mini(repeats: int, with_reference: bool) -> dict[str, Any]:
    pred = predictor(KRONOS_MINI, TOKENIZER_2K, "exact")
    s, source = series(pred, 480, 24)

    def run(mode: str) -> Any:
        return pred.sample(s, n_paths=30, seed=7, sampling=SAMPLING, mode=mode, keep_tokens=True)  # type: ignore

    run("fast")  # warm-up
    fast, f_out = timed(lambda: run("fast"), max(repeats, 5))
    if not with_reference:
        return {
            "case": "mini: 480 history, horizon 24, 30 paths, max_context 512",
            "data": source,
            "fast": fast.as_dict(),
        }
    ref, r_out = timed(lambda: run("reference"), repeats, flops="inline")
    fg, rg = f_out.generated, r_out.generated
    same = bool(torch.equal(fg.s1, rg.s1) and torch.equal(fg.s2, rg.s2))
    return {
        "case": "mini: 480 history, horizon 24, 30 paths, max_context 512",
        "data": source,
        "fast": fast.as_dict(),
        "reference": ref.as_dict(),
        "speedup_median": ref.median / fast.median,
        "speedup_median_cpu": statistics.median(ref.cpu_times) / statistics.median(fast.cpu_times),
        "tokens_identical": same,
        "max_rel_diff_paths": float((np.abs(f_out.paths - r_out.paths) / np.abs(r_out.paths).clip(1e-9)).max()),
    }


def case_small(repeats: int, with_reference: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"case": "small: 400 history, horizon 120, 1 path, max_context 512"}
    for policy in ("exact", "trim"):
        pred = predictor(KRONOS_SMALL, TOKENIZER_BASE, policy)
        s, out["data"] = series(pred, 400, 120)
        run = lambda: pred.sample(s, n_paths=1, seed=7, sampling=SAMPLING, mode="fast")  # noqa: E731
        run()
        out[f"fast_{policy}"] = timed(run, max(repeats, 5))[0].as_dict()
        if policy == "exact" and with_reference:
            ref = lambda: pred.sample(s, n_paths=1, seed=7, sampling=SAMPLING, mode="reference")  # noqa: E731
            out["reference_exact"] = timed(ref, 1, flops="inline")[0].as_dict()
            out["speedup_exact_vs_reference"] = out["reference_exact"]["median_s"] / out["fast_exact"]["median_s"]
    return out


def case_batched(n_requests: int, batch_size: int) -> dict[str, Any]:
    pred = predictor(KRONOS_MINI, TOKENIZER_2K, "exact")
    pred.batch_size = batch_size
    df, source = candles(480 + n_requests - 1)
    reqs = []
    for i in range(n_requests):
        hist = df.slice(i, 480)
        reqs.append(pred.prepare(hist, [hist["ts"][-1] + timedelta(hours=h + 1) for h in range(24)]))
    seeds = list(range(100, 100 + n_requests))

    def one_at_a_time() -> list[Any]:
        return [pred.sample(r, n_paths=30, seed=s, sampling=SAMPLING, keep_tokens=True) for r, s in zip(reqs, seeds)]

    def batched() -> list[Any]:
        return pred.sample_many(reqs, seeds, n_paths=30, sampling=SAMPLING, keep_tokens=True)

    pred.sample_many(reqs[:1], seeds[:1], n_paths=30, sampling=SAMPLING)  # warm-up
    single, single_out = timed(one_at_a_time, 1, flops="none")
    batch, out = timed(batched, 1, flops="none")
    diff = [
        int((a.generated.s1 != b.generated.s1).sum() + (a.generated.s2 != b.generated.s2).sum())
        for a, b in zip(out, single_out)
    ]
    rel = max(float((np.abs(a.paths - b.paths) / np.abs(b.paths).clip(1e-9)).max()) for a, b in zip(out, single_out))
    return {
        "case": f"mini: {n_requests} requests x 480 history, horizon 24, 30 paths, max_context 512, "
        f"batch_size {batch_size}, {pred.workers} workers",
        "data": source,
        "one_at_a_time": single.as_dict(),
        "s_per_request_one_at_a_time": single.median / n_requests,
        "batched": batch.as_dict(),
        "s_per_request_batched": batch.median / n_requests,
        "speedup_batched_vs_one_at_a_time": single.median / batch.median,
        "tokens_differing_alone_vs_batched": sum(diff),
        "tokens_total": 2 * n_requests * 30 * 24,
        "max_rel_diff_paths_alone_vs_batched": rel,
    }


def case_lone_request(repeats: int) -> dict[str, Any]:
    """The hourly live request through KronosForecaster against the direct call, interleaved."""
    pred = predictor(KRONOS_MINI, TOKENIZER_2K, "exact")
    df, source = candles(480)
    fut = [df["ts"][-1] + timedelta(hours=h + 1) for h in range(24)]
    req = ForecastRequest("BTC/USDT", "1h", fut[0], df, fut, seed=7)
    sampling = Sampling(n_paths=30, horizon=24, temperature=1.0, top_p=0.9, top_k=0)
    forecaster = KronosForecaster.from_predictor(pred, "kronos-mini")
    series = pred.prepare(df, fut)
    direct = lambda: pred.sample(series, n_paths=30, seed=7, sampling=SAMPLING).paths  # noqa: E731
    pipeline = lambda: forecaster.forecast_batch([req], sampling)[0]  # noqa: E731
    a, b = direct(), pipeline()  # warm-up, and the same paths?
    times: dict[str, list[float]] = {"direct": [], "pipeline": []}
    for _ in range(max(repeats, 7)):
        for name, fn in (("direct", direct), ("pipeline", pipeline)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "case": "mini: one request (480 history, horizon 24, 30 paths) through KronosForecaster vs sample()",
        "data": source,
        "wall_s": times,
        "median_s": med,
        "ratio_pipeline_to_direct": med["pipeline"] / med["direct"],
        "paths_bitwise_equal": bool(np.array_equal(a, b)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of the reference runs (fast: >= 5)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default %(default)s)")
    p.add_argument("--skip-small-reference", action="store_true", help="skip the slow Kronos-small reference run")
    p.add_argument("--fast-only", action="store_true", help="skip every reference run (e.g. to compare threads)")
    p.add_argument("--batched-requests", type=int, default=64, help="requests of case C (0 skips it)")
    p.add_argument("--batch-size", type=int, default=8, help="batch_size of case C")
    p.add_argument("--only-batched", action="store_true", help="run case C only")
    p.add_argument("--out", type=Path, default=ROOT / "results")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)  # no inter-op pool: the model runs one op at a time
    load_before = os.getloadavg()
    mm = matmul_gflops()
    if args.only_batched:
        batched = case_batched(args.batched_requests, args.batch_size)
        print(json.dumps(batched, indent=1))
        return 0
    mini = case_mini(args.repeats, not args.fast_only)
    small = case_small(args.repeats, not (args.skip_small_reference or args.fast_only))
    lone = case_lone_request(args.repeats)
    batched = case_batched(args.batched_requests, args.batch_size) if args.batched_requests else None
    mm_after = matmul_gflops()
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
            "step_threads": STEP_THREADS,
        },
        # 1-minute load averages: other processes on the machine inflate wall times (compare cpu_s).
        "load_average_before": load_before[0],
        "load_average_after": os.getloadavg()[0],
        "matmul_1024_gflop_per_s": mm,
        "matmul_1024_gflop_per_s_after": mm_after,
        "mini": mini,
        "small": small,
        "lone_request": lone,
        "batched": batched,
    }
    rows = [
        ("A mini fast", mini["fast"]),
        ("A mini reference", mini.get("reference")),
        ("B small fast exact", small["fast_exact"]),
        ("B small fast trim", small["fast_trim"]),
        ("B small reference exact", small.get("reference_exact")),
    ]
    print(
        f"{'run':27} {'median s':>9} {'cpu s':>7} {'runs (wall s)':>22} {'peak MiB':>9} {'GFLOP':>8} "
        f"{'GFLOP/s':>8} {'of mm':>6}"
    )
    for name, r in rows:
        if r is None:
            continue
        runs = ",".join(f"{t:.2f}" for t in r["wall_s"][:5])
        g, gs = r["gflop"], r["gflop_per_s"]
        print(
            f"{name:27} {r['median_s']:9.3f} {r['median_cpu_s']:7.2f} {runs:>22} {r['peak_rss_growth_mib']:9.1f} "
            f"{g if g is None else round(g, 2)!s:>8} {gs if gs is None else round(gs, 1)!s:>8} "
            f"{'' if gs is None else f'{gs / mm:.0%}':>6}"
        )
    print(
        f"torch.mm 1024x1024 float32: {mm:.1f} GFLOP/s before, {mm_after:.1f} after, on "
        f"{torch.get_num_threads()} threads; load average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')}, "
        f"cached steps on {STEP_THREADS} thread(s)"
    )
    if "speedup_median" in mini:
        print(
            f"A: fast {mini['fast']['median_s']:.3f} s (target <= 0.25) vs reference "
            f"{mini['reference']['median_s']:.2f} s in the same run: {mini['speedup_median']:.1f}x; identical "
            f"tokens: {mini['tokens_identical']}"
        )
    print(
        f"B: fast exact {small['fast_exact']['median_s']:.2f} s (target <= 2.0)"
        + (f" vs reference {small['reference_exact']['median_s']:.1f} s" if "reference_exact" in small else "")
    )
    print(
        f"D: lone request through KronosForecaster {lone['median_s']['pipeline']:.3f} s vs direct "
        f"{lone['median_s']['direct']:.3f} s: {lone['ratio_pipeline_to_direct']:.2f}x (target <= 1.2); "
        f"paths bitwise equal: {lone['paths_bitwise_equal']}"
    )
    if batched:
        print(
            f"C: {args.batched_requests} requests, s per request: one at a time "
            f"{batched['s_per_request_one_at_a_time']:.3f}, batched {batched['s_per_request_batched']:.3f}; "
            f"tokens differing alone vs batched: {batched['tokens_differing_alone_vs_batched']}/"
            f"{batched['tokens_total']}, paths max rel diff {batched['max_rel_diff_paths_alone_vs_batched']:.1e}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for name in ("bench_kronos.json", f"bench_kronos_{stamp}.json"):
        (args.out / name).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out / 'bench_kronos.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
