"""The publish step with a short and with a year-long record: bytes it writes, wall time and peak RSS.

    .venv/bin/python benchmarks/bench_publish.py            # ~3 min on 2 busy cores
    .venv/bin/python benchmarks/bench_publish.py --days 2 30 365

The demo profile (2 series, 4 models, 30 paths) runs one main-job tick with ``--backfill-bars 5`` at ``--now``:
its warehouse then holds the forecasts of five bars (``--bars``). For each history length a publish folder is
grown directly (no ticks): ``days`` x 24 hourly publications of both series, each a forecast and a paths file, a
hash-chained record and their manifest entries in index parts, exactly as ``publish_site`` lays them out. The forecast
and
paths files of the grown record are small stand-ins (the publish step never reads them back: that is the point;
their count, the chain and the index are real). Then the bars are published onto it one by one, each in a fresh
process: wall seconds, peak RSS of the publish (VmHWM, reset just before it), bytes written (each stored file once:
a latest name is a hard link to its versioned copy) and bytes read back through the store; the first (which brings
the dashboard, charts and latest files the grown record lacks) is left out of the medians.
Results go to benchmarks/results/bench_publish.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_disk import tree, written  # noqa: E402  (each stored file once: a latest name is a hard link)


def grow(root: Path, symbols: list[str], end: datetime, hours: int) -> None:
    """``hours`` hourly publications ending before ``end``, written straight into the folder (see the docstring)."""
    import plotly
    import polars as pl

    from kronos_assets.publishing.figures import templates_js, templates_key
    from kronos_assets.publishing.keys import MANIFEST_KEY, PLOTLY_JS_KEY, history_key, paths_key
    from kronos_assets.publishing.manifest import MANIFEST_FORMAT, PART_FORMAT, PART_OBJECTS, encode, part_key
    from kronos_assets.publishing.site import paths_parquet
    from kronos_assets.publishing.store import IMMUTABLE_CACHE, MANIFEST_CACHE, Artifact

    def put(art: Artifact) -> dict:
        path = root / art.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(art.body)
        return {
            "sha256": art.sha256,
            "bytes": len(art.body),
            "content_type": art.content_type,
            "cache_control": art.cache_control,
        }

    js = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    head = {
        k: put(Artifact.of(k, b, IMMUTABLE_CACHE)) for k, b in ((PLOTLY_JS_KEY, js), (templates_key(), templates_js()))
    }
    loose: dict[str, dict] = {}
    index, prev_record = None, None
    first = end - hours * timedelta(hours=1)
    for i in range(hours):
        origin = (first + i * timedelta(hours=1)).isoformat()
        added = {}
        for symbol in symbols:
            doc = {"symbol": symbol, "timeframe": "1h", "origin": origin, "forecasts": {}}
            frame = pl.DataFrame({"model": ["m"], "path": [0], "step": [1], "close": [1.0 + i]})
            for art in (
                Artifact.of(history_key(symbol, "1h", origin), encode(doc), IMMUTABLE_CACHE),
                Artifact.of(paths_key(symbol, "1h", origin), paths_parquet(frame), IMMUTABLE_CACHE),
            ):
                loose[art.key] = put(art)
                added[art.key] = art.sha256
        record = {
            "format": 1,
            "seq": i,
            "prev_record_sha256": prev_record,
            "prev_manifest_sha256": None,
            "as_of": origin,
            "added": added,
            "late": [],
            "replaced": {},
            "closes": {},
            "closes_through": {},
        }
        rec = Artifact.of(f"chain/{i:08d}.json", encode(record), IMMUTABLE_CACHE)
        loose[rec.key] = put(rec)
        prev_record = rec.sha256
        if len(loose) >= PART_OBJECTS:
            n = 0 if index is None else index["parts"]
            part = Artifact.of(
                part_key(n),
                encode(
                    {
                        "format": PART_FORMAT,
                        "part": n,
                        "prev": index and index["head"],
                        "prev_sha256": index and index["head_sha256"],
                        "objects": dict(sorted(loose.items())),
                    }
                ),
                IMMUTABLE_CACHE,
            )
            put(part)
            index = {
                "head": part.key,
                "head_sha256": part.sha256,
                "parts": n + 1,
                "objects": (index or {}).get("objects", 0) + len(loose) + 1,
            }
            loose = {}
    manifest = {
        "format": MANIFEST_FORMAT,
        "generated_at": (end - timedelta(hours=1)).isoformat(),
        "profile": "demo",
        "synthetic": False,
        "objects": dict(sorted((head | loose).items())),
        "aliases": {},
        "retired": [],
        "inputs": {},
        "chain": {
            "seq": hours - 1,
            "head": f"chain/{hours - 1:08d}.json",
            "head_sha256": prev_record,
            "prev_manifest_sha256": None,
        },
    }
    if index:
        manifest["index"] = index
    put(Artifact.of(MANIFEST_KEY, encode(manifest), MANIFEST_CACHE))


def measure(home: Path, store_root: Path, bar: str) -> dict:
    """One publish of ``bar`` (a fresh process calls this): what it wrote and read, its time and peak RSS."""
    os.environ["KRONOS_HOME"], os.environ["KRONOS_PROFILE"] = str(home), "demo"
    from kronos_assets.configuration.settings import load_settings
    from kronos_assets.publishing.bars import PublishConfig, publish_bars
    from kronos_assets.publishing.store import LocalStore
    from kronos_assets.warehouse import Warehouse

    class Counting(LocalStore):
        read = 0

        def get(self, key: str) -> bytes | None:
            body = super().get(key)
            self.read += len(body or b"")
            return body

    settings = load_settings()
    # The plain values defs/publish.py's publish_config gives the asset, built here without importing Dagster (the
    # peak RSS is the publish's own): the demo profile replays Binance's candles and publishes its markets' scores.
    assert settings.replay and not settings.uploads_publish
    config = PublishConfig(
        settings.profile,
        settings.symbols,
        tuple(t.name for t in settings.timeframes),
        settings.primary_model,
        settings.synthetic,
        settings.replay_exchange.capitalize(),
        settings.symbols,
    )
    store = Counting(store_root)
    when = datetime.fromisoformat(bar)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM: the peak from here on
    t0 = time.perf_counter()
    report = publish_bars(
        config, Warehouse(settings.warehouse_path), store, {s: [when] for s in settings.symbols}, "1h"
    )
    wall = time.perf_counter() - t0
    hwm = next(
        int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:")
    )
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(hwm / 1024, 1),
        "read_bytes": store.read,
        "manifest_written": report.manifest_written,
        "listed": report.listed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, nargs="+", default=[2, 365])
    parser.add_argument("--now", default="2026-03-30T10:05")
    parser.add_argument("--bars", type=int, default=5, help="bars published one by one; the first is a warm-up")
    parser.add_argument("--measure", nargs=3, metavar=("HOME", "STORE", "BAR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]), args.measure[2])))
        return
    root = Path(tempfile.mkdtemp(prefix="bench_publish_"))
    os.environ["KRONOS_HOME"], os.environ["KRONOS_PROFILE"] = str(root / "home"), "demo"
    from kronos_assets.cli.main_job import run_main_job
    from kronos_assets.configuration.settings import load_settings

    settings = load_settings()
    now = datetime.fromisoformat(args.now).replace(tzinfo=timezone.utc)
    t0 = time.perf_counter()
    run_main_job(settings, backfill_bars=args.bars, now=now, log=lambda _: None)
    print(f"demo tick with {args.bars} bars of forecasts: {time.perf_counter() - t0:.0f} s", flush=True)
    newest = now.replace(minute=0) - timedelta(hours=1)  # the newest closed bar
    bars = [newest - timedelta(hours=k) for k in range(args.bars - 1, -1, -1)]
    results = []
    for days in args.days:
        store = root / f"publish-{days}d"
        t0 = time.perf_counter()
        grow(store, list(settings.symbols), bars[0] + timedelta(hours=1), days * 24)
        grown_s = time.perf_counter() - t0
        ticks = []
        for bar in bars:
            before = tree(store)  # here, not in the measured process: its peak RSS is the publish's own
            out = subprocess.run(
                [sys.executable, __file__, "--measure", str(root / "home"), str(store), bar.isoformat()],
                capture_output=True,
                text=True,
                check=True,
            )
            bytes_, files, by_name = written(before, tree(store))
            ticks.append(
                json.loads(out.stdout.strip().splitlines()[-1])
                | {"files": files, "bytes": bytes_, "bytes_by_name": by_name}
            )
        steady = ticks[1:]  # the first brings the dashboard and latest files the grown record lacks
        tick = {
            k: round(statistics.median(t[k] for t in steady), 2)
            for k in ("wall_s", "peak_rss_mb", "read_bytes", "files", "bytes", "bytes_by_name")
        }
        results.append(
            {
                "days": days,
                "publications": days * 24,
                "grow_s": round(grown_s, 1),
                "files": sum(1 for p in store.rglob("*") if p.is_file()),
                "ticks": ticks,
                "tick": tick,
            }
        )
        print(json.dumps({k: v for k, v in results[-1].items() if k != "ticks"}), flush=True)
    small, big = results[0]["tick"], results[-1]["tick"]
    summary = {
        "profile": "demo",
        "series": len(settings.symbols),
        "models": len(settings.forecasters),
        "n_paths": settings.sampling.n_paths,
        "results": results,
        "ratio_wall": round(big["wall_s"] / small["wall_s"], 2),
        "ratio_peak_rss": round(big["peak_rss_mb"] / small["peak_rss_mb"], 2),
        "ratio_bytes": round(big["bytes"] / small["bytes"], 2),
        "root": str(root),
    }
    out = HERE / "results" / "bench_publish.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}, indent=2))


if __name__ == "__main__":
    main()
