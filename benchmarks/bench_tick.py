"""The fixed cost of a tick: `kronos-assets run` on the demo profile (2 series, 1h, 4 models, 30 paths), timed as a
user runs it, process start included.

1. a fresh home, the default 48-bar backfill (not a target: the first run computes the window);
2. the same command again: nothing new (target <= 15 s);
3. --now one bar later: one new bar for 2 series (target <= 25 s);
4. that command again: nothing new once more.

Each run's own lines (its Dagster runs and their times) are kept, and the rest of its wall time (process start,
imports, planning) is reported beside them; a separate process measures the imports alone. The machine's load
average is printed with every figure: on a shared machine the times move with it.

    .venv/bin/python benchmarks/bench_tick.py [--now 2026-03-30T12:05] [--home DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "kronos_assets.cli.main"]
TARGETS = {"nothing new": 15.0, "one new bar": 25.0}
_RUN_LINE = re.compile(r"^\[run \d+\] (.*)$")
_DONE = re.compile(r"done in ([0-9.]+) s")


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def _tick(home: Path, now: str, what: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRONOS_", "DAGSTER_HOME"))}
    load = _load()
    t0 = time.perf_counter()
    done = subprocess.run(
        [*CLI, "--profile", "demo", "--home", str(home), "run", "--now", now],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{what}: kronos-assets run failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    runs, label = [], None
    for line in done.stdout.splitlines():
        if m := _RUN_LINE.match(line.strip()):
            label = m.group(1)
        elif (m := _DONE.search(line)) and label:
            runs.append({"run": label, "s": float(m.group(1))})
            label = None
    in_runs = sum(r["s"] for r in runs)
    return {
        "tick": what,
        "now": now,
        "wall_s": round(wall, 1),
        "dagster_runs": runs,
        "outside_runs_s": round(wall - in_runs, 1),
        "load_before": load,
        "load_after": _load(),
        "target_s": TARGETS.get(what),
    }


def _imports() -> float:
    code = (
        "import time; t = time.perf_counter(); import kronos_assets.cli.main, kronos_assets.cli.main_job; "
        "print(time.perf_counter() - t)"
    )
    return round(
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO).stdout.strip()), 2
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--now", default="2026-03-30T12:05", help="the first tick's time (replay data: <= 2026-03-31)")
    parser.add_argument("--home", type=Path, default=None, help="a fresh folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_tick.json")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="bench_tick_"))
    later = (datetime.fromisoformat(args.now) + timedelta(hours=1)).isoformat(timespec="minutes")
    imports = _imports()
    ticks = [
        _tick(home, args.now, "first run (48-bar window)"),
        _tick(home, args.now, "nothing new"),
        _tick(home, later, "one new bar"),
        _tick(home, later, "nothing new"),
    ]
    result = {"cores": os.cpu_count(), "imports_s": imports, "ticks": ticks}
    print(f"{os.cpu_count()} cores; importing the CLI and main job: {imports} s (load {_load()})")
    print(f"{'tick':28} {'wall s':>7} {'target':>7} {'outside runs s':>15} {'load':>10}  Dagster runs")
    for t in ticks:
        runs = "; ".join(f"{r['run'][:60]} {r['s']} s" for r in t["dagster_runs"]) or "none"
        target = f"{t['target_s']:.0f}" if t["target_s"] else "-"
        print(
            f"{t['tick']:28} {t['wall_s']:7.1f} {target:>7} {t['outside_runs_s']:15.1f} "
            f"{t['load_before']:>4}-{t['load_after']:<5}  {runs}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
