"""Ingest throughput: a one-year 1h backfill of one symbol from the loopback fake exchange into a warehouse.

    .venv/bin/python benchmarks/bench_ingest.py [--dialect binance|okx] [--repeat 5] [--rate-limit]

Measures, per run, the wall time of CcxtSource.fetch (real ccxt client over HTTP on 127.0.0.1) and of
Warehouse.replace into raw_candles of a temporary DuckDB file, and prints candles per second and the OHLCV
requests made against the minimum possible, ceil(bars / page limit). Needs ../shared/data/candles (or
KRONOS_SHARED_DIR). Writes benchmarks/results/bench_ingest.json (git-ignored).
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

from kronos_assets import warehouse as wh_mod  # noqa: E402
from kronos_assets.market.ccxt_source import DEFAULT_PAGE_LIMIT, CcxtSource  # noqa: E402
from kronos_assets.warehouse import Warehouse  # noqa: E402
from kronos_assets_tests.conftest import SHARED_CANDLES  # noqa: E402
from kronos_assets_tests.fakes.fake_exchange import FakeExchange  # noqa: E402

RAW_CANDLES_DDL = """
CREATE TABLE IF NOT EXISTS raw_candles (
    symbol VARCHAR NOT NULL, timeframe VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL,
    open DOUBLE NOT NULL, high DOUBLE NOT NULL, low DOUBLE NOT NULL, close DOUBLE NOT NULL,
    volume DOUBLE NOT NULL, amount DOUBLE, exchange VARCHAR NOT NULL, fetched_at TIMESTAMPTZ
);
"""


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
    ap.add_argument("--dialect", choices=("binance", "okx"), default="binance")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rate-limit", action="store_true", help="keep ccxt's client-side throttle on")
    args = ap.parse_args()

    candles = load(args.file)
    start = datetime.fromisoformat(args.start).replace(tzinfo=timezone.utc)
    end = start + timedelta(days=args.days)
    now = end + timedelta(hours=6, minutes=30)
    limit = DEFAULT_PAGE_LIMIT[args.dialect]
    window_bars = (end - start) // timedelta(hours=1)
    runs = []
    with tempfile.TemporaryDirectory() as tmp, FakeExchange(args.dialect, {args.symbol: {"1h": candles}}, now) as fake:
        schema = wh_mod.SQL_DIR / "schema.sql"
        if not (schema.is_file() and "raw_candles" in schema.read_text()):
            (Path(tmp) / "schema.sql").write_text(RAW_CANDLES_DDL)
            wh_mod.SQL_DIR = Path(tmp)
        wh = Warehouse(Path(tmp) / "bench.duckdb")
        wh.query("SELECT 1")  # create the schema outside the timed part
        for i in range(args.repeat):
            src = CcxtSource({"exchanges": [{"id": args.dialect, "base_url": fake.url}],
                              "enable_rate_limit": args.rate_limit})
            t0 = time.perf_counter()
            res = src.fetch_result(args.symbol, "1h", start, end, now)
            t1 = time.perf_counter()
            rows = res.candles.with_columns(pl.lit(args.symbol).alias("symbol"), pl.lit("1h").alias("timeframe"),
                                            pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("fetched_at"))
            wh.replace("raw_candles", rows, "symbol = ? AND timeframe = ? AND ts >= ? AND ts < ?",
                       [args.symbol, "1h", start, end])
            t2 = time.perf_counter()
            src.close()
            r = res.report
            runs.append({"fetch_s": t1 - t0, "write_s": t2 - t1, "rows": r.rows, "page_requests": r.page_requests,
                         "gap_requests": r.gap_requests, "requests": r.requests, "gaps": r.missing_bars})
            print(f"run {i + 1}: {r.rows} candles, fetch {t1 - t0:.3f}s, write {t2 - t1:.3f}s, "
                  f"{r.requests} HTTP requests ({r.page_requests} pages, {r.gap_requests} gap re-requests, markets)")
        stored = wh.query("SELECT count(*) AS n FROM raw_candles")["n"][0]

    best = min(runs, key=lambda x: x["fetch_s"] + x["write_s"])
    med_total = statistics.median(x["fetch_s"] + x["write_s"] for x in runs)
    med_fetch = statistics.median(x["fetch_s"] for x in runs)
    summary = {
        "dialect": args.dialect,
        "window": [start.isoformat(), end.isoformat()],
        "window_bars": window_bars,
        "rows": best["rows"],
        "stored_rows": int(stored),
        "missing_bars": best["gaps"],
        "page_limit": limit,
        "min_requests": math.ceil(window_bars / limit),
        "page_requests": best["page_requests"],
        "gap_requests": best["gap_requests"],
        "http_requests_total": best["requests"],
        "median_fetch_s": round(med_fetch, 4),
        "median_total_s": round(med_total, 4),
        "candles_per_s_fetch": round(best["rows"] / med_fetch),
        "candles_per_s_fetch_and_write": round(best["rows"] / med_total),
        "rate_limit": args.rate_limit,
        "runs": args.repeat,
    }
    print(json.dumps(summary, indent=2))
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"bench_ingest_{args.dialect}{'_ratelimit' if args.rate_limit else ''}.json").write_text(
        json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
