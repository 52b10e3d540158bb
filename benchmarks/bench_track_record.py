"""The track record's cost against stored history (issue 25): does it cost the same on day 365 as on day 2?

For each size (days of scored history) a warehouse of the demo's shape is built cheaply: 2 series, 4 models, 30
sample paths, a 24-bar horizon, hourly origins; one day of forecasts planted and scored by the real scoring step,
then replicated to earlier days (origins shifted whole days; no model runs, no scoring) and, where this release
keeps running aggregates, those made from the copies as the migration makes them. A fresh process then opens it
and times ``track_record()`` (best of 3, its parts by function), its peak RSS, and the scoring of one bar again
(what the evaluations step now also re-aggregates). Prints a table; writes benchmarks/results/track_record.json.

    .venv/bin/python benchmarks/bench_track_record.py [--days 2 30 180 365] [--label after] [--out PATH]

Run it with PYTHONPATH at another checkout (e.g. ``git archive`` of an older commit) to measure that release.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # the planted record's helper; a PYTHONPATH checkout comes first
SYMBOLS = ("BTC/USDT", "ETH/USDT")
HORIZON, PATHS = 24, 30
PARTS = ("scoreboard", "verdicts", "reliability", "pit_histogram", "confidence_sums", "confidence_tables")


def build(path: Path, days: int) -> float:
    from kronos_assets.warehouse import Warehouse
    from kronos_assets_tests.evaluate.planted import plant, replicate, score

    t0 = time.perf_counter()
    wh = Warehouse(path)
    plant(wh, 24, HORIZON, PATHS, SYMBOLS)
    for symbol in SYMBOLS:
        score(wh, symbol, 0, 23, HORIZON)
    wh.transact("replicated history", lambda con: replicate(con, days - 1))
    try:
        from kronos_assets.warehouse import score_sums
    except ImportError:  # a release without running aggregates
        score_sums = None
    if score_sums is not None:
        wh.transact("running aggregates", score_sums.rebuilder(None))
    wh.close()
    return time.perf_counter() - t0


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: reset at exec, unlike ru_maxrss, which a child started by
    subprocess inherits from the parent that built the warehouse)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(path: Path) -> dict:
    """In a fresh process: track_record() best of 3 with its parts, peak RSS, one bar scored again."""
    from kronos_assets.evaluation import track_record as tr
    from kronos_assets.warehouse import Warehouse
    from kronos_assets_tests.evaluate.planted import score

    spent: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    for name in PARTS:
        if hasattr(tr, name):
            setattr(tr, name, timed(name, getattr(tr, name)))
    wh = Warehouse(path)
    wh.query("SELECT 1")  # open (and check the schema) outside the timings
    runs, parts = [], []
    for _ in range(3):
        spent.clear()
        t0 = time.perf_counter()
        record = tr.track_record(wh, "1h")
        runs.append(time.perf_counter() - t0)
        parts.append(dict(spent))
    best = min(range(3), key=runs.__getitem__)
    rss = _peak_rss_mb()  # before the scoring below
    t0 = time.perf_counter()
    score(wh, SYMBOLS[0], 23, 23, HORIZON)
    rescore = time.perf_counter() - t0
    rows = wh.query("SELECT count(*) AS n FROM evaluations")["n"][0]
    wh.close()
    return {
        "track_record_s": round(runs[best], 3),
        "parts_s": {k: round(v, 3) for k, v in parts[best].items()},
        "peak_rss_mb": round(rss, 1),
        "score_one_bar_s": round(rescore, 3),
        "evaluation_rows": int(rows),
        "scoreboard_rows": len(record["scoreboard"]),
        "dm_tests": len(record["dm_tests"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, nargs="+", default=[2, 30, 180, 365])
    ap.add_argument("--label", default="after")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "track_record.json")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_track_record_") as tmp:
        for days in args.days:
            path = Path(tmp) / f"w{days}.duckdb"
            built = build(path, days)
            child = subprocess.run(
                [sys.executable, __file__, "--measure", str(path)],
                capture_output=True,
                text=True,
                check=True,
                timeout=1800,
            )
            row = {"days": days, "build_s": round(built, 1)} | json.loads(child.stdout.strip().splitlines()[-1])
            results.append(row)
            print(
                f"{days:>4} days  track_record {row['track_record_s']:7.3f} s  peak RSS {row['peak_rss_mb']:7.1f} MB"
                f"  score one bar {row['score_one_bar_s']:6.3f} s  rows {row['evaluation_rows']:>9,}  "
                f"parts {row['parts_s']}",
                flush=True,
            )
    doc = json.loads(args.out.read_text()) if args.out.exists() else {}
    doc[args.label] = {
        "shape": f"{len(SYMBOLS)} series, 4 models, {PATHS} paths, horizon {HORIZON}, hourly",
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
