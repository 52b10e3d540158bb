"""Held-out check of a Kronos checkpoint on real candles (issue 24 item 2): does the shipped checkpoint forecast
sanely on BTC/USDT and ETH/USDT 1h from 2024-07-01 on, bars it never saw in training?

    .venv/bin/python benchmarks/bench_checkpoint_real.py                       # the shipped real-1h checkpoint
    .venv/bin/python benchmarks/bench_checkpoint_real.py --origins 100 --no-garch   # a quick look (~2 min)
    .venv/bin/python benchmarks/bench_checkpoint_real.py --checkpoint kronos_assets/checkpoints/demo

Origins are spread evenly over [--start, --end) of each symbol (480 bars of history, 24 bars realised after
each, no gap); every forecaster gets the same requests and 30 paths. Scored with kronos_assets.metrics on the
closes. The targets (checked here, printed and written to benchmarks/results/bench_checkpoint_real.json):

* mean signed first-step move of the Kronos median, median(paths[:, 0]) / last close - 1, within ±0.1 %;
* coverage of the central 80 % band at the last step within 72-85 % (from 30 paths a calibrated model's
  empirical 10-90 % band covers about 74.8 %);
* no PIT bin (10 bins, every step of every forecast) above 2x its uniform share;
* CRPS (log returns, mean over origins and steps) at most 5 % worse than the random walk with volatility;
  Diebold-Mariano (kronos_assets.metrics.diebold_mariano on the mean CRPS per origin time, averaged over the two
  symbols, in time order; its horizon is the number of origins one 24-bar horizon spans) against it and
  against GARCH(1,1)-t (fitted on the same 480 bars), reported either way.

Needs the real candles in $KRONOS_SHARED_DIR/data/candles (default ../shared beside the repository). Exits 1 when a
target is missed (the JSON still says which), 2 when the data are absent.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kronos_assets.forecasting.interface import CLOSE, Sampling  # noqa: E402
from kronos_assets.metrics import diebold_mariano, pit_histogram, score_paths  # noqa: E402
from kronos_assets.training.data import frames_from_csv  # noqa: E402
from kronos_assets.training.evaluate import heldout_requests  # noqa: E402

SHARED = Path(os.environ.get("KRONOS_SHARED_DIR", REPO.parent / "shared")) / "data" / "candles"
FILES = {
    "BTC/USDT": "binance_BTCUSDT_1h_20210601_20260620.csv.gz",
    "ETH/USDT": "binance_ETHUSDT_1h_20240101_20260331.csv.gz",
}
TARGETS = {
    "first_step_move_abs_max": 0.001,
    "coverage_80_last": (0.72, 0.85),
    "pit_bin_max_share": 2.0,
    "crps_ratio_max": 1.05,
}


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def forecasters(checkpoint: Path, garch: bool) -> dict[str, Any]:
    from kronos_assets.forecasting.baselines import RandomWalk, RandomWalkVol
    from kronos_assets.forecasting.kinds import ModelSpec, build
    from kronos_assets.forecasting.kinds.garch import GarchSettings
    from kronos_assets.forecasting.kronos_forecaster import KronosForecaster

    out: dict[str, Any] = {
        "kronos": KronosForecaster(
            checkpoint / "model", checkpoint / "tokenizer", device="cpu", max_context=512, name=checkpoint.name
        ),
        "random_walk_vol": RandomWalkVol(),
        "random_walk": RandomWalk(),
    }
    if garch:
        out["garch"] = build(ModelSpec("garch", "garch", GarchSettings()))
    return out


def run(
    checkpoint: Path,
    origins: int,
    n_paths: int,
    start: datetime,
    end: datetime,
    garch: bool,
    seed: int,
    temperature: float = 1.0,
    top_p: float = 0.9,
) -> dict[str, Any]:
    frames = frames_from_csv({s: SHARED / f for s, f in FILES.items()}, None, end)
    sampling = Sampling(n_paths=n_paths, horizon=24, temperature=temperature, top_p=top_p, top_k=0, seed=seed)
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint.resolve().relative_to(REPO))
        if checkpoint.resolve().is_relative_to(REPO)
        else str(checkpoint),
        "files": FILES,
        "range": [start.isoformat(), end.isoformat()],
        "origins_per_symbol": origins,
        "history_bars": 480,
        "horizon": 24,
        "sampling": sampling.as_dict(),
        "models": {},
    }
    per_origin: dict[str, np.ndarray] = {}
    for label, fc in forecasters(checkpoint, garch).items():
        reqs, realised = heldout_requests(
            frames,
            "1h",
            start,
            end,
            history_bars=480,
            horizon=24,
            origins_per_symbol=origins,
            seed=seed,
            model_name=label,
        )
        t0, c0 = time.perf_counter(), time.process_time()
        paths = fc.forecast_batch(reqs, sampling)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows, crps_each, first_move = [], [], []
        for req, p in zip(reqs, paths):
            close = np.asarray(p, dtype=np.float64)[..., CLOSE]
            last = float(req.history["close"][-1])
            r = score_paths(close, realised[f"{req.symbol}|{req.origin.isoformat()}"], last)
            rows.extend(r)
            crps_each.append(float(np.mean([x["crps"] for x in r])))
            first_move.append(float(np.median(close[:, 0]) / last - 1.0))
        last_rows = [x for x in rows if x["step"] == 24]
        pit = pit_histogram([x["pit"] for x in rows])
        m = {
            "n_forecasts": len(reqs),
            "crps": float(np.mean([x["crps"] for x in rows])),
            "first_step_move_mean": float(np.mean(first_move)),
            "first_step_move_abs_mean": float(np.mean(np.abs(first_move))),
            "coverage_80_last": float(np.mean([x["covered_80"] for x in last_rows])),
            "coverage_80_all": float(np.mean([x["covered_80"] for x in rows])),
            "coverage_50_last": float(np.mean([x["covered_50"] for x in last_rows])),
            "width_80_last": float(np.mean([x["width_80"] for x in last_rows])),
            "pit_histogram": pit.tolist(),
            "pit_max_share": float(pit.max() / (pit.sum() / len(pit))),
            "pit_histogram_last": pit_histogram([x["pit"] for x in last_rows]).tolist(),
            "direction_hit": float(np.mean([x["direction_hit"] for x in rows])),
            "p_up_mean_last": float(np.mean([x["p_up"] for x in last_rows])),
            "brier_up_last": float(np.mean([x["brier_up"] for x in last_rows])),
            "mae_rel": float(np.mean([x["ape"] for x in rows]) / 100),
            "seconds_wall": round(wall, 1),
            "seconds_cpu": round(cpu, 1),
        }
        result["models"][label] = m
        # one loss per origin time: the symbols' origins are spread alike, so the i-th of each fall together
        by_symbol = [np.asarray([c for c, r in zip(crps_each, reqs) if r.symbol == s]) for s in FILES]
        same = len({len(b) for b in by_symbol}) == 1
        per_origin[label] = np.mean(by_symbol, axis=0) if same else np.asarray(crps_each)
        m["per_origin_crps"] = per_origin[label].round(7).tolist()
        result.setdefault("origins", {s: [r.origin.isoformat() for r in reqs if r.symbol == s] for s in FILES})
        print(
            f"{label}: CRPS {m['crps']:.5f}, first step {m['first_step_move_mean']:+.4%}, cover80 last "
            f"{m['coverage_80_last']:.3f}, PIT max {m['pit_max_share']:.2f}x, {wall:.0f} s",
            flush=True,
        )
    k = result["models"]["kronos"]
    ref = result["models"]["random_walk_vol"]
    k["crps_ratio_vs_rw_vol"] = k["crps"] / ref["crps"]
    # origins are `spacing` bars apart: their 24-bar horizons overlap over ceil(24 / spacing) origins
    first = [datetime.fromisoformat(t) for t in result["origins"]["BTC/USDT"][:2]]
    spacing = max(1, int((first[1] - first[0]).total_seconds() // 3600))
    h = max(1, math.ceil(24 / spacing))
    result["dm"] = {}
    for other in [o for o in ("random_walk_vol", "garch", "random_walk") if o in per_origin]:
        try:
            dm = diebold_mariano(per_origin["kronos"], per_origin[other], horizon=h)
            result["dm"][other] = {
                "statistic": dm.statistic,
                "p_value": dm.p_value,
                "df": dm.df,
                "n": dm.n,
                "verdict": _verdict(dm.statistic, dm.p_value, other),
            }
        except Exception as exc:  # too few independent horizons: say so rather than give a p-value
            result["dm"][other] = {"verdict": f"no test: {exc}"}
    result["targets"] = {
        "first_step_move": {
            "value": k["first_step_move_mean"],
            "limit": "within ±0.1 %",
            "met": abs(k["first_step_move_mean"]) <= TARGETS["first_step_move_abs_max"],
        },
        "coverage_80_last": {
            "value": k["coverage_80_last"],
            "limit": "72-85 %",
            "met": TARGETS["coverage_80_last"][0] <= k["coverage_80_last"] <= TARGETS["coverage_80_last"][1],
        },
        "pit": {
            "value": k["pit_max_share"],
            "limit": "no bin above 2x uniform",
            "met": k["pit_max_share"] <= TARGETS["pit_bin_max_share"],
        },
        "crps_vs_rw_vol": {
            "value": k["crps_ratio_vs_rw_vol"],
            "limit": "at most 5 % worse",
            "met": k["crps_ratio_vs_rw_vol"] <= TARGETS["crps_ratio_max"],
        },
    }
    return result


def _verdict(stat: float, p: float, other: str) -> str:
    if p >= 0.05:
        return f"no significant difference from {other} (p = {p:.3f})"
    return f"{'worse' if stat > 0 else 'better'} than {other} (p = {p:.3g})"


CARD_BEGIN = "<!-- bench_checkpoint_real: begin (written by benchmarks/bench_checkpoint_real.py --write-card) -->"
CARD_END = "<!-- bench_checkpoint_real: end -->"


def card_section(res: dict[str, Any], command: str) -> str:
    """The model card's real-data section: the figures of this benchmark run, targets and DM verdicts."""
    models = res["models"]
    ref = models["random_walk_vol"]["crps"]
    lines = [
        CARD_BEGIN,
        "## Held-out real data (benchmark)",
        "",
        f"BTC/USDT and ETH/USDT 1h, {res['origins_per_symbol']} origins per symbol spread evenly over "
        f"[{res['range'][0][:10]}, {res['range'][1][:10]}) (bars the training never saw), {res['history_bars']} bars "
        f"of history, horizon {res['horizon']}, {res['sampling']['n_paths']} paths, "
        f"T={res['sampling']['temperature']:g}, "
        f"top_p={res['sampling']['top_p']:g}. Scored with `kronos_assets.metrics` on the closes (CRPS of log "
        "returns, mean over origins and steps; PIT in 10 bins over every step; first-step move = median of the "
        "paths' first close / last close − 1, mean over origins). GARCH(1,1)-t is fitted on the same 480 bars.",
        "",
        "| model | CRPS | vs rw_vol | first-step move | cover 80 % (last step) | cover 50 % (last step) "
        "| PIT max bin / uniform | direction hit | mean P(up) (last step) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in models.items():
        lines.append(
            f"| {name} | {m['crps']:.5f} | {m['crps'] / ref - 1:+.1%} | {m['first_step_move_mean']:+.3%} | "
            f"{m['coverage_80_last']:.1%} | {m['coverage_50_last']:.1%} | {m['pit_max_share']:.2f}× | "
            f"{m['direction_hit']:.3f} | {m['p_up_mean_last']:.3f} |"
        )
    lines += ["", "Targets (issue 24):", ""]
    for name, t in res["targets"].items():
        lines.append(f"* {'met' if t['met'] else '**missed**'}: {name} = {t['value']:.4g} ({t['limit']})")
    lines += ["", "Diebold–Mariano (per-origin mean CRPS of the checkpoint against each baseline):", ""]
    for other, d in res["dm"].items():
        stat = f" (DM {d['statistic']:+.2f}, {d['df']} df)" if "statistic" in d else ""
        lines.append(f"* vs {other}: {d['verdict']}{stat}")
    k = models["kronos"]
    lines += [
        "",
        f"Kronos PIT histogram (10 bins, all steps): {k['pit_histogram']}; last step: {k['pit_histogram_last']}.",
        "",
        f"Rerun: `{command}`",
        CARD_END,
    ]
    return "\n".join(lines)


def write_card(card: Path, section: str) -> None:
    """Replace the benchmark's section of MODEL_CARD.md (or append it), written whole via a temp file."""
    text = card.read_text()
    if CARD_BEGIN in text and CARD_END in text:
        head, rest = text.split(CARD_BEGIN, 1)
        text = head + section + rest.split(CARD_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = card.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(card)


def _configured_top_p() -> float:
    return float(yaml.safe_load((REPO / "configs" / "models.yaml").read_text())["sampling"]["top_p"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="kronos_assets/checkpoints/real-1h")
    ap.add_argument("--origins", type=int, default=500, help="origins per symbol (default 500)")
    ap.add_argument("--paths", type=int, default=30)
    ap.add_argument("--start", default="2024-07-01")
    ap.add_argument("--end", default="2026-03-31")
    ap.add_argument("--seed", type=int, default=20251101, help="the base seed of configs/models.yaml")
    ap.add_argument("--no-garch", action="store_true", help="skip GARCH(1,1)-t (its fits take most of a quick run)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument(
        "--top-p",
        type=float,
        default=_configured_top_p(),
        help="nucleus sampling (default: configs/models.yaml's sampling.top_p)",
    )
    ap.add_argument("--out", default="benchmarks/results/bench_checkpoint_real.json")
    ap.add_argument("--write-card", action="store_true", help="write the figures into the checkpoint's MODEL_CARD.md")
    args = ap.parse_args(argv)
    missing = [f for f in FILES.values() if not (SHARED / f).is_file()]
    if missing:
        print(
            f"real candles {SHARED}/{missing[0]} are absent (set KRONOS_SHARED_DIR to the shared folder)",
            file=sys.stderr,
        )
        return 2
    import torch

    torch.set_num_threads(1)
    ckpt = Path(args.checkpoint)
    ckpt = ckpt if ckpt.is_absolute() else REPO / ckpt
    res = run(
        ckpt,
        args.origins,
        args.paths,
        _utc(args.start),
        _utc(args.end),
        not args.no_garch,
        args.seed,
        args.temperature,
        args.top_p,
    )
    out = Path(args.out)
    out = out if out.is_absolute() else REPO / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    for name, t in res["targets"].items():
        print(f"{'met ' if t['met'] else 'MISS'} {name}: {t['value']:.5g} ({t['limit']})")
    for other, d in res["dm"].items():
        print(f"DM vs {other}: {d['verdict']}")
    print(f"written {out}")
    if args.write_card:
        write_card(
            ckpt / "MODEL_CARD.md",
            card_section(res, "python benchmarks/bench_checkpoint_real.py " + " ".join(argv or sys.argv[1:])),
        )
        print(f"updated {ckpt / 'MODEL_CARD.md'}")
    return 0 if all(t["met"] for t in res["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
