"""Warehouse bytes per forecast (one origin x model x series) at a realistic size, per table, in the layout before
schema version 5 (every path field DOUBLE) and now (close DOUBLE, the other path fields FLOAT), with a year's
projection for the demo profile, every path kept and with `retention: {paths_days: 90}`.

    .venv/bin/python benchmarks/bench_warehouse_bytes.py --warehouse <home>/demo/warehouse.duckdb   # ~1 min
    .venv/bin/python benchmarks/bench_warehouse_bytes.py            # makes a demo home first (48 bars, minutes)

A home of a few ticks is dominated by DuckDB's fixed cost per table (bench_disk.py's 150 KB per forecast), so the
rows of a real demo home (its forecasts, quantiles, paths and scores, every model) are laid out as ``--days`` of
hourly origins per series: origin i takes the rows of the home's i mod n-th origin scored for every model, its
timestamps shifted. Each table
is written alone into a fresh DuckDB file, in the writer's order (origin, series, model), and checkpointed, so it is
compressed as stored; its bytes are the file's used blocks (256 KiB each). Past one row group (122,880 rows) the
bytes per row no longer depend on the days, so a year is projected linearly (``--days 60`` shows it).

It also reports what the FLOAT fields change (close, and so every score, quantile and P(up), not at all) and
whether the space paths retention frees is reused: ``--days`` laid out in a warehouse of this release, the paths
of scored forecasts older than half of them pruned, then as many days again appended (used and free blocks after
each). Results go to benchmarks/results/bench_warehouse_bytes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import duckdb  # noqa: E402
import numpy as np  # noqa: E402

from kronos_assets.warehouse import Warehouse  # noqa: E402
from kronos_assets.warehouse.paths_retention import prune_paths  # noqa: E402

TABLES = ("forecasts", "forecast_steps", "forecast_paths", "evaluations")
FLOAT_FIELDS = ("open", "high", "low", "volume", "amount")
HOURS_PER_YEAR = 24 * 365
RETENTION_DAYS = 90


def demo_home(root: Path) -> Path:
    """A fresh demo home after its first run (48 bars of both series, every model, scored where closed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRONOS_", "DAGSTER_HOME"))}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kronos_assets.cli.main",
            "--profile",
            "demo",
            "--home",
            str(root),
            "run",
            "--now",
            "2026-03-31T01:05",
        ],
        env=env,
        cwd=HERE.parent,
        check=True,
        capture_output=True,
    )
    return root / "demo" / "warehouse.duckdb"


def layout_ddl(scratch: Path, layout: str) -> dict[str, str]:
    """CREATE TABLE statements of a new warehouse (this release's tables), or with every path field DOUBLE."""
    wh = scratch / f"ddl_{layout}.duckdb"
    Warehouse(wh).migrate()
    con = duckdb.connect(str(wh))
    if layout == "before":
        for f in FLOAT_FIELDS:
            con.execute(f"ALTER TABLE forecast_paths ALTER COLUMN {f} TYPE DOUBLE[]")
    ddl = dict(
        con.execute(
            f"SELECT table_name, sql FROM duckdb_tables() WHERE table_name IN ({', '.join(repr(t) for t in TABLES)})"
        ).fetchall()
    )
    con.close()
    return ddl


def synthesised(table: str, days: int, start_day: int = 0) -> str:
    """``table``'s rows for ``days`` of hourly origins per series (from day ``start_day``), taken from src's
    origins scored for every model (as all but the newest horizon of a long record are)."""
    shift = "(m.origin - m.src)"
    moved = {
        "forecasts": f"m.origin AS origin, p.data_start + {shift} AS data_start, p.data_end + {shift} AS data_end",
        "forecast_steps": f"m.origin AS origin, p.ts + {shift} AS ts",
        "forecast_paths": "m.origin AS origin",
        "evaluations": f"m.origin AS origin, p.ts + {shift} AS ts, p.scored_bar + {shift} AS scored_bar",
    }[table]
    inner = {"forecasts": "", "forecast_steps": ", p.step", "forecast_paths": ", p.path", "evaluations": ", p.step"}
    return f"""
        WITH whole AS (SELECT symbol, origin FROM src.evaluations GROUP BY ALL
                       HAVING count(*) = any_value(horizon) * (SELECT count(DISTINCT model) FROM src.forecasts)),
             o AS (SELECT symbol, origin, row_number() OVER (PARTITION BY symbol ORDER BY origin) - 1 AS k,
                          count(*) OVER (PARTITION BY symbol) AS n FROM whole),
             m AS (SELECT o.symbol, o.origin AS src, TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_hours(i) AS origin
                   FROM range({start_day * 24}, {(start_day + days) * 24}) r(i) JOIN o ON o.k = i % o.n)
        SELECT p.* REPLACE ({moved}) FROM src.{table} p JOIN m ON p.symbol = m.symbol AND p.origin = m.src
        ORDER BY m.origin, p.symbol, p.model{inner[table]}"""


def fill(con: duckdb.DuckDBPyConnection, source: Path, table: str, days: int, start_day: int = 0) -> None:
    con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"INSERT INTO {table} BY NAME {synthesised(table, days, start_day)}")
    con.execute("DETACH src")


def table_bytes(source: Path, scratch: Path, ddl: dict[str, str], days: int) -> dict[str, dict[str, float]]:
    out = {}
    for table in TABLES:
        dst = scratch / f"{table}.duckdb"
        con = duckdb.connect(str(dst))
        con.execute(ddl[table])
        fill(con, source, table, days)
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        con.execute("CHECKPOINT")
        used, size = con.execute("SELECT used_blocks, block_size FROM pragma_database_size()").fetchone()
        con.close()
        out[table] = {"rows": rows, "bytes": used * size}
        dst.unlink()
    forecasts = out["forecasts"]["rows"]
    for v in out.values():
        v["bytes_per_forecast"] = round(v["bytes"] / forecasts, 1)
    return out


def precision(source: Path, scratch: Path, ddl: dict[str, str]) -> dict[str, float]:
    """The largest relative change the FLOAT fields make to any stored path value, and to close (0: every score,
    quantile and P(up) is computed from close)."""
    dst = scratch / "precision.duckdb"
    con = duckdb.connect(str(dst))
    con.execute(ddl["forecast_paths"])
    con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
    con.execute("INSERT INTO forecast_paths BY NAME SELECT * FROM src.forecast_paths")
    out = {}
    for f in (*FLOAT_FIELDS, "close"):
        old = con.execute(
            f"SELECT flatten(list({f} ORDER BY symbol, origin, model, path)) FROM src.forecast_paths"
        ).fetchone()[0]
        new = con.execute(
            f"SELECT flatten(list({f} ORDER BY symbol, origin, model, path)) FROM forecast_paths"
        ).fetchone()[0]
        a, b = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
        ok = np.isfinite(a) & (a != 0)
        out[f] = float(np.max(np.abs(b[ok] / a[ok] - 1))) if ok.any() else 0.0
    con.close()
    dst.unlink()
    return out


def _blocks(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, float]:
    """The file's size and its used and free blocks, in MB."""
    size, used, free = con.execute("SELECT block_size, used_blocks, free_blocks FROM pragma_database_size()").fetchone()
    return {
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "used_mb": round(used * size / 1e6, 1),
        "free_mb": round(free * size / 1e6, 1),
    }


def retention_reuse(source: Path, scratch: Path, days: int) -> dict[str, dict[str, float]]:
    """The file with ``days`` laid out, after pruning the paths of scored forecasts older than days/2, and after
    as many days again: pruning turns the paths' blocks free, and the next days' rows are written into them."""
    path = scratch / "reuse.duckdb"
    wh = Warehouse(path)
    wh.migrate()  # a warehouse of this release (nothing to migrate when pruning opens it)
    out = {}

    def phase(name: str, work) -> None:
        con = duckdb.connect(str(path))
        work(con)
        con.execute("CHECKPOINT")
        out[name] = _blocks(con, path)
        con.close()

    phase("laid_out", lambda con: [fill(con, source, t, days) for t in TABLES])
    pruned = prune_paths(wh, days // 2, deadline_s=3600)
    phase("after_pruning", lambda con: None)
    phase("after_as_many_days_again", lambda con: [fill(con, source, t, days, start_day=days) for t in TABLES])
    path.unlink()
    out["pruned"] = {"forecasts": pruned.forecasts, "rows": pruned.rows, "seconds": round(pruned.seconds, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, help="a home's warehouse.duckdb (default: make a demo home)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--no-reuse", action="store_true", help="skip the retention space-reuse measurement")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench_wh_bytes_"))
    source = args.warehouse or demo_home(scratch / "home")
    con = duckdb.connect(str(source), read_only=True)
    series, models = con.execute("SELECT count(DISTINCT symbol), count(DISTINCT model) FROM forecasts").fetchone()
    con.close()
    year = series * models * HOURS_PER_YEAR
    result: dict = {
        "source": str(source),
        "days": args.days,
        "series": series,
        "models": models,
        "forecasts_per_year": year,
    }
    for layout in ("before", "after"):
        t0 = time.perf_counter()
        ddl = layout_ddl(scratch, layout)
        tables = table_bytes(source, scratch, ddl, args.days)
        per = {t: v["bytes_per_forecast"] for t, v in tables.items()}
        kept = sum(v for t, v in per.items() if t != "forecast_paths")
        result[layout] = {
            "tables": tables,
            "bytes_per_forecast": round(sum(per.values())),
            "year_gb_every_path": round(sum(per.values()) * year / 1e9, 3),
            f"year_gb_paths_{RETENTION_DAYS}_days": round(
                (kept * year + per["forecast_paths"] * series * models * 24 * RETENTION_DAYS) / 1e9, 3
            ),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(layout, json.dumps(result[layout]), flush=True)
    ddl = layout_ddl(scratch, "after")
    result["largest_relative_change"] = precision(source, scratch, ddl)
    if not args.no_reuse:
        result["retention_reuse_bytes"] = retention_reuse(source, scratch, args.days)
    out = HERE / "results" / "bench_warehouse_bytes.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("before", "after")}, indent=2))


if __name__ == "__main__":
    main()
