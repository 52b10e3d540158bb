"""Wall time and peak memory of the README main job (demo), of the README's first-verdict run
(``--backfill-bars 264``: enough scored forecasts for a verdict), and of a 7-day hourly backfill with the
baselines, and Dagster's own overhead per partition in that backfill.

    .venv/bin/python benchmarks/bench_main_job.py            # all scenarios, prints a table
    .venv/bin/python benchmarks/bench_main_job.py --quick    # skips the 168 one-partition runs
    .venv/bin/python benchmarks/bench_main_job.py --only main_job_first_verdict

Each scenario runs in its own process (fresh imports, its own peak RSS) against a fresh temporary home.
Results are also written to benchmarks/results/main_job.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKFILL_END = datetime(2025, 6, 30, 23, tzinfo=timezone.utc)  # newest bar of the 7-day backfill
BARS = 7 * 24
FIRST_VERDICT_BARS = 264  # 241 scored 24-bar forecasts: 10 independent horizons, the verdicts' minimum


def _scenario(name: str) -> dict:
    """Runs in a child process."""
    import dagster as dg

    from kronos_assets.cli.main_job import RANGE_END, RANGE_START, run_main_job
    from kronos_assets.configuration.settings import load_settings
    from kronos_assets.defs.partitions import bar_key, day_key

    settings = load_settings("demo")
    t0 = time.perf_counter()
    if name in ("main_job", "main_job_first_verdict"):
        bars = FIRST_VERDICT_BARS if name == "main_job_first_verdict" else 48
        result = run_main_job(settings, backfill_bars=bars, log=lambda _: None)
        wall = time.perf_counter() - t0
        verdicts = {}
        for symbol in settings.symbols:
            latest = Path(result.dashboard).parent / "series" / symbol.replace("/", "-") / "1h" / "latest.json"
            v = json.loads(latest.read_text()).get("verdict") or {}
            verdicts[symbol] = {"n_independent": v.get("n_independent"), "sentence": v.get("sentence")}
        return {"backfill_bars": bars, "wall_s": wall, "verdicts": verdicts}

    from kronos_assets.defs.factory import build_definitions

    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    tf = settings.timeframe("1h")
    first = BACKFILL_END - (BARS - 1) * timedelta(hours=1)
    candles = defs.resolve_job_def("candles_1h")
    forecast = defs.resolve_job_def("forecast_1h")
    candles.execute_in_process(
        instance=instance,
        tags={
            RANGE_START: str(day_key("BTC/USDT", first - tf.history_bars * timedelta(hours=1))),
            RANGE_END: str(day_key("BTC/USDT", BACKFILL_END)),
        },
    )
    t_candles = time.perf_counter() - t0
    t1 = time.perf_counter()
    if name == "backfill_batched":
        # What the backfill policy does: all 168 bars in one run.
        result = forecast.execute_in_process(
            instance=instance,
            tags={RANGE_START: str(bar_key("BTC/USDT", first)), RANGE_END: str(bar_key("BTC/USDT", BACKFILL_END))},
        )
        runs = [result]
    else:
        # One run per partition: the cost a backfill pays without a backfill policy.
        runs = [
            forecast.execute_in_process(
                instance=instance, partition_key=str(bar_key("BTC/USDT", first + i * timedelta(hours=1)))
            )
            for i in range(BARS)
        ]
    t_forecast = time.perf_counter() - t1
    step_s = 0.0
    for r in runs:
        starts = {}
        for entry in instance.all_logs(r.run_id):
            e = entry.dagster_event
            if e is None:
                continue
            if e.event_type_value == "STEP_START":
                starts[e.step_key] = entry.timestamp
            elif e.event_type_value == "STEP_SUCCESS":
                step_s += entry.timestamp - starts[e.step_key]
    return {"candles_wall_s": t_candles, "forecast_wall_s": t_forecast, "step_compute_s": step_s, "runs": len(runs)}


def _child(name: str) -> dict:
    home = tempfile.mkdtemp(prefix="kronos-bench-")
    env = os.environ | {"KRONOS_HOME": home, "KRONOS_PROFILE": "demo"}
    env.pop("DAGSTER_HOME", None)
    out = subprocess.run(
        [sys.executable, __file__, "--child", name], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="run one scenario")
    args = parser.parse_args()
    if args.child:
        res = _scenario(args.child)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return
    names = ["main_job", "main_job_first_verdict", "backfill_batched"] + (
        [] if args.quick else ["backfill_one_run_per_partition"]
    )
    results = {n: _child(n) for n in ([args.only] if args.only else names)}
    if "backfill_batched" in results:
        b = results["backfill_batched"]
        b["dagster_overhead_s_per_partition"] = (b["forecast_wall_s"] - b["step_compute_s"]) / BARS
    if "backfill_one_run_per_partition" in results:
        u = results["backfill_one_run_per_partition"]
        u["dagster_overhead_s_per_partition"] = (u["forecast_wall_s"] - u["step_compute_s"]) / BARS
        u["extra_s_per_partition_vs_batched"] = (u["forecast_wall_s"] - b["forecast_wall_s"]) / BARS
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    for n, r in results.items():
        print(n, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / ("main_job.json" if not args.only else f"main_job_{args.only}.json")).write_text(
        json.dumps(results, indent=1)
    )


if __name__ == "__main__":
    main()
