"""Benchmark Kronos training: time and peak memory, and held-out scores on real candles.

    python benchmarks/bench_training.py [--case demo|real|all] [--real-steps T P] [--origins N] [--threads N]

Cases (each runs in its own process, so peak RSS is that case's alone):
  demo  the `demo` run of configs/training.yaml (synthetic market, BTC/USDT + ETH/USDT 1h) trained exactly as
        `kronos-train demo` does, written to benchmarks/results/demo_check/ (not over the shipped checkpoint), and
        compared bitwise with kronos_assets/checkpoints/demo.
  real  the same small architecture and steps trained from scratch on the real Binance 1h candles of
  ../shared/data/candles
        (BTCUSDT and ETHUSDT, read in place, never copied) from 2021-01-01 up to 2024-12-31, and scored on 2025
        (2025-01-01 .. the end of the files) against random weights, the shipped demo checkpoint (trained on
        synthetic data only) and the baselines. Checkpoint: benchmarks/results/real_1h/ (git-ignored).
Results: a table on stdout and benchmarks/results/bench_training.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
RESULTS = ROOT / "results"
SHARED = Path(os.environ.get("KRONOS_SHARED_DIR", REPO.parent / "shared")) / "data" / "candles"
REAL_FILES = {
    "BTC/USDT": "binance_BTCUSDT_1h_20200920_20250919.csv.gz",
    "ETH/USDT": "binance_ETHUSDT_1h_20200920_20250919.csv.gz",
}


def _utc(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=timezone.utc)


def _outcome_dict(o: Any) -> dict[str, Any]:
    res = o.result
    return {
        "run": o.run.name,
        "seconds": o.seconds,
        "peak_rss_mb": round(o.peak_rss_mb, 1),
        "threads": o.threads,
        "device": o.device,
        "steps": {"tokenizer": o.run.tokenizer.steps, "predictor": o.run.predictor.steps},
        "batch": {"tokenizer": o.run.tokenizer.batch_size, "predictor": o.run.predictor.batch_size},
        "window": o.run.data.lookback + o.run.data.horizon,
        "train_windows": o.data["train_windows"],
        "final": {s: res.final(s) for s in ("tokenizer", "predictor")},
        "checkpoint_sha256": {p: i.sha256["model.safetensors"] for p, i in o.infos.items()},
        "checkpoint_bytes": sum(i.size_bytes for i in o.infos.values()),
        "heldout": o.heldout.to_dict() if o.heldout else None,
        "heldout_markdown": o.heldout.markdown() if o.heldout else None,
        "output": str(o.output),
    }


def case_demo(args: argparse.Namespace) -> dict[str, Any]:
    from kronos_assets.training.config import load_training_config
    from kronos_assets.training.run import train_run

    run = load_training_config(REPO / "configs" / "training.yaml")["demo"]
    if args.threads:
        run = replace(run, threads=args.threads)
    out = RESULTS / "demo_check"
    o = train_run(run, output=out, state_dir=RESULTS / "state_demo", command="benchmarks/bench_training.py --case demo")
    d = _outcome_dict(o)
    shipped = REPO / "kronos_assets" / "checkpoints" / "demo"
    from kronos_assets.kronos.hub import sha256_file

    d["matches_shipped_checkpoint"] = {
        p: (shipped / p / "model.safetensors").is_file()
        and sha256_file(shipped / p / "model.safetensors") == sha256_file(out / p / "model.safetensors")
        for p in ("model", "tokenizer")
    }
    return d


def case_real(args: argparse.Namespace) -> dict[str, Any]:
    from kronos_assets.forecasting.kronos_forecaster import KronosForecaster
    from kronos_assets.training.config import load_training_config
    from kronos_assets.training.data import frames_from_csv
    from kronos_assets.training.evaluate import baselines, evaluate_forecasters
    from kronos_assets.training.run import train_run

    missing = [f for f in REAL_FILES.values() if not (SHARED / f).is_file()]
    if missing:
        return {"skipped": f"real candles absent from {SHARED}: {missing}"}
    demo = load_training_config(REPO / "configs" / "training.yaml")["demo"]
    tok_steps, pred_steps = args.real_steps or (demo.tokenizer.steps, demo.predictor.steps)
    data = replace(
        demo.data,
        source="csv",
        files={s: str(SHARED / f) for s, f in REAL_FILES.items()},
        train_start=_utc(2021, 1, 1),
        train_end=_utc(2025, 1, 1),
        heldout_start=_utc(2025, 1, 1),
        heldout_end=_utc(2025, 9, 20),
    )
    run = replace(
        demo,
        name="real-1h",
        data=data,
        output=None,
        threads=args.threads or demo.threads,
        tokenizer=replace(demo.tokenizer, steps=tok_steps),
        predictor=replace(demo.predictor, steps=pred_steps),
        evaluation=replace(demo.evaluation, origins_per_symbol=args.origins),
        description="Small Kronos trained from scratch on Binance BTCUSDT/ETHUSDT 1h, 2021-2024 (benchmark).",
    )
    frames = frames_from_csv({s: SHARED / f for s, f in REAL_FILES.items()}, data.train_start, data.heldout_end)
    out = RESULTS / "real_1h"
    o = train_run(
        run,
        frames=frames,
        output=out,
        state_dir=RESULTS / "state_real",
        evaluate=True,
        command=f"python benchmarks/bench_training.py --case real --real-steps {tok_steps} {pred_steps}",
    )
    d = _outcome_dict(o)
    # The same origins for the shipped demo checkpoint (synthetic-trained) for context.
    ev = run.evaluation
    shipped = REPO / "kronos_assets" / "checkpoints" / "demo"
    fcs: dict[str, Any] = {}
    if (shipped / "model" / "model.safetensors").is_file():
        fcs["demo (synthetic-trained)"] = KronosForecaster(
            shipped / "model", shipped / "tokenizer", device="cpu", max_context=ev.max_context
        )
        t0 = time.perf_counter()
        extra = evaluate_forecasters(
            fcs | baselines(),
            frames,
            data.timeframe,
            data.heldout_start,
            data.heldout_end,
            history_bars=ev.history_bars,
            origins_per_symbol=ev.origins_per_symbol,
            sampling=ev.sampling,
        )
        d["demo_checkpoint_on_real"] = {
            "scores": extra.scores,
            "markdown": extra.markdown(),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    return d


CASES = {"demo": case_demo, "real": case_real}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=[*CASES, "all"], default="all")
    p.add_argument(
        "--real-steps",
        type=int,
        nargs=2,
        metavar=("TOKENIZER", "PREDICTOR"),
        help="steps of the real-data run (default: the demo run's)",
    )
    p.add_argument("--origins", type=int, default=50, help="held-out origins per symbol for the real case")
    p.add_argument("--threads", type=int, help="torch threads (default: the demo run's)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.child:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        t0 = time.perf_counter()
        d = CASES[args.case](args)
        d["wall_s"] = round(time.perf_counter() - t0, 1)
        (RESULTS / f"bench_training_{args.case}.json").write_text(json.dumps(d, indent=1, default=str))
        return 0
    cases = list(CASES) if args.case == "all" else [args.case]
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "cases": {},
    }
    for case in cases:
        cmd = [sys.executable, __file__, "--case", case, "--child", "--origins", str(args.origins)]
        cmd += ["--real-steps", *map(str, args.real_steps)] if args.real_steps else []
        cmd += ["--threads", str(args.threads)] if args.threads else []
        print(f"== {case}: {' '.join(cmd[1:])}", flush=True)
        subprocess.run(cmd, check=True)
        report["cases"][case] = json.loads((RESULTS / f"bench_training_{case}.json").read_text())
    (RESULTS / "bench_training.json").write_text(json.dumps(report, indent=1, default=str))
    for case, d in report["cases"].items():
        if "skipped" in d:
            print(f"\n{case}: skipped ({d['skipped']})")
            continue
        s = d["seconds"]
        print(
            f"\n## {case}: {d['steps']['tokenizer']} tokenizer + {d['steps']['predictor']} predictor steps, "
            f"batch {d['batch']['predictor']} x {d['window']} bars, {d['threads']} thread(s) on {d['device']}"
        )
        print(
            f"training {s.get('train_total', 0):.0f} s, data {s.get('data', 0):.0f} s, held-out evaluation "
            f"{s.get('evaluate', 0):.0f} s, peak RSS {d['peak_rss_mb']:.0f} MB, checkpoint "
            f"{d['checkpoint_bytes'] / 2**20:.2f} MB"
        )
        for stage in ("tokenizer", "predictor"):
            f = d["final"][stage]
            if f:
                print(f"final {stage} loss {f['loss']:.4f} (held-out {f['val_loss']})")
        if "matches_shipped_checkpoint" in d:
            print(f"bitwise equal to the shipped checkpoint: {d['matches_shipped_checkpoint']}")
        if d.get("heldout_markdown"):
            print(d["heldout_markdown"])
        if d.get("demo_checkpoint_on_real"):
            print("\nshipped demo checkpoint on the same real origins:")
            print(d["demo_checkpoint_on_real"]["markdown"])
    print(f"\nwritten: {RESULTS / 'bench_training.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
