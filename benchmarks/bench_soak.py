"""The soak benchmark (issue 25): consecutive hourly ticks of `kronos-assets run` on the demo profile, `--now`
advancing one hour a tick, from a fresh home or from one pre-grown to a year; per tick the wall time, peak RSS of
the process tree, bytes written, the Dagster instance's size and where the time goes (per stage).

    .venv/bin/python benchmarks/bench_soak.py --ticks 24                      # from a fresh home
    .venv/bin/python benchmarks/bench_soak.py --ticks 24 --pregrown-days 365  # from a year of history
    .venv/bin/python benchmarks/bench_soak.py                                  # 720 ticks (30 days), ~3 h on 2 cores
    .venv/bin/python benchmarks/bench_soak.py --home H --commit HEAD           # the same, resumable from H
    .venv/bin/python benchmarks/bench_soak.py --home H --resume                # goes on after its last tick

Each tick is `kronos-assets --profile demo --home H run --now T --backfill-bars 1` as a subprocess (what an
hourly schedule costs, process start included). Measured per tick: wall; peak RSS summed over the process tree
(polled from /proc every 0.1 s) and the largest process's own peak (getrusage); bytes the tree wrote to disk
(getrusage's block writes: the warehouse, the instance, publish/ and logs); bytes of the files the tick created
or rewrote under publish/; the warehouse file's size; the instance's size (every file under <home>/demo/dagster);
the manifest's size. Where the time goes: each Dagster run's steps read back from the instance, summed per stage
(candles, forecasts, evaluations, publish, track record), Dagster's own share of each run (run time less its
steps), and the time outside the runs (process start, imports, planning, the tick's retention round).

The daily retention job runs every 24 ticks, on the replay clock: ``--now`` moves an hour a tick while the runs
are stamped with the wall clock, so the round prunes the runs whose tick's ``--now`` lies more than
``retention.run_days`` before the current one (orchestration.retention.prune_instance, as the daily job calls
it, with its deadline); its seconds are reported beside the tick it follows, not inside the tick's wall. The
round each `kronos-assets run` does after its work finds nothing that old on the wall clock, as in an hour's life.

``--pregrown-days D`` starts from a home holding D days of history, grown cheaply rather than by 24·D ticks:
the candles of those days fetched for real (one candles run over every day, through the graph); one real tick
at the start of the history with a 72-bar backfill (forecasts of 4 models for 2 series, 48 of them scored); its
48 scored origins' warehouse rows (forecasts, steps, paths, evaluations: every table with an ``origin``) replicated
forward in 48-hour blocks with every timestamp shifted up to the soak's start, the newest day's scores left for
the ticks to make, and the scores' running aggregates made again from them (warehouse.score_sums, where present); and
the matching publications: per replicated origin the history and paths files (hard links to
the seed's: same bytes, so the same sha256 in the manifest), one hash-chained record per hour
(publishing.chain.append_record) and their manifest entries, sealed into index parts as the publisher seals
them (publishing.parts.seal; one manifest file where the measured code has no parts). Not grown: the Dagster instance
keeps the
seed's runs and the candles run, not a year of per-partition materialisations (retention would keep the newest
of each: bench_disk.py projects their size). Then one real tick at the soak's start settles the home (it
publishes the new head and recomputes the track record over the whole history) before the measured ticks.

Results: benchmarks/results/soak_<label>.json (settings, every tick, the summary), soak_<label>.csv (one row per
tick) and soak_<label>.svg (wall and its stages, RSS, instance and warehouse size per tick). The summary prints
the least-squares slope of per-tick wall, as its change over the run in % of its mean (issue 25: under 5 %), and
the per-stage means. The machine's load average is recorded with every tick: on a shared machine times move
with it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_disk import size, tree, written  # noqa: E402  (the file-tree helpers measure publish/ the same way)

HOUR = timedelta(hours=1)
STAGES = ("candles", "forecasts", "evaluations", "publish", "track_record")
PARTS = ("startup", "planning", *STAGES, "dagster", "end")  # a tick's wall, in order
SEED_BARS = 72  # the seed tick's backfill: 48 scored origins (the replicated block) and a day not yet scored
BLOCK = 48  # origins per replicated block
RESULTS = HERE / "results"
STATE = "soak_state.json"  # in the soak's home: what --resume goes on from


def stage_of(step_key: str) -> str:
    """The stage a Dagster step belongs to (its asset checks count with it)."""
    name = step_key.split("__", 1)[-1]
    for stage, marks in (
        ("candles", ("raw_candles", "clean_candles")),
        ("forecasts", ("forecasts",)),
        ("evaluations", ("evaluations",)),
        ("publish", ("published",)),
        ("track_record", ("track_record",)),
    ):
        if name.startswith(marks):
            return stage
    return "other"


# ------------------------------------------------------------------------------------------------ one tick


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants now (0 once gone)."""
    kids, total, todo = _children(), 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def home_settings(root: Path):
    """The demo profile's settings for the home at ``root`` (its warehouse, publish, instance and log paths)."""
    os.environ["KRONOS_HOME"], os.environ["KRONOS_PROFILE"] = str(root), "demo"
    from kronos_assets.configuration.settings import load_settings

    return load_settings()


def warehouse_bytes(path: Path) -> int:
    """The warehouse file and its write-ahead log."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def cli(source: Path) -> list[str]:
    """What the kronos-assets console script runs, for the code under test: the entry point its pyproject.toml
    declares (it moved from kronos_assets.cli to kronos_assets.cli.main in the layer re-cut, and the script gained
    its own exit in cli.main.cli, which a soak must measure too)."""
    entry = tomllib.loads((source / "pyproject.toml").read_text())["project"]["scripts"]["kronos-assets"]
    module, function = entry.split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


_RUN_LINE = re.compile(r"^\[run \d+\] ")
_DONE_LINE = re.compile(r"^\s+done in [0-9.]+ s$")


def phases(lines: list[tuple[float, str]], wall: float) -> dict[str, float]:
    """The tick's wall split by its printed lines (time stamped as they arrive): start-up (process start, imports,
    settings, the replay's clock) up to the first line; planning (opening the instance, recovery, deciding what is
    missing, building the definitions) up to each "[run N]" line; the runs, each to its "done in" line; and the
    end (the tick's retention round, closing, the interpreter's exit) from the last of those to the exit."""
    if not lines:
        return {"startup_s": wall, "planning_s": 0.0, "in_runs_s": 0.0, "end_s": 0.0}
    startup, planning, in_runs, mark, opened = lines[0][0], 0.0, 0.0, lines[0][0], None
    for t, line in lines:
        if _RUN_LINE.match(line):
            planning += t - mark
            opened = t
        elif _DONE_LINE.match(line) and opened is not None:
            in_runs += t - opened
            mark, opened = t, None
    if mark == lines[0][0] and not in_runs:  # no run: the rest up to the summary lines is planning
        planning = next((t for t, line in lines if "already stored" in line), mark) - mark
        mark += planning
    return {"startup_s": startup, "planning_s": planning, "in_runs_s": in_runs, "end_s": wall - mark}


def run_cli(root: Path, now: datetime, backfill_bars: int, timeout_s: float, source: Path = REPO) -> dict:
    """One `kronos-assets run` as a subprocess: wall, its phases (``phases``), peak RSS of its process tree
    (polled) and of its largest process, CPU seconds and the bytes its tree wrote to disk (its rusage)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRONOS_", "DAGSTER_HOME"))}
    env["PYTHONPATH"] = str(source)  # ahead of the editable install's finder: the code under test
    env["PYTHONUNBUFFERED"] = "1"  # lines arrive as printed: their times split the wall
    cmd = [
        *cli(source),
        "--profile",
        "demo",
        "--home",
        str(root),
        "run",
        "--now",
        f"{now:%Y-%m-%dT%H:%M}",
        "--backfill-bars",
        str(backfill_bars),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=source, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(
        target=lambda: lines.extend((time.perf_counter() - t0, line.rstrip("\n")) for line in proc.stdout), daemon=True
    )
    reader.start()
    peak, deadline = 0, t0 + timeout_s
    while True:  # psutil is not a dependency: /proc every 0.1 s; wait4 gives this child's own rusage
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss(proc.pid))
        if time.perf_counter() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise SystemExit(f"tick --now {now:%Y-%m-%d %H:%M} ran past {timeout_s:.0f} s; killed")
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    reader.join(timeout=30)
    text = "\n".join(line for _, line in lines)
    if proc.returncode != 0:
        raise SystemExit(f"tick --now {now:%Y-%m-%d %H:%M} failed (exit {proc.returncode}):\n{text[-3000:]}")
    return {
        "wall_s": wall,
        **phases(lines, wall),
        "peak_tree_rss_mb": peak / 1e6,
        "max_process_rss_mb": usage.ru_maxrss / 1e3,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "disk_written_mb": usage.ru_oublock * 512 / 1e6,
        "output": text,
    }


def stage_times(dagster_home: Path, since: float) -> dict:
    """Per stage, the seconds of the steps of every run created after ``since`` (epoch); the runs' own time."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        stages = dict.fromkeys((*STAGES, "other"), 0.0)
        runs_s, runs = 0.0, []
        created = datetime.fromtimestamp(since, timezone.utc)
        for record in instance.get_run_records(filters=dg.RunsFilter(created_after=created)):
            run_s = (record.end_time or 0) - (record.start_time or 0)
            steps = instance.get_run_step_stats(record.dagster_run.run_id)
            for s in steps:
                stages[stage_of(s.step_key)] += (s.end_time or 0) - (s.start_time or 0)
            runs_s += run_s
            runs.append(record.dagster_run.job_name)
        return {"stages": stages, "runs_s": runs_s, "runs": sorted(runs)}
    finally:
        instance.dispose()


# ------------------------------------------------------------------------------------------------ retention


@dataclass
class ReplayClock:
    """Which wall-clock instant each replay time was reached at: runs carry wall-clock creation times."""

    marks: list[tuple[datetime, float]] = field(default_factory=list)  # (replay now, wall epoch before its tick)

    def mark(self, replay: datetime) -> None:
        self.marks.append((replay, time.time()))

    def wall_cutoff(self, replay_cutoff: datetime) -> float | None:
        """The wall time of the first tick at or after ``replay_cutoff``: runs created before it belong to ticks
        older than the cutoff (None: no tick is that old yet)."""
        if not self.marks or self.marks[0][0] >= replay_cutoff:
            return None
        return next((wall for replay, wall in self.marks if replay >= replay_cutoff), time.time())


def daily_retention(dagster_home: Path, clock: ReplayClock, replay_now: datetime, run_days: int) -> dict:
    """The daily job's round (retention.prune_instance with the job's deadline) at replay time ``replay_now``."""
    import dagster as dg

    from kronos_assets.orchestration.retention import JOB_ROUND_S, prune_instance

    cutoff = clock.wall_cutoff(replay_now - timedelta(days=run_days))
    if cutoff is None:
        return {"retention_s": 0.0, "runs_pruned": 0}
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        outcome = prune_instance(
            instance, run_days, JOB_ROUND_S, now=datetime.fromtimestamp(cutoff, timezone.utc) + timedelta(days=run_days)
        )
    finally:
        instance.dispose()
    return {"retention_s": round(outcome.seconds, 2), "runs_pruned": outcome.runs}


# ------------------------------------------------------------------------------------------------ pre-growing


def _candles_run(settings, start: datetime, first_day: datetime, last_day: datetime) -> float:
    """Every symbol's candle days first_day..last_day in one run through the graph (real replayed candles)."""
    from kronos_assets.cli.main_job import QUIET, instance_for
    from kronos_assets.defs.clock import now_tag
    from kronos_assets.defs.factory import build_definitions
    from kronos_assets.defs.names import candles_job_name
    from kronos_assets.defs.partitions import RANGE_END, RANGE_START, day_key
    from kronos_assets.defs.resources import build_resources

    t0 = time.perf_counter()
    defs = build_definitions(settings, build_resources(settings))
    instance = instance_for(settings)
    try:
        for tf in settings.timeframes:
            job = defs.resolve_job_def(candles_job_name(tf.name))
            result = job.execute_in_process(
                instance=instance,
                run_config=QUIET,
                raise_on_error=False,
                tags={
                    RANGE_START: str(day_key(settings.symbols[0], first_day)),
                    RANGE_END: str(day_key(settings.symbols[-1], last_day)),
                    **now_tag(start),
                },
            )
            if not result.success:
                raise SystemExit(f"pre-growing: the candles run {result.run_id} failed (see {settings.log_path})")
    finally:
        instance.dispose()
    return time.perf_counter() - t0


def _replicate_rows(warehouse: Path, newest_start: datetime) -> dict:
    """The seed's 48 scored origins copied forward in 48-hour blocks (every TIMESTAMPTZ column shifted) up to the
    origin of the soak's start, in every table keyed by origin; the forecasts of the last day before it left
    unscored, as a live record has them. Returns counts."""
    import duckdb

    con = duckdb.connect(str(warehouse))
    try:
        tables = [
            r[0]
            for r in con.sql(
                "SELECT DISTINCT table_name FROM information_schema.columns WHERE column_name = 'origin' ORDER BY 1"
            ).fetchall()
        ]
        newest_seed = con.sql("SELECT max(origin) FROM forecasts").fetchone()[0]
        scored = con.sql("SELECT max(origin) FROM evaluations").fetchone()[0]
        if scored is None:
            raise SystemExit(f"pre-growing: the seed tick scored nothing ({warehouse} evaluations is empty)")
        lag = newest_seed - scored  # a live record's newest scored origin lies this far behind its newest
        lo = scored - (BLOCK - 1) * HOUR
        blocks = math.ceil((newest_start - scored) / (BLOCK * HOUR))
        con.execute("BEGIN")
        for t in tables:
            con.execute(f"DELETE FROM {t} WHERE origin > ?", [scored])  # the seed's unscored day
            stamps = [
                r[0]
                for r in con.sql(
                    f"SELECT column_name FROM information_schema.columns WHERE table_name = "
                    f"'{t}' AND data_type LIKE 'TIMESTAMP%'"
                ).fetchall()
            ]
            shifted = ", ".join(f"{c} + to_hours({BLOCK} * r._k) AS {c}" for c in stamps)
            con.execute(
                f"INSERT INTO {t} SELECT {t}.* REPLACE ({shifted}) FROM {t}, range(1, {blocks + 1}) r(_k) "
                f"WHERE {t}.origin >= ?",
                [lo],
            )
            con.execute(f"DELETE FROM {t} WHERE origin > ?", [newest_start])
        con.execute("DELETE FROM evaluations WHERE origin > ?", [newest_start - lag])
        try:  # the running aggregates of the scores (schema 6 on), made again from every score as a migration does
            from kronos_assets.warehouse.score_sums import rebuilder
        except ImportError:  # older code: the track record reads the scores themselves
            rebuilder = None
        if rebuilder is not None:
            rebuilder(None)(con)
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
        counts = {t: con.sql(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
        span = con.sql("SELECT min(origin), max(origin) FROM forecasts").fetchone()
    finally:
        con.close()
    return {"rows": counts, "origins": [str(span[0]), str(span[1])], "blocks": blocks}


def _replicate_publications(publish: Path, first: datetime, last: datetime) -> int:
    """History and paths files for every hourly origin in (first, last] (hard links to the seed's file of the same
    hour of its block), one chain record per origin, and their manifest entries as an hourly publisher leaves them
    (sealed into index parts by publishing.parts.seal where the code has parts). Returns the records added."""
    from bench_verify import FastStore

    from kronos_assets.publishing import manifest as mf
    from kronos_assets.publishing.chain import append_record
    from kronos_assets.publishing.keys import MANIFEST_KEY, origin_slug
    from kronos_assets.publishing.store import IMMUTABLE_CACHE, MANIFEST_CACHE, Artifact

    try:
        from kronos_assets.publishing.parts import seal
    except ImportError:  # a release whose manifest is one file listing every object
        seal = None
    store = FastStore(publish)
    manifest, rebuilt = mf.read_manifest(store)
    if rebuilt:
        raise SystemExit(f"pre-growing: {rebuilt}")
    objects, index = manifest["objects"], manifest.get("index")
    slug = lambda t: origin_slug(t.isoformat())  # noqa: E731
    # The seed's slug -> its history and paths keys, from the folder (the manifest may list them in index parts).
    per_origin: dict[str, list[str]] = {}
    for path in [*publish.glob("series/*/*/history/*.json"), *publish.glob("series/*/*/paths/*.parquet")]:
        per_origin.setdefault(path.name.split(".")[0], []).append(path.relative_to(publish).as_posix())
    seed_origins = sorted(t for t in (first - i * HOUR for i in range(BLOCK)) if slug(t) in per_origin)
    if not seed_origins:
        raise SystemExit(f"pre-growing: no published history for origins up to {first} in {publish}")
    entries: dict[str, dict] = {}
    head, t, added = manifest.get("chain"), first + HOUR, 0
    while t <= last:
        source = seed_origins[((t - first) // HOUR - 1) % len(seed_origins)]
        fresh = {}
        for key in per_origin[slug(source)]:
            new = key.replace(slug(source), slug(t))
            if not (publish / new).exists():
                os.link(publish / key, publish / new)
            if key not in entries:
                entries[key] = mf.entry(Artifact.of(key, (publish / key).read_bytes(), IMMUTABLE_CACHE))
            objects[new] = entries[key]
            fresh[new] = entries[key]["sha256"]
        head, record = append_record(store, {"chain": head} if head else {}, None, None, t, fresh, {}, [])
        objects[record.key] = mf.entry(record)
        if seal is not None:
            objects, index, _ = seal(store, objects, index)
        added += 1
        t += HOUR
    manifest["chain"], manifest["objects"] = head, dict(sorted(objects.items()))
    if index:
        manifest["index"] = index
    encode = getattr(mf, "encode", lambda doc: json.dumps(doc, indent=1, sort_keys=True).encode())
    store.put(Artifact.of(MANIFEST_KEY, encode(manifest), MANIFEST_CACHE))
    return added


def pregrow(root: Path, start: datetime, days: int, source: Path, log) -> dict:
    """A home holding ``days`` days of history before ``start`` (see the module's docstring)."""
    settings = home_settings(root)
    seed = start - timedelta(days=days)
    tf = settings.timeframes[0]
    history_days = math.ceil((tf.history_bars + SEED_BARS) / 24) + 1
    first_day = (seed - timedelta(days=history_days)).replace(hour=0, minute=0)
    last_day = (start - timedelta(days=1)).replace(hour=0, minute=0)
    took = {"candles_run_s": _candles_run(settings, start, first_day, last_day)}
    log(f"pre-growing: candles {first_day:%Y-%m-%d}..{last_day:%Y-%m-%d} in {took['candles_run_s']:.0f} s")
    seed_tick = run_cli(root, seed, SEED_BARS, timeout_s=3600, source=source)
    took["seed_tick_s"] = seed_tick["wall_s"]
    log(
        f"pre-growing: seed tick --now {seed:%Y-%m-%d %H:%M} --backfill-bars {SEED_BARS} in {seed_tick['wall_s']:.0f} s"
    )
    t0 = time.perf_counter()
    newest_start = start.replace(minute=0, second=0, microsecond=0)
    seed_newest = seed.replace(minute=0, second=0, microsecond=0)
    rows = _replicate_rows(settings.warehouse_path, newest_start)
    took["warehouse_s"] = time.perf_counter() - t0
    log(
        f"pre-growing: warehouse rows {rows['rows']} (origins {rows['origins'][0]}..{rows['origins'][1]}) in "
        f"{took['warehouse_s']:.0f} s"
    )
    t0 = time.perf_counter()
    records = _replicate_publications(settings.publish_dir, seed_newest, newest_start)
    took["publish_s"] = time.perf_counter() - t0
    log(f"pre-growing: {records} chain records and their history and paths files in {took['publish_s']:.0f} s")
    return {
        "seed": seed.isoformat(),
        "candle_days": [str(first_day.date()), str(last_day.date())],
        **rows,
        "chain_records": records,
        "seconds": {k: round(v, 1) for k, v in took.items()},
    }


# ------------------------------------------------------------------------------------------------ summary


def _rolling_median(values: list[float], window: int) -> list[float]:
    half = window // 2
    return [statistics.median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]


def at_constant_speed(walls: list[float], reference: list[float], window: int = 9) -> list[float]:
    """Each tick's wall at the run's median machine speed: scaled by the run's median ``reference`` (seconds of
    work that is the same on every tick) over the median of the ``window`` ticks around it (one tick's is noisy;
    the machine's drift is slow)."""
    median = statistics.median(reference)
    return [w * median / r for w, r in zip(walls, _rolling_median(reference, window))]


def slope(values: list[float]) -> float:
    """Least-squares slope per tick."""
    n = len(values)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(values) / n
    return sum((i - mx) * (v - my) for i, v in enumerate(values)) / sum((i - mx) ** 2 for i in range(n))


def trend_pct(values: list[float]) -> float:
    """The least-squares line's change over the run, in % of the mean."""
    mean = sum(values) / len(values)
    return 100 * slope(values) * (len(values) - 1) / mean if mean else 0.0


def theil_sen_trend_pct(values: list[float]) -> float:
    """The trend as ``trend_pct`` from the Theil-Sen slope (the median of the slopes between every two ticks): a
    stretch of ticks slowed by other work on the machine moves it little, where it tilts the least-squares line."""
    n = len(values)
    if n < 2:
        return 0.0
    pairs = sorted((values[j] - values[i]) / (j - i) for i in range(n) for j in range(i + 1, n))
    mid = len(pairs) // 2
    median = pairs[mid] if len(pairs) % 2 else (pairs[mid - 1] + pairs[mid]) / 2
    mean = sum(values) / n
    return 100 * median * (n - 1) / mean if mean else 0.0


def summarise(ticks: list[dict]) -> dict:
    mean = lambda k: sum(t[k] for t in ticks) / len(ticks)  # noqa: E731
    walls = [t["wall_s"] for t in ticks]
    return {
        "ticks": len(ticks),
        "wall_mean_s": round(mean("wall_s"), 2),
        "wall_slope_s_per_tick": round(slope(walls), 4),
        "wall_trend_pct_of_mean": round(trend_pct(walls), 1),
        "wall_trend_ok": abs(trend_pct(walls)) < 5.0,
        "wall_trend_pct_theil_sen": round(theil_sen_trend_pct(walls), 1),
        "wall_p50_s": round(sorted(walls)[len(walls) // 2], 2),
        "wall_max_s": round(max(walls), 2),
        # CPU seconds move less with the machine's load than the wall does: the trend without the neighbours
        "cpu_mean_s": round(mean("cpu_s"), 2),
        "stage_mean_s": {k: round(mean(f"{k}_s"), 2) for k in PARTS},
        "peak_tree_rss_mb_max": round(max(t["peak_tree_rss_mb"] for t in ticks), 1),
        "disk_written_mb_mean": round(mean("disk_written_mb"), 2),
        "publish_written_mb_mean": round(mean("publish_written_mb"), 3),
        "instance_mb_first_last": [ticks[0]["instance_mb"], ticks[-1]["instance_mb"]],
        "warehouse_mb_first_last": [ticks[0]["warehouse_mb"], ticks[-1]["warehouse_mb"]],
        "trend_pct_of_mean": {
            k: round(trend_pct([t[k] for t in ticks]), 1)
            for k in ("cpu_s", *(f"{s}_s" for s in PARTS), "peak_tree_rss_mb", "disk_written_mb")
        },
        "load_mean": round(mean("load"), 2),
        **speed_summary(ticks),
    }


def speed_summary(ticks: list[dict]) -> dict:
    """The machine's own drift over the run and the wall's trend at constant machine speed. The start-up measures
    the machine: each tick's imports, settings and warehouse open are the same work whatever the history (its
    trend was 0.4-1.5 % over 720 ticks on a steady machine), and its seconds move with the rest of the tick
    (correlation 0.78-0.88 in every soak so far). On a shared machine that drifts, the raw least-squares line
    charges the drift to the code; this one does not, and a growth of the code outside the start-up stays in it."""
    walls, startup = [t["wall_s"] for t in ticks], [t["startup_s"] for t in ticks]
    if len(ticks) < 3 or min(startup) <= 0:
        return {}
    rest = [w - s for w, s in zip(walls, startup)]
    adjusted = at_constant_speed(walls, startup)
    return {
        "startup_trend_pct": round(trend_pct(_rolling_median(startup, 9)), 1),
        "startup_rest_correlation": round(statistics.correlation(startup, rest), 2)
        if len(set(startup)) > 1 and len(set(rest)) > 1
        else None,
        "wall_trend_pct_at_constant_speed": round(trend_pct(adjusted), 1),
        "wall_trend_pct_theil_sen_at_constant_speed": round(theil_sen_trend_pct(adjusted), 1),
    }


def _tick_label(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def write_svg(path: Path, ticks: list[dict], title: str) -> None:
    """Three small line panels over the tick number: wall, CPU seconds and the wall's parts; peak RSS; instance,
    warehouse and manifest MB."""
    panels = [
        (
            "seconds per tick",
            [
                ("wall_s", "wall", "#000"),
                ("cpu_s", "CPU (its processes)", "#ff7f0e"),
                ("forecasts_s", "forecasts", "#1f77b4"),
                ("publish_s", "publish", "#d62728"),
                ("track_record_s", "track record", "#2ca02c"),
                ("evaluations_s", "evaluations", "#9467bd"),
                ("candles_s", "candles", "#8c564b"),
                ("dagster_s", "Dagster", "#e377c2"),
                ("startup_s", "start-up", "#7f7f7f"),
                ("planning_s", "planning", "#bcbd22"),
                ("end_s", "end", "#17becf"),
            ],
        ),
        ("peak RSS of the tick, MB", [("peak_tree_rss_mb", "process tree", "#000")]),
        (
            "stored, MB",
            [
                ("instance_mb", "Dagster instance", "#1f77b4"),
                ("warehouse_mb", "warehouse", "#d62728"),
                ("manifest_mb", "manifest.json", "#2ca02c"),
            ],
        ),
    ]
    w, ph, left, top, gap = 860, 200, 60, 40, 50
    h = top + len(panels) * (ph + gap)
    n = max(len(ticks), 2)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="#fff"/>',
        f'<text x="{left}" y="20" font-size="14">{title}</text>',
    ]
    for p, (label, series) in enumerate(panels):
        y0 = top + p * (ph + gap)
        hi = max([t[k] for t in ticks for k, _, _ in series] + [1e-9]) * 1.1
        x = lambda i: left + (w - left - 170) * i / (n - 1)  # noqa: E731
        y = lambda v: y0 + ph - ph * v / hi  # noqa: E731
        out.append(f'<rect x="{left}" y="{y0}" width="{w - left - 170}" height="{ph}" fill="none" stroke="#999"/>')
        out.append(f'<text x="{left}" y="{y0 - 6}">{label}</text>')
        for frac in (0, 0.5, 1):
            out.append(
                f'<text x="{left - 6}" y="{y(hi * frac / 1.1) + 4:.1f}" text-anchor="end">'
                f"{_tick_label(hi * frac / 1.1)}</text>"
            )
        out.append(
            f'<text x="{left + (w - left - 170) / 2}" y="{y0 + ph + 16}" text-anchor="middle">tick (hour) 1..'
            f"{len(ticks)}</text>"
        )
        for j, (key, name, colour) in enumerate(series):
            pts = " ".join(f"{x(i):.1f},{y(t[key]):.1f}" for i, t in enumerate(ticks))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.3"/>')
            out.append(f'<text x="{w - 160}" y="{y0 + 12 + 14 * j}" fill="{colour}">{name}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def report(result: dict, quiet: bool = False) -> None:
    """Summary (printed and in the JSON), the CSV table and the plot of a soak's ticks."""
    ticks, label = result["ticks"], result["label"]
    result["summary"] = summary = summarise(ticks)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"soak_{label}.json").write_text(json.dumps(result, indent=1) + "\n")
    with open(RESULTS / f"soak_{label}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for t in ticks for k in t)))
        writer.writeheader()
        writer.writerows(ticks)
    days = result["pregrown_days"]
    write_svg(
        RESULTS / f"soak_{label}.svg",
        ticks,
        f"{len(ticks)} hourly ticks from {result['start'][:16]}, "
        + (f"home pre-grown to {days} days" if days else "fresh home")
        + f" (demo; {result['cores']} shared cores, load {summary['load_mean']})",
    )
    if quiet:
        return
    print(
        f"\nwall: mean {summary['wall_mean_s']} s, least-squares slope {summary['wall_slope_s_per_tick']} s/tick "
        f"= {summary['wall_trend_pct_of_mean']} % of the mean over the run (target under 5 %: "
        f"{'met' if summary['wall_trend_ok'] else 'NOT met'}; Theil-Sen {summary['wall_trend_pct_theil_sen']} %); "
        f"CPU s per tick {summary['cpu_mean_s']}, trend "
        f"{summary['trend_pct_of_mean']['cpu_s']} %; load {summary['load_mean']} on {result['cores']} cores"
    )
    if "startup_trend_pct" in summary:
        print(
            f"machine speed, as the start-up measures it: trend {summary['startup_trend_pct']} % over the run "
            f"(correlation with the rest of the tick {summary['startup_rest_correlation']}); the wall's trend at "
            f"constant machine speed {summary['wall_trend_pct_at_constant_speed']} % (Theil-Sen "
            f"{summary['wall_trend_pct_theil_sen_at_constant_speed']} %)"
        )
    print("per-stage mean s: " + ", ".join(f"{k} {v}" for k, v in summary["stage_mean_s"].items()))
    print(
        f"peak RSS {summary['peak_tree_rss_mb_max']} MB; disk written {summary['disk_written_mb_mean']} MB/tick "
        f"(publish/ {summary['publish_written_mb_mean']} MB); instance {summary['instance_mb_first_last']} MB, "
        f"warehouse {summary['warehouse_mb_first_last']} MB (first, last tick)"
    )
    print(f"written: {RESULTS}/soak_{label}.{{json,csv,svg}}")


# ------------------------------------------------------------------------------------------------ main


def git_describe(repo: Path) -> dict:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "kronos_assets", "configs", "dbt_free_sql"],
        cwd=repo,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {"commit": head, "dirty": bool(dirty)}


def export(commit: str, folder: Path) -> None:
    """The commit's tracked files into ``folder`` (git archive: the checkout and its index are left alone)."""
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=720, help="hourly ticks after the settling one (default 720)")
    parser.add_argument(
        "--start",
        default="2026-03-01T00:05",
        help="the settling tick's --now; tick i runs at start + i hours (replay data ends 2026-04-01)",
    )
    parser.add_argument("--pregrown-days", type=int, default=0, help="start from this many days of history")
    parser.add_argument("--home", type=Path, default=None, help="a fresh folder (default: a temporary one, removed)")
    parser.add_argument(
        "--label", default=None, help="results name (default fresh_<ticks>_<commit> or day<D>_<ticks>_<commit>)"
    )
    parser.add_argument("--tick-timeout-s", type=float, default=900.0, help="a tick running longer is killed")
    parser.add_argument(
        "--report", type=Path, default=None, help="only summarise and plot again the ticks of this soak_<label>.json"
    )
    parser.add_argument(
        "--commit",
        default=None,
        help="measure this commit's code (git archive into a temporary folder), not the working tree "
        "(others may be editing it)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with the soak kept in --home (its soak_state.json): the same code, clock and "
        "results; a soak of 720 ticks takes hours, so it may be stopped and resumed",
    )
    args = parser.parse_args()
    if args.report:
        report(json.loads(args.report.read_text()))
        return
    if args.resume:
        if args.home is None or not (args.home / STATE).exists():
            raise SystemExit(f"--resume needs --home with the {STATE} of a soak started with --home")
        state = json.loads((args.home / STATE).read_text())
        args.commit = state["code"]["commit"] if state.get("pinned") else None
        args.ticks = state["target_ticks"]
    source, code = REPO, git_describe(REPO)
    if args.commit:
        source = Path(tempfile.mkdtemp(prefix="bench_soak_src_"))
        export(args.commit, source)
        code = {
            "commit": subprocess.run(
                ["git", "rev-parse", args.commit], cwd=REPO, capture_output=True, text=True, check=True
            ).stdout.strip(),
            "dirty": False,
        }
    sys.path.insert(0, str(source))  # this process's own imports (pre-growing, retention) use the same code
    label = args.label or (
        f"{'fresh' if not args.pregrown_days else f'day{args.pregrown_days}'}_{args.ticks}_"
        f"{code['commit'][:7]}{'-dirty' if code['dirty'] else ''}"
    )
    start = datetime.fromisoformat(args.start).replace(tzinfo=timezone.utc)
    root = args.home or Path(tempfile.mkdtemp(prefix="bench_soak_"))
    if not args.resume and root.exists() and any(root.iterdir()):
        raise SystemExit(f"--home {root} is not empty: the soak starts from a fresh home (or pass --resume)")
    log = lambda m: print(m, flush=True)  # noqa: E731
    run_days = 14
    try:
        clock = ReplayClock()
        if args.resume:
            label, start, grown = state["label"], datetime.fromisoformat(state["start"]), state["pregrown"]
            args.pregrown_days, code = state["pregrown_days"], state["code"]
            clock.marks = [(datetime.fromisoformat(r), w) for r, w in state["clock"]]
            settle, ticks = {"wall_s": state["settling_tick_s"]}, state["ticks"]
            log(f"resuming {label} after tick {len(ticks)} of {args.ticks}")
        else:
            grown, ticks = None, []
            if args.pregrown_days:
                clock.mark(start - timedelta(days=args.pregrown_days))
                grown = pregrow(root, start, args.pregrown_days, source, log)
            clock.mark(start)
            settle = run_cli(root, start, 1, args.tick_timeout_s, source)
            log(f"settling tick --now {start:%Y-%m-%d %H:%M}: {settle['wall_s']:.1f} s")
        settings = home_settings(root)
        run_days = settings.retention_run_days
        publish, dagster = settings.publish_dir, settings.dagster_home
        result = {
            "label": label,
            "profile": "demo",
            "start": start.isoformat(),
            "pregrown_days": args.pregrown_days,
            "code": code,
            "pregrown": grown,
            "settling_tick_s": round(settle["wall_s"], 1),
            "run_days": run_days,
            "cores": len(os.sched_getaffinity(0)),  # the cores it may run on (taskset pins a soak to one)
            "ticks": ticks,
        }

        def keep() -> None:  # the state a --resume goes on from, replaced atomically after every tick
            state = {
                **result,
                "target_ticks": args.ticks,
                "pinned": bool(args.commit),
                "clock": [(r.isoformat(), w) for r, w in clock.marks],
            }
            (root / (STATE + ".tmp")).write_text(json.dumps(state))
            os.replace(root / (STATE + ".tmp"), root / STATE)

        keep()
        log(
            f"{'tick':>4} {'now':16} {'wall':>6} {'cand':>5} {'fcst':>5} {'eval':>5} {'pub':>5} {'track':>5} "
            f"{'dag':>5} {'start':>5} {'plan':>5} {'end':>5} {'rssMB':>6} {'diskMB':>6} "
            f"{'instMB':>7} {'whMB':>7} {'load':>5}"
        )
        pub0 = tree(publish)
        for i in range(len(ticks) + 1, args.ticks + 1):
            now = start + i * HOUR
            load = os.getloadavg()[0]
            clock.mark(now)
            since = time.time()
            done = run_cli(root, now, 1, args.tick_timeout_s, source)
            st = stage_times(dagster, since - 1)
            pub1 = tree(publish)
            pub_bytes, pub_files = written(pub0, pub1)[:2]  # bytes (each stored file once) and files
            row = {
                "tick": i,
                "now": f"{now:%Y-%m-%d %H:%M}",
                "wall_s": round(done["wall_s"], 2),
                **{f"{k}_s": round(v, 2) for k, v in st["stages"].items()},
                # Dagster's share: the printed run times less their steps (run start, events, teardown)
                "dagster_s": round(done["in_runs_s"] - sum(st["stages"].values()), 2),
                "runs": len(st["runs"]),
                **{k: round(done[k], 2) for k in ("startup_s", "planning_s", "end_s")},
                "peak_tree_rss_mb": round(done["peak_tree_rss_mb"], 1),
                "max_process_rss_mb": round(done["max_process_rss_mb"], 1),
                "cpu_s": round(done["cpu_s"], 2),
                "disk_written_mb": round(done["disk_written_mb"], 2),
                "publish_written_mb": round(pub_bytes / 1e6, 3),
                "publish_files_written": pub_files,
                "instance_mb": round(size(dagster) / 1e6, 2),
                "warehouse_mb": round(warehouse_bytes(settings.warehouse_path) / 1e6, 1),
                "manifest_mb": round((publish / "manifest.json").stat().st_size / 1e6, 3),
                "publish_mb": round(sum(v[0] for v in pub1.values()) / 1e6, 1),  # per name: as a bucket holds it
                "log_mb": round(size(settings.log_path.parent) / 1e6, 2),
                "load": round(load, 1),
                "retention_s": 0.0,
                "runs_pruned": 0,
            }
            if i % 24 == 0:  # the daily job, on the replay clock
                row.update(daily_retention(dagster, clock, now, run_days))
                row["instance_after_retention_mb"] = round(size(dagster) / 1e6, 2)
            ticks.append(row)
            keep()
            if i % 24 == 0:  # the results so far, so a stopped soak has its table and plot
                report(result, quiet=True)
            pub0 = pub1
            log(
                f"{i:4d} {row['now']:16} {row['wall_s']:6.1f} {row['candles_s']:5.1f} {row['forecasts_s']:5.1f} "
                f"{row['evaluations_s']:5.1f} {row['publish_s']:5.1f} {row['track_record_s']:5.1f} "
                f"{row['dagster_s']:5.1f} {row['startup_s']:5.1f} {row['planning_s']:5.1f} {row['end_s']:5.1f} "
                f"{row['peak_tree_rss_mb']:6.0f} "
                f"{row['disk_written_mb']:6.1f} {row['instance_mb']:7.1f} {row['warehouse_mb']:7.1f} {row['load']:5.1f}"
                + (f"  retention: {row['runs_pruned']} runs pruned in {row['retention_s']} s" if i % 24 == 0 else "")
            )
        report(result)
    finally:
        if args.home is None:
            shutil.rmtree(root, ignore_errors=True)
        if args.commit:
            shutil.rmtree(source, ignore_errors=True)


if __name__ == "__main__":
    main()
