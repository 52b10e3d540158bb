"""Disk per tick on the demo profile: the Dagster instance (before and after a retention round), the warehouse
(bytes per origin per model per series, each table's share) and the bytes a tick writes to publish/.

    .venv/bin/python benchmarks/bench_disk.py            # a fresh home under /tmp, 3 ticks (~3 min on 2 busy cores)
    .venv/bin/python benchmarks/bench_disk.py --ticks 5
    .venv/bin/python benchmarks/bench_disk.py --from-home /tmp/soak_fresh720b --now 2026-03-15T21:05 --ticks 4

A fresh home has no scores in its first day, so its latest files, scoreboards and charts are smaller than a
running record's: ``--from-home`` ticks on a copy of a home that has weeks of them (a soak's, bench_soak.py), from
``--now`` (the hour after its last tick), and measures only the bytes written to publish/ (the first tick, which
an upgrade of the code makes republish the site, left out of the mean); results in bench_disk_from_home.json.

Tick 1 is the first run (``--backfill-bars 2``); ticks 2.. each add one hour (``--backfill-bars 1``) with
``--now`` advancing. Bytes written to publish/ per tick count every file created or rewritten by the tick (size
after the tick), each stored file once (a latest name is a hard link to its versioned copy; ``publish_bytes_by_name``
counts it per name); how the publish step's cost depends on the history: bench_publish.py. The instance is
measured on disk (every file under <home>/demo/dagster); then every run is pruned
(as after 14 days); what retention keeps (the newest event of each asset partition) is projected to a year of
hourly partitions, at twice the events' bytes for SQLite's row and index overhead. A table's bytes per
row are measured by copying its rows many times into a fresh DuckDB file (checkpointed, so compressed as stored).
Results go to
benchmarks/results/bench_disk.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
TICKS_PER_YEAR = 24 * 365


def tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """path -> (size, mtime_ns, inode) of every file below root."""
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def size(root: Path) -> int:
    """Bytes stored below root, each file once (hard links share one)."""
    return sum({ino: s for s, _, ino in tree(root).values()}.values()) if root.exists() else 0


def written(before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]) -> tuple[int, int, int]:
    """Bytes of the files created or replaced (each stored file once: a latest name is a hard link to its versioned
    copy), their count, and their bytes counted per name."""
    changed = [k for k, v in after.items() if before.get(k) != v]
    return (sum({after[k][2]: after[k][0] for k in changed}.values()), len(changed), sum(after[k][0] for k in changed))


def table_bytes(warehouse: Path, scratch: Path, copies: int = 200) -> dict[str, dict[str, float]]:
    """Stored bytes per row of each table: its rows copied ``copies`` times into a fresh file (checkpointed, so
    compressed as DuckDB stores them), less an empty file's size, over the rows. Copies lie next to each other, so
    the scalar columns compress a little better than in a real year; the sample paths (doubles) do not."""
    import duckdb

    src = duckdb.connect(str(warehouse), read_only=True)
    tables = [r[0] for r in src.sql("SELECT table_name FROM duckdb_tables()").fetchall()]
    src.close()
    empty = scratch / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    floor = empty.stat().st_size
    out = {}
    for t in tables:
        dst = scratch / f"{t}.duckdb"
        con = duckdb.connect(str(dst))
        con.execute(f"ATTACH '{warehouse}' AS src (READ_ONLY)")
        rows = con.sql(f"SELECT count(*) FROM src.{t}").fetchone()[0]
        con.execute(f"CREATE TABLE {t} AS SELECT s.* FROM src.{t} s, range({copies if rows else 0})")
        con.execute("DETACH src")
        con.execute("CHECKPOINT")
        con.close()
        stored = dst.stat().st_size - floor
        out[t] = {"rows": rows, "bytes_per_row": round(stored / (rows * copies), 1) if rows else None}
        dst.unlink()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=3)
    parser.add_argument("--now", default="2026-03-30T10:05")
    parser.add_argument("--warehouse", type=Path, help="only measure this warehouse file's bytes per row")
    parser.add_argument("--from-home", type=Path, help="tick on a copy of this home: publish bytes only (see above)")
    args = parser.parse_args()
    if args.warehouse:
        print(json.dumps(table_bytes(args.warehouse, Path(tempfile.mkdtemp(prefix="bench_disk_"))), indent=1))
        return
    root = Path(tempfile.mkdtemp(prefix="bench_disk_"))
    if args.from_home:
        import shutil

        root = root / "home"
        shutil.copytree(args.from_home, root, symlinks=True)
    os.environ["KRONOS_HOME"] = str(root)
    os.environ["KRONOS_PROFILE"] = "demo"
    import dagster as dg

    from kronos_assets.cli.main_job import run_main_job
    from kronos_assets.configuration.settings import load_settings
    from kronos_assets.orchestration.retention import prune_instance

    settings = load_settings()
    start = datetime.fromisoformat(args.now).replace(tzinfo=timezone.utc)
    ticks = []
    for i in range(args.ticks):
        pub0, dag0 = tree(settings.publish_dir) if settings.publish_dir.exists() else {}, size(settings.dagster_home)
        t0 = time.perf_counter()
        run_main_job(
            settings,
            backfill_bars=2 if i == 0 and not args.from_home else 1,
            now=start + timedelta(hours=i),
            log=lambda _: None,
        )
        pub_bytes, pub_files, pub_names = written(pub0, tree(settings.publish_dir))
        ticks.append(
            {
                "tick": i + 1,
                "wall_s": round(time.perf_counter() - t0, 1),
                "publish_bytes": pub_bytes,
                "publish_bytes_by_name": pub_names,
                "publish_files": pub_files,
                "instance_bytes_added": size(settings.dagster_home) - dag0,
            }
        )
        print(ticks[-1], flush=True)
    if args.from_home:
        after = [t["publish_bytes"] for t in ticks[1:]]
        result = {
            "from_home": str(args.from_home),
            "now": args.now,
            "ticks": ticks,
            "publish_bytes_per_tick_after_first": after,
            "publish_mb_per_tick_mean": round(sum(after) / max(len(after), 1) / 1e6, 3),
        }
        out = HERE / "results" / "bench_disk_from_home.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "ticks"}, indent=2))
        return
    instance = dg.DagsterInstance.local_temp(tempdir=str(settings.dagster_home))
    runs = instance.get_runs_count()
    before = size(settings.dagster_home)
    outcome = prune_instance(instance, now=datetime.now(timezone.utc) + timedelta(days=15), deadline_s=600)
    instance.dispose()
    after = size(settings.dagster_home)
    index = settings.dagster_home / "history" / "runs" / "index.db"
    import sqlite3

    con = sqlite3.connect(index)
    kept_rows, kept_bytes = con.execute("SELECT count(*), sum(length(event)) FROM event_logs").fetchone()
    con.close()
    # What retention keeps grows with the partitions, not the runs: per series a year holds 8760 bars of
    # forecasts, evaluations and published, and 365 days of raw and clean candles (the checks' newest: constant).
    year_events = len(settings.symbols) * (3 * TICKS_PER_YEAR + 2 * 365)
    tables = table_bytes(settings.warehouse_path, root)
    forecasts = tables.get("forecasts", {}).get("rows", 0)  # one row per (symbol, origin, model)
    per_forecast = {
        t: v["rows"] / forecasts * v["bytes_per_row"]
        for t, v in tables.items()
        if forecasts and v["rows"] and t in ("forecasts", "forecast_steps", "forecast_paths", "evaluations")
    }
    steady = ticks[1:] or ticks
    per_tick = sum(t["instance_bytes_added"] for t in steady) / len(steady)
    result = {
        "profile": "demo",
        "series": len(settings.symbols),
        "models": len(settings.forecasters),
        "n_paths": settings.sampling.n_paths,
        "ticks": ticks,
        "publish_bytes_per_tick_after_first": [t["publish_bytes"] for t in ticks[1:]],
        "instance": {
            "runs": runs,
            "bytes_before_prune": before,
            "bytes_after_prune": after,
            "pruned_runs": outcome.runs,
            "kept_events": outcome.kept_events,
            "index_db_bytes": index.stat().st_size,
            "kept_rows": kept_rows,
            "kept_event_bytes": kept_bytes,
            "kept_year_gb": round(2 * year_events * kept_bytes / max(kept_rows, 1) / 1e9, 3),
            "unpruned_bytes_per_tick": round(per_tick),
            "unpruned_year_gb": round(per_tick * TICKS_PER_YEAR / 1e9, 2),
        },
        "warehouse": {
            "tables": tables,
            "forecast_rows": forecasts,
            "bytes_per_origin_model_series": round(sum(per_forecast.values())),
            "forecast_paths_share": round(
                per_forecast.get("forecast_paths", 0) / max(sum(per_forecast.values()), 1), 3
            ),
        },
        "home": str(root),
    }
    out = HERE / "results" / "bench_disk.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "ticks"}, indent=2, default=str))


if __name__ == "__main__":
    main()
