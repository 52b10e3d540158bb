"""The warehouse back ends under Dagster: a 7-day backfill of hourly candles (candles_1h, one run per day and
symbol: 7 days x 3 symbols = 21 runs) launched by a real dagster-daemon from a Postgres instance
(deploy/dagster.yaml), with 1 and with 4 runs in flight, on the embedded DuckDB file and on DuckLake (a local
PostgreSQL catalog + a loopback S3 server as the data path).

    .venv/bin/python benchmarks/bench_warehouse.py                 # all four scenarios, prints a table
    .venv/bin/python benchmarks/bench_warehouse.py --days 2        # shorter
    .venv/bin/python benchmarks/bench_warehouse.py --only ducklake:4

Per scenario: throughput (partitions per minute, first run start to last run end), Dagster's share (the part of
the runs' wall time outside the asset steps' bodies: process start, imports, loading the code location, events),
and the write latency per partition (time inside Warehouse.merge/replace_many, median and p95, measured by a
timing wrapper around the warehouse resource in this file's code location). The embedded file keeps the
duckdb_write pool at 1; DuckLake raises it to 4. Results go to benchmarks/results/bench_warehouse.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
FIRST_DAY = "2025-03-01"
TIMINGS_VAR = "BENCH_WAREHOUSE_TIMINGS"  # the code location appends one JSON line per write here
RUNS_TIMEOUT_S = 1200


# -- the code location the daemon loads (workspace: python_file this file, attribute location) -----------------
def location():
    """kronos_assets' code location with the warehouse resource wrapped to time every write."""
    from kronos_assets.configuration.settings import load_settings
    from kronos_assets.definitions import code_location
    from kronos_assets.defs.resources import build_resources
    from kronos_assets.warehouse import Warehouse

    class TimedWarehouse(Warehouse):
        def _timed(self, what: str, fn, *args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            with open(os.environ[TIMINGS_VAR], "a") as f:
                f.write(json.dumps({"write": what, "s": time.perf_counter() - t0, "pid": os.getpid()}) + "\n")
            return out

        def merge(self, table, frame, keys):
            return self._timed(f"merge {table}", super().merge, table, frame, keys)

        def replace_many(self, frames, where, params=None):
            return self._timed(f"replace {','.join(frames)}", super().replace_many, frames, where, params)

    settings = load_settings()
    resources = build_resources(settings)
    warehouse = resources["warehouse"].get()
    timed = TimedWarehouse(warehouse.path, config=warehouse.config)
    return code_location(settings, {**resources, "warehouse": timed})


# -- the driver -------------------------------------------------------------------------------------------------
def _instance_yaml(runs: int) -> str:
    import yaml

    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    config["concurrency"]["runs"]["max_concurrent_runs"] = runs
    for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]:
        if limit["key"] == "dagster/backfill":
            limit["limit"] = runs
    return yaml.safe_dump(config)


def _scenario(backend: str, runs: int, days: int, root: Path, pg: Any, lake: dict | None) -> dict:
    import dagster as dg
    import yaml

    from kronos_assets.configuration.settings import load_settings
    from kronos_assets.warehouse import Warehouse
    from kronos_assets_tests.helpers import write_configs
    from kronos_assets_tests.operations.servers import VENV_BIN, background, kronos_env, wait_until
    from kronos_assets_tests.operations.test_postgres_backfill import _step_windows

    profile = {"symbols": SYMBOLS, "forecasters": ["random_walk"], "primary_model": "random_walk"}
    if lake:
        profile["warehouse"] = lake["config"]
    markets = {
        "symbols": SYMBOLS,
        "timeframes": {"1h": {"start": "2025-01-01", "history_bars": 64, "horizon": 6}},
        "exchanges": [{"id": "binance", "base_url": None, "options": {}}],
    }
    write_configs(root, markets=markets, profile=profile)
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(_instance_yaml(runs))
    (home / "workspace.yaml").write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_file": {
                            "relative_path": str(Path(__file__).resolve()),
                            "attribute": "location",
                            "location_name": "kronos_assets",
                            "working_directory": str(REPO),
                        }
                    }
                ]
            }
        )
    )
    timings = root / "timings.jsonl"
    env = kronos_env(root, home, {**pg.env(), **(lake["env"] if lake else {}), TIMINGS_VAR: str(timings)})
    settings = load_settings("demo", config_dir=root / "configs", home=root / "home")
    pool = settings.warehouse.pool_limit

    def cli(*args: str) -> str:
        p = subprocess.run(
            [str(VENV_BIN / "dagster"), *args], env=env, cwd=home, capture_output=True, text=True, timeout=300
        )
        if p.returncode:
            raise RuntimeError(p.stdout[-2000:] + p.stderr[-3000:])
        return p.stdout

    cli("instance", "concurrency", "set", "duckdb_write", str(pool))
    from datetime import date, timedelta

    first = date.fromisoformat(FIRST_DAY)
    partitions = [f"{first + timedelta(days=d):%Y-%m-%d}|{s.replace('/', '-')}" for d in range(days) for s in SYMBOLS]
    log = root / "daemon.log"
    saved = {k: os.environ.get(k) for k in env if k.startswith(("DAGSTER_PG", "KRONOS_LAKE"))}
    os.environ.update({k: env[k] for k in saved})
    try:
        with (
            background([str(VENV_BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, home, log) as daemon,
            dg.DagsterInstance.from_config(str(home)) as instance,
        ):
            t_submit = time.time()
            cli(
                "job",
                "backfill",
                "-w",
                "workspace.yaml",
                "-j",
                "candles_1h",
                "--partitions",
                ",".join(partitions),
                "--noprompt",
            )
            backfill_id = instance.get_backfills()[0].backfill_id
            done = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}

            def finished():
                recs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
                over = len(recs) == len(partitions) and all(r.dagster_run.status in done for r in recs)
                return recs if over else None

            records = wait_until(finished, RUNS_TIMEOUT_S, "backfill runs", interval_s=1.0, proc=daemon, log=log)
            failed = [r.dagster_run.run_id for r in records if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
            if failed:
                raise RuntimeError(f"{len(failed)} runs failed; daemon log tail:\n{log.read_text()[-3000:]}")
            steps = _step_windows(
                instance, [r.dagster_run.run_id for r in records], {"1h__raw_candles", "1h__clean_candles"}
            )
        wh = Warehouse(root / "home" / "demo" / "warehouse.duckdb", config=settings.warehouse)
        rows = wh.query("SELECT count(*) AS n FROM clean_candles")["n"][0]
        wh.close()
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    start = min(r.start_time for r in records)
    end = max(r.end_time for r in records)
    run_wall = sum(r.end_time - r.start_time for r in records)
    step_time = sum(b - a for a, b in steps)
    writes = [json.loads(line) for line in timings.read_text().splitlines()]
    per_partition = [w["s"] for w in writes]  # each run is one partition: two writes (merge raw, replace clean)
    return {
        "backend": backend,
        "runs_in_flight": runs,
        "duckdb_write_pool": pool,
        "partitions": len(partitions),
        "clean_rows": int(rows),
        "wall_s": end - start,
        "submit_to_last_end_s": end - t_submit,
        "partitions_per_min": len(partitions) / (end - start) * 60,
        "dagster_share": 1 - step_time / run_wall,
        "run_wall_mean_s": run_wall / len(records),
        "write_s_median": statistics.median(per_partition),
        "write_s_p95": sorted(per_partition)[max(0, int(0.95 * len(per_partition)) - 1)],
        "writes": len(writes),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--only", help="backend:runs, e.g. ducklake:4")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import boto3
    from moto.server import ThreadedMotoServer

    from kronos_assets_tests.operations.servers import postgres_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the S3 server's request log
    scenarios = [(b, n) for n in (4, 1) for b in ("embedded", "ducklake")]
    if args.only:
        b, n = args.only.split(":")
        scenarios = [(b, int(n))]
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3.start()
    results = []
    try:
        host, port = s3.get_host_and_port()
        boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).create_bucket(Bucket="bench")
        for i, (backend, runs) in enumerate(scenarios):
            with postgres_server(db="dagster") as pg:
                lake = None
                if backend == "ducklake":
                    import psycopg2

                    con = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname=pg.db)
                    con.autocommit = True
                    con.cursor().execute("CREATE DATABASE lake")
                    con.close()
                    lake = {
                        "config": {
                            "backend": "ducklake",
                            "data_path": f"s3://bench/run{i}/",
                            "write_pool_limit": 4,
                            "catalog": {"host": pg.host, "port": pg.port, "dbname": "lake", "user": pg.user},
                            "s3": {"endpoint": f"{host}:{port}", "region": "us-east-1", "use_ssl": False},
                        },
                        "env": {
                            "KRONOS_LAKE_PG_PASSWORD": pg.password,
                            "KRONOS_LAKE_S3_KEY_ID": "bench",
                            "KRONOS_LAKE_S3_SECRET": "bench",
                        },
                    }
                root = Path(tempfile.mkdtemp(prefix=f"bench-wh-{backend}-{runs}-"))
                try:
                    res = _scenario(backend, runs, args.days, root, pg, lake)
                finally:
                    shutil.rmtree(root, ignore_errors=True)
            results.append(res)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}), flush=True)
            _save(results, args.days)  # after each scenario: a long run interrupted keeps what it measured
    finally:
        s3.stop()


def _save(results: list[dict], days: int) -> None:
    (HERE / "results").mkdir(exist_ok=True)
    load = os.getloadavg()
    (HERE / "results" / "bench_warehouse.json").write_text(
        json.dumps(
            {
                "cpus": os.cpu_count(),
                "days": days,
                "symbols": SYMBOLS,
                "load_average_at_end": load,
                "note": "a shared machine (other work running): times are upper bounds",
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
