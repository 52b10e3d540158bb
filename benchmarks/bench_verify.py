"""How long ``kronos-assets verify`` takes on a year of hourly forecasts of 2 series (issue 26 asks for <= 60 s).

    .venv/bin/python benchmarks/bench_verify.py [--days 365] [--paths 30] [--models 2|4] [--folder DIR] [--workers N]

Builds the record an hourly publisher leaves after ``--days`` days: per series and hour one history file (``--models``
models' per-step quantiles, P(up), P(volatility amplification)) and one paths parquet (``--paths`` paths x 24
steps per model, as the site writes them), one chain record per hour (publishing.chain.append_record, with the
realised close of the hour), a manifest listing every file, and a scoreboard.json whose rows and verdicts are
those the record implies (computed once by verify's own re-scoring, so the timed run compares every number).
Prices are a seeded random walk: the timing depends on the counts, not the prices. Then it times one verify and
writes benchmarks/results/verify.json (verify_4models.json with ``--models 4``), with the CPU seconds beside the
wall time (the machine may be shared).
Files are written without fsync (the publisher's durability is not what is measured); a ``--folder`` that already
holds a record is verified again without rebuilding it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from kronos_assets.evaluation.track_record import DM_WINDOWS, VERDICT_WINDOW, verdicts
from kronos_assets.forecasting.summary import summarise
from kronos_assets.metrics.registry import aggregate, on_board
from kronos_assets.publishing import verify as v
from kronos_assets.publishing.chain import append_record, sha256
from kronos_assets.publishing.keys import MANIFEST_KEY, history_key, paths_key, versioned_key
from kronos_assets.publishing.site import paths_parquet
from kronos_assets.publishing.store import Artifact, LocalStore

HOUR = timedelta(hours=1)
H = 24
SERIES = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}
MODELS = {"random_walk_vol": 1.0, "wide_model": 1.3}  # path volatility x the recent one
# The demo profile's four forecasters: the random walk is a point forecast (every path the last close)
DEMO_MODELS = {"random_walk": 0.0, "random_walk_vol": 1.0, "garch": 1.1, "kronos-demo": 1.3}
START = datetime(2025, 1, 1, tzinfo=timezone.utc)
RESULTS = Path(__file__).resolve().parent / "results"  # verify.json (2 models), verify_4models.json


class FastStore(LocalStore):
    """The local folder without fsync: building the fixture, not publishing durably."""

    def put(self, artifact: Artifact) -> None:
        path = self._path(artifact.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(artifact.body)


def build(root: Path, days: int, n_paths: int, models: dict[str, float] = MODELS, seed: int = 26) -> int:
    rng = np.random.default_rng(seed)
    store = FastStore(root)
    n_bars = days * 24
    closes = {s: p0 * np.exp(np.cumsum(rng.normal(0, 0.006, n_bars + H + 200))) for s, p0 in SERIES.items()}
    ts = [START + i * HOUR for i in range(n_bars + H + 200)]
    objects, head = {}, {}
    for i in range(200, 200 + n_bars):  # origin ts[i]: candles closed before it are ts[:i]
        origin = ts[i]
        added, docs, snaps = {}, {}, []
        for symbol, price in closes.items():
            hist = price[i - 200 : i]
            sigma = float(np.std(np.diff(np.log(hist[-168:])), ddof=1))
            doc = {"symbol": symbol, "timeframe": "1h", "origin": origin.isoformat(), "forecasts": {}}
            frames = []
            for model, scale in models.items():
                paths = hist[-1] * np.exp(np.cumsum(rng.normal(0, sigma * scale, (n_paths, H)), axis=1))
                s = summarise(paths, np.ones_like(paths), hist)
                steps = [
                    {
                        "step": k + 1,
                        "ts": (origin + k * HOUR).isoformat(),
                        "median_close": float(s.median_close[k]),
                        "mean_close": float(s.mean_close[k]),
                        **{f"q{round(q * 100):02d}": float(s.quantiles[j, k]) for j, q in enumerate(s.levels)},
                    }
                    for k in range(H)
                ]
                doc["forecasts"][model] = {
                    "model": model,
                    "horizon": H,
                    "n_paths": n_paths,
                    "last_close": float(hist[-1]),
                    "p_up": s.p_up,
                    "p_vol_amp": s.p_vol_amp,
                    "recent_vol": s.recent_vol,
                    "steps": steps,
                }
                frames.append(
                    pl.DataFrame(
                        {
                            "model": model,
                            "path": np.repeat(np.arange(n_paths), H),
                            "step": np.tile(np.arange(1, H + 1), n_paths),
                            "close": paths.ravel(),
                        }
                    )
                )
            for key, body in (
                (history_key(symbol, "1h", doc["origin"]), json.dumps(doc, indent=1).encode()),
                (paths_key(symbol, "1h", doc["origin"]), paths_parquet(pl.concat(frames))),
            ):
                store.put(Artifact.of(key, body, "public"))
                added[key] = objects[key] = sha256(body)
            docs[history_key(symbol, "1h", doc["origin"])] = doc
            snaps.append(
                {
                    "symbol": symbol,
                    "timeframe": "1h",
                    "candles": [{"ts": ts[j].isoformat(), "close": float(price[j])} for j in range(i - 2, i)],
                }
            )
        head, _ = append_record(store, {"chain": head} if head else {}, None, None, origin, added, docs, snaps)
    manifest = {"objects": {k: {"sha256": d} for k, d in objects.items()}, "aliases": {}, "chain": head}
    (root / MANIFEST_KEY).write_text(json.dumps(manifest))
    # The scoreboard the record implies: verify's own re-scoring, aggregated by the registry.
    summary = v.Summary()
    scored = v.rescore(
        store,
        v.check_files(store, manifest, v.walk_chain(store, manifest, summary), summary),
        v.chain_closes(v.walk_chain(store, manifest, v.Summary())),
        summary,
    )
    rows = [
        {
            "symbol": s,
            "timeframe": tf,
            "model": m,
            "n_forecasts": len(by),
            **{b.board: aggregate(b, list(by.values())) for b in on_board()},
        }  # n/a as the scoreboard has it
        for (s, tf, m), by in sorted(scored.items())
    ]
    judged = verdicts(v.Losses(scored), "1h", DM_WINDOWS[VERDICT_WINDOW])
    body = json.dumps({"rows": rows, "verdicts": judged}, default=str).encode()
    copy = versioned_key("scoreboard.json", sha256(body))
    for key in ("scoreboard.json", copy):
        (root / key).write_bytes(body)
    manifest["objects"][copy] = {"sha256": sha256(body)}
    manifest["aliases"]["scoreboard.json"] = copy
    (root / MANIFEST_KEY).write_text(json.dumps(manifest))
    return summary.scored


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the re-scoring workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (the verify's main process when the folder was already built)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--paths", type=int, default=30)
    ap.add_argument(
        "--models",
        type=int,
        choices=(2, 4),
        default=2,
        help="2: the random walk with volatility and a wider model; 4: the demo's forecasters",
    )
    ap.add_argument("--folder", type=Path, default=None, help="build here and keep it (default: a temporary folder)")
    ap.add_argument("--workers", type=int, default=None, help="re-scoring processes (default: verify's choice)")
    args = ap.parse_args()
    models = DEMO_MODELS if args.models == 4 else MODELS
    root = args.folder or Path(tempfile.mkdtemp(prefix="bench-verify-"))
    try:
        t0 = time.perf_counter()
        if not (root / MANIFEST_KEY).exists():
            build(root, args.days, args.paths, models)
        built = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), _cpu()
        summary = v.verify(LocalStore(root), args.workers)
        took, cpu = time.perf_counter() - t0, _cpu() - c0
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(summary.line())
        print(
            f"{args.days} days x {len(SERIES)} series hourly, {len(models)} models x {args.paths} paths: "
            f"built in {built:.0f} s ({size / 1e6:.0f} MB); verify {took:.1f} s (target <= 60 s), {cpu:.1f} CPU s, "
            f"{v.default_workers(summary.forecasts) if args.workers is None else args.workers} process(es), "
            f"peak RSS {_peak_rss_mb():.0f} MB, "
            f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        RESULTS.mkdir(exist_ok=True)
        name = "verify.json" if args.models == 2 else f"verify_{args.models}models.json"
        (RESULTS / name).write_text(
            json.dumps(
                {
                    "days": args.days,
                    "series": len(SERIES),
                    "models": len(models),
                    "paths": args.paths,
                    "publications": summary.publications,
                    "forecasts": summary.forecasts,
                    "numbers": summary.numbers,
                    "verify_s": round(took, 1),
                    "cpu_s": round(cpu, 1),
                    "bytes": size,
                    "peak_rss_mb": round(_peak_rss_mb()),
                    "load": round(os.getloadavg()[0], 1),
                },
                indent=1,
            )
            + "\n"
        )
    finally:
        if args.folder is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
