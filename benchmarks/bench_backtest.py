"""Rolling-origin backtest on real Binance candles, run through the Dagster graph exactly as a backfill runs it.

    .venv/bin/python benchmarks/bench_backtest.py --model-dir PATH [--start 2025-01-01 --end 2025-06-30]
    .venv/bin/python benchmarks/bench_backtest.py --baselines-only --days 14     # a quick look
    .venv/bin/python benchmarks/bench_backtest.py --baselines-only --symbols BTC/USDT --hours 168 \
        --out backtest_garch.json   # the GARCH fit's cost per origin next to the random walks
    .venv/bin/python benchmarks/bench_backtest.py --kronos-mini-random --symbols BTC/USDT --hours 168 \
        --extrapolate-origins 4344   # issue 14's half-year target, measured on a slice and extrapolated
    .venv/bin/python benchmarks/bench_backtest.py --kronos-mini-random --symbols BTC/USDT \
        --out backtest_half_year.json   # the half year itself (2025-01-01..06-30: 4,344 origins), measured

Every hour of the range is a forecast origin (horizon 24, 30 paths, 480 bars of history) for BTC/USDT and
ETH/USDT, by the baselines and, with --model-dir, by a Kronos checkpoint folder (model/ + tokenizer/). Candles
come from ../shared/data/candles (never copied into the repository). Forecast runs cover 168 bars each, as the
backfill policy does. Reports wall time, peak memory, the share of time Dagster spends outside the steps, and the
scoreboard at the horizon's last step, and each model's own seconds per origin (the forecast asset's model_seconds:
for GARCH(1,1)-t, a fit and a simulation per origin) with the GARCH fits that fell back. Results:
benchmarks/results/backtest.json (--out another name).

--kronos-mini-random saves a Kronos-mini + Tokenizer-2k pair with random weights (seed 0) and backtests it: the
speed of a Kronos-mini-sized model without downloading weights. --hours N keeps the first N origins of the range;
--extrapolate-origins M scales the measured candle and forecast wall times linearly to M origins per symbol (an
extrapolation, printed as such: a full slice of 168 origins is one forecast run, the unit the backfill repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("KRONOS_SHARED_DIR", REPO.parent / "shared")) / "data" / "candles"
FILES = {
    "BTC/USDT": "binance_BTCUSDT_1h_20200920_20250919.csv.gz",
    "ETH/USDT": "binance_ETHUSDT_1h_20200920_20250919.csv.gz",
}
UTC = timezone.utc


class RealCandles:
    """CandleSource over the shared Binance files."""

    name = "binance-files"

    def __init__(self):
        self.frames = {}
        for symbol, name in FILES.items():
            df = pl.read_csv(SHARED / name)
            self.frames[symbol] = df.select(
                pl.col("timestamp")
                .str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")
                .dt.cast_time_unit("us")
                .alias("ts"),
                "open",
                "high",
                "low",
                "close",
                "volume",
                (pl.col("volume") * (pl.col("open") + pl.col("high") + pl.col("low") + pl.col("close")) / 4).alias(
                    "amount"
                ),
                pl.lit("binance").alias("exchange"),
            )

    def fetch(self, symbol, timeframe, start, end, now):
        assert timeframe == "1h"
        df = self.frames[symbol]
        return df.filter((pl.col("ts") >= start) & (pl.col("ts") < end) & (pl.col("ts") + timedelta(hours=1) <= now))


def write_config(root: Path, model_dir: str | None, start: date, files: dict[str, str]) -> Path:
    cfg = root / "configs"
    (cfg / "profiles").mkdir(parents=True)
    (cfg / "markets.yaml").write_text(
        yaml.safe_dump(
            {
                "symbols": list(files),
                "exchanges": [{"id": "binance"}],
                "timeframes": {
                    "1h": {"start": (start - timedelta(days=40)).isoformat(), "history_bars": 480, "horizon": 24}
                },
            }
        )
    )
    models = yaml.safe_load((REPO / "configs" / "models.yaml").read_text())
    forecasters = ["random_walk", "random_walk_vol", "garch"]  # garch: configs/models.yaml's entry
    if model_dir:
        models["models"]["kronos-bench"] = {
            "local_dir": str(Path(model_dir).resolve()),
            "max_context": 512,
            "device": "cpu",
        }
        forecasters.append("kronos-bench")
    models["sampling"]["n_paths"] = 30
    (cfg / "models.yaml").write_text(yaml.safe_dump(models))
    (cfg / "profiles" / "live.yaml").write_text(
        yaml.safe_dump(
            {
                "description": "backtest on real candles",
                "market": "ccxt",
                "symbols": list(files),
                "timeframes": ["1h"],
                "forecasters": forecasters,
                "primary_model": forecasters[-1],
                "publish": {"backend": "local"},
            }
        )
    )
    return cfg


def random_kronos_mini(folder: Path) -> Path:
    """A Kronos-mini + Tokenizer-2k checkpoint folder with random weights (seed 0): speed only."""
    import torch

    from kronos_assets.kronos.config import KRONOS_MINI, TOKENIZER_2K
    from kronos_assets.kronos.hub import save_checkpoint
    from kronos_assets.kronos.model import Kronos
    from kronos_assets.kronos.tokenizer import KronosTokenizer

    torch.manual_seed(0)
    save_checkpoint(Kronos(KRONOS_MINI), folder / "model")
    save_checkpoint(KronosTokenizer(TOKENIZER_2K), folder / "tokenizer")
    return folder


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model-dir")
    p.add_argument("--kronos-mini-random", action="store_true", help="a random-weight Kronos-mini as the model")
    p.add_argument("--symbols", nargs="+", choices=list(FILES), default=list(FILES))
    p.add_argument("--hours", type=int, help="only the first N origins (hours) of the range")
    p.add_argument("--extrapolate-origins", type=int, help="scale the measured times to this many origins")
    p.add_argument("--start", default="2025-01-01")
    p.add_argument("--end", default="2025-06-30")
    p.add_argument("--days", type=int, help="only the first N days of the range")
    p.add_argument("--baselines-only", action="store_true")
    p.add_argument("--out", default="backtest.json", help="file name under benchmarks/results/")
    args = p.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"real candles not found in {SHARED}")
    import dagster as dg

    from kronos_assets.configuration.settings import load_settings
    from kronos_assets.defs.factory import build_definitions
    from kronos_assets.defs.partitions import RANGE_END, RANGE_START, bar_key, day_key
    from kronos_assets.defs.resources import build_resources
    from kronos_assets.evaluation.track_record import HEADLINE_COLUMNS, track_record

    start = date.fromisoformat(args.start)
    end = date.fromisoformat(args.end)
    if args.days:
        end = min(end, start + timedelta(days=args.days - 1))
    root = Path(tempfile.mkdtemp(prefix="kronos-backtest-"))
    symbols = {s: FILES[s] for s in args.symbols}
    model_dir = str(random_kronos_mini(root / "kronos-mini-random")) if args.kronos_mini_random else args.model_dir
    cfg = write_config(root, None if args.baselines_only else model_dir, start, symbols)
    settings = load_settings("live", config_dir=cfg, home=root / "home")
    resources = build_resources(settings) | {"market": RealCandles()}
    defs = build_definitions(settings, resources)
    instance = dg.DagsterInstance.ephemeral()
    first_bar = datetime(start.year, start.month, start.day, tzinfo=UTC)
    last_bar = datetime(end.year, end.month, end.day, 23, tzinfo=UTC)
    if args.hours:
        last_bar = min(last_bar, first_bar + timedelta(hours=args.hours - 1))
    t0 = time.perf_counter()
    for symbol in symbols:
        defs.resolve_job_def("candles_1h").execute_in_process(
            instance=instance,
            tags={
                RANGE_START: str(day_key(symbol, first_bar - timedelta(days=21))),
                RANGE_END: str(day_key(symbol, last_bar + timedelta(days=2))),
            },
        )
    t_candles = time.perf_counter() - t0
    job = defs.resolve_job_def("forecast_1h")
    run_s = step_s = 0.0
    runs = 0
    model_s: dict[str, float] = {}
    t1 = time.perf_counter()
    for symbol in symbols:
        bar = first_bar
        while bar <= last_bar:
            chunk_end = min(bar + timedelta(hours=167), last_bar)
            r0 = time.time()  # the clock of Dagster's event timestamps, which time the steps below
            result = job.execute_in_process(
                instance=instance,
                tags={RANGE_START: str(bar_key(symbol, bar)), RANGE_END: str(bar_key(symbol, chunk_end))},
            )
            run_s += time.time() - r0
            runs += 1
            # The forecast asset's seconds per model, for the whole run (each partition's event repeats them).
            seconds = next(
                (
                    m.materialization.metadata["model_seconds"].value
                    for m in result.get_asset_materialization_events()
                    if "model_seconds" in m.materialization.metadata
                ),
                {},
            )
            for name, sec in seconds.items():
                model_s[name] = model_s.get(name, 0.0) + sec
            starts = {}
            for entry in instance.all_logs(result.run_id):
                e = entry.dagster_event
                if e and e.event_type_value == "STEP_START":
                    starts[e.step_key] = entry.timestamp
                elif e and e.event_type_value == "STEP_SUCCESS":
                    step_s += entry.timestamp - starts[e.step_key]
            print(f"{symbol} {bar:%Y-%m-%d %H:%M}..{chunk_end:%m-%d %H:%M}: {time.time() - r0:.1f} s", flush=True)
            bar = chunk_end + timedelta(hours=1)
    t_forecast = time.perf_counter() - t1
    record = track_record(resources["warehouse"].get(), "1h")
    board = [r for r in record["scoreboard"] if r["window_name"] == "all" and r["step"] == r["horizon"]]
    origins = int(((last_bar - first_bar) / timedelta(hours=1)) + 1)
    n_forecasts = (
        resources["warehouse"]
        .get()
        .query(
            "SELECT model, count(*) AS n, count(*) FILTER "
            "(json_extract_string(provenance, '$.garch.fit') = 'failed') AS "
            "fallbacks FROM forecasts GROUP BY model"
        )
    )
    per_model = {
        r["model"]: {
            "seconds": round(model_s.get(r["model"], 0.0), 2),
            "forecasts": r["n"],
            "ms_per_forecast": round(1000 * model_s.get(r["model"], 0.0) / r["n"], 1),
            **({"fit_fallbacks": r["fallbacks"]} if r["model"] == "garch" else {}),
        }
        for r in n_forecasts.iter_rows(named=True)
    }
    out = {
        "range": [first_bar.isoformat(), last_bar.isoformat()],
        "origins_per_symbol": origins,
        "symbols": list(symbols),
        "load_average": os.getloadavg()[0],
        "models": list(settings.forecasters),
        "candles_wall_s": round(t_candles, 1),
        "forecast_wall_s": round(t_forecast, 1),
        "total_min": round((t_candles + t_forecast) / 60, 1),
        "runs": runs,
        "model_time": per_model,
        "dagster_share_of_forecast_runs": round(1 - step_s / run_s, 4) if run_s else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "scoreboard_horizon_end": board,
        "dm_tests": record["dm_tests"],
    }
    if args.extrapolate_origins:
        scale = args.extrapolate_origins / origins
        out["extrapolated"] = {
            "origins_per_symbol": args.extrapolate_origins,
            "scale": round(scale, 2),
            "candles_wall_s": round(t_candles * scale, 1),
            "forecast_wall_s": round(t_forecast * scale, 1),
            "total_min": round((t_candles + t_forecast) * scale / 60, 1),
            "how": f"measured {origins} origins per symbol; wall times scaled linearly by {scale:.2f}",
        }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / args.out).write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps({k: v for k, v in out.items() if k not in ("scoreboard_horizon_end", "dm_tests")}, indent=1))
    models_min = ", ".join(f"{m} {v['seconds'] / 60:.1f} min" for m, v in per_model.items())
    print(
        f"measured: {(t_candles + t_forecast) / 60:.1f} min for {origins} origins x {len(symbols)} symbol(s) "
        f"(candles {t_candles / 60:.1f} min, forecast runs {t_forecast / 60:.1f} min; models {models_min}); "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    if not board:  # a slice too short for any horizon to close and be scored
        print("no scores yet: no forecast's horizon closed inside the range")
        return
    print(pl.DataFrame(board).select(HEADLINE_COLUMNS))
    print(
        pl.DataFrame(record["dm_tests"])
        .filter(pl.col("window_name") == "all")
        .select("symbol", "model", "n", "statistic", "p_value", "verdict")
    )


if __name__ == "__main__":
    main()
