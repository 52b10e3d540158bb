"""Ingest throughput: a one-year 1h backfill of one symbol from the loopback fake exchange into a warehouse.

    .venv/bin/python benchmarks/bench_ingest.py [--dialect binance|okx|bybit|kucoin] [--repeat 5] [--rate-limit]
    [--plain-http]

Measures, per run, the wall time of CcxtSource.fetch (real ccxt client over HTTP on 127.0.0.1, every request
under its wall-clock deadline watch) and of the merge into raw_candles of a temporary DuckDB file (the first run
inserts, the later ones replace every stored bar by its returned copy), and prints candles per second and the
OHLCV requests made against the minimum possible, ceil(bars / page limit). ``--plain-http`` mounts requests'
default adapter instead of the deadline one, to show what the watch costs. Needs ../shared/data/candles (or
KRONOS_SHARED_DIR). Writes benchmarks/results/bench_ingest_<dialect>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402

from kronos_assets.market.ccxt_source import CcxtSource  # noqa: E402
from kronos_assets.market.dialects import dialect_for  # noqa: E402
from kronos_assets.market.store import ingest_window  # noqa: E402
from kronos_assets.warehouse import Warehouse  # noqa: E402
from kronos_assets_tests.conftest import SHARED_CANDLES  # noqa: E402
from kronos_assets_tests.fakes.fake_exchange import FORMATS, FakeExchange  # noqa: E402


def load(name: str) -> pl.DataFrame:
    path = SHARED_CANDLES / name
    if not path.is_file():
        sys.exit(f"real candles {path} are absent (set KRONOS_SHARED_DIR to the shared folder)")
    df = pl.read_csv(path)
    return df.with_columns(
        pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").dt.cast_time_unit("us").alias("ts")
    ).drop("timestamp")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default="binance_BTCUSDT_1h_20220101_20251202.csv.gz")
    ap.add_argument("--symbol", default="BTC/USDT")
    ap.add_argument("--start", default="2023-01-01")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--dialect", choices=sorted(FORMATS), default="binance")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rate-limit", action="store_true", help="keep ccxt's client-side throttle on")
    ap.add_argument("--plain-http", action="store_true", help="no wall-clock deadline watch (to measure its cost)")
    args = ap.parse_args()

    candles = load(args.file)
    start = datetime.fromisoformat(args.start).replace(tzinfo=timezone.utc)
    end = start + timedelta(days=args.days)
    now = end + timedelta(hours=6, minutes=30)
    limit = dialect_for(args.dialect).page_limit
    window_bars = (end - start) // timedelta(hours=1)
    runs = []
    with tempfile.TemporaryDirectory() as tmp, FakeExchange(args.dialect, {args.symbol: {"1h": candles}}, now) as fake:
        wh = Warehouse(Path(tmp) / "bench.duckdb")
        wh.query("SELECT 1")  # create the schema outside the timed part
        for i in range(args.repeat):
            src = CcxtSource(
                {"exchanges": [{"id": args.dialect, "base_url": fake.url}], "enable_rate_limit": args.rate_limit}
            )
            if args.plain_http:
                for ex in src._exchanges:
                    ex.client.session.mount("http://", HTTPAdapter())
            t0 = time.perf_counter()
            stored = ingest_window(src, wh, args.symbol, "1h", start, end, now)
            t2 = time.perf_counter()
            r = src.fetch_report()
            src.close()
            runs.append(
                {
                    "total_s": t2 - t0,
                    "rows": r.rows,
                    "page_requests": r.page_requests,
                    "gap_requests": r.gap_requests,
                    "requests": r.requests,
                    "gaps": r.missing_bars,
                    "stored": stored.stored_after,
                }
            )
            print(
                f"run {i + 1}: {r.rows} candles fetched and merged in {t2 - t0:.3f}s "
                f"({stored.stored_before} -> {stored.stored_after} stored), {r.requests} HTTP requests "
                f"({r.page_requests} pages, {r.gap_requests} gap re-requests, markets)"
            )
        stored_n = wh.query("SELECT count(*) AS n FROM raw_candles")["n"][0]

    best = min(runs, key=lambda x: x["total_s"])
    med_total = statistics.median(x["total_s"] for x in runs)
    summary = {
        "dialect": args.dialect,
        "window": [start.isoformat(), end.isoformat()],
        "window_bars": window_bars,
        "rows": best["rows"],
        "stored_rows": int(stored_n),
        "missing_bars": best["gaps"],
        "page_limit": limit,
        "min_requests": math.ceil(window_bars / limit),
        "page_requests": best["page_requests"],
        "gap_requests": best["gap_requests"],
        "http_requests_total": best["requests"],
        "median_fetch_and_merge_s": round(med_total, 4),
        "candles_per_s_fetch_and_merge": round(best["rows"] / med_total),
        "rate_limit": args.rate_limit,
        "deadline_watch": not args.plain_http,
        "runs": args.repeat,
    }
    print(json.dumps(summary, indent=2))
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    suffix = ("_ratelimit" if args.rate_limit else "") + ("_plainhttp" if args.plain_http else "")
    (out / f"bench_ingest_{args.dialect}{suffix}.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
