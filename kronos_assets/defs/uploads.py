"""Users' own candles: a sensor watches the uploads folder and turns each valid file into a market (a dynamic
partition of the uploads family) that runs through the same graph as the configured symbols.

A file is taken only once it is stable: its size and modification time are the same at ``uploads.stable_looks``
consecutive looks (sensor ticks, at least 30 s apart; default 2), so a file still being written is left for a
later tick. Writing elsewhere and renaming into the folder works too (the renamed file is taken a tick later).
Every tick stats every file (cheap) and reads at most MAX_FILES_PER_TICK changed ones, continuing next tick after
the last one read, so every file gets its turn. Only regular files are opened; reading is bounded by the
``uploads.max_file_mb`` and ``uploads.max_decompressed_mb`` limits. A file the scan skips (a name that is not valid
UTF-8, a FIFO, an unsupported type) is reported once while it stays, not on every tick, and never stops the rest
of the folder; every text that leaves the sensor (log, tags, cursor, skip message) is ``printable``.
"""

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from typing import Any

import dagster as dg

from kronos_assets.base import environment
from kronos_assets.configuration.settings import Settings
from kronos_assets.defs.automation import BAR_TAG, SYMBOL_TAG
from kronos_assets.defs.partitions import BAR_FMT, RANGE_END, RANGE_START, UPLOADS, day_key, uploads_partitions_name
from kronos_assets.market.files import (
    MB,
    CandleFileError,
    ReadLimits,
    file_digest,
    load_candle_file,
    printable,
    scan_folder,
)

MAX_FILES_PER_TICK = 20


def read_limits(settings: Settings) -> ReadLimits:
    return ReadLimits(int(settings.upload_max_file_mb * MB), int(settings.upload_max_decompressed_mb * MB))


@dataclass
class UploadsCursor:
    """What the sensor remembers between ticks (JSON in the sensor cursor).

    taken: market -> [size, mtime_ns, sha256] of the version last read (a bad file is reported once, and again
           only when it changes); looks: market -> [size, mtime_ns, equal looks so far]; after: the market read
           last, where the next tick continues; reported: "name: reason" of each file the scan skips that was
           already reported (forgotten when it leaves the folder or its reason changes)."""

    taken: dict[str, list[Any]] = field(default_factory=dict)
    looks: dict[str, list[int]] = field(default_factory=dict)
    after: str = ""
    reported: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, text: str | None) -> "UploadsCursor":
        data = json.loads(text) if text else {}
        if data and "taken" not in data:  # the earlier form: market -> sha256
            return cls(taken={m: [None, None, d] for m, d in data.items()})
        return cls(data.get("taken", {}), data.get("looks", {}), data.get("after", ""), data.get("reported", []))

    def dump(self) -> str:
        return json.dumps(
            {"taken": self.taken, "looks": self.looks, "after": self.after, "reported": self.reported}, sort_keys=True
        )

    def newly_skipped(self, skipped: list[tuple[str, str]]) -> list[str]:
        """The scan's skipped files not reported before; remembers the ones present now."""
        now = [printable(f"{name}: {why}") for name, why in skipped]
        new = [p for p in now if p not in set(self.reported)]
        self.reported = sorted(set(now))
        return new


def due_files(cursor: UploadsCursor, files: dict[str, os.PathLike[str]], stable_looks: int) -> list[str]:
    """Markets whose file changed since it was last taken and has been stable for ``stable_looks`` looks,
    starting after ``cursor.after`` (round robin). Updates the looks; forgets files that left the folder."""
    for gone in set(cursor.taken) - set(files):
        del cursor.taken[gone]
    for gone in set(cursor.looks) - set(files):
        del cursor.looks[gone]
    names = sorted(files)
    start = next((i for i, m in enumerate(names) if m > cursor.after), 0)
    due = []
    for market in names[start:] + names[:start]:
        try:
            st = os.stat(files[market])
        except OSError:  # gone or unreadable since the scan: the next tick sees it as it is then
            cursor.looks.pop(market, None)
            continue
        sig = [st.st_size, st.st_mtime_ns]
        taken = cursor.taken.get(market)
        if taken is not None and taken[:2] == sig:
            cursor.looks.pop(market, None)
            continue
        look = cursor.looks.get(market)
        count = look[2] + 1 if look is not None and look[:2] == sig else 1
        cursor.looks[market] = [*sig, count]
        if count >= stable_looks:
            due.append(market)
    return due


def build_uploads_sensor(settings: Settings, candles_jobs: dict[str, object]) -> dg.SensorDefinition:
    """``candles_jobs``: the uploads family's candles job per enabled timeframe."""
    starts = {tf.name: datetime.combine(tf.start, time(), tzinfo=timezone.utc) for tf in settings.timeframes}
    limits = read_limits(settings)

    @dg.sensor(
        name="uploaded_candles",
        jobs=list(candles_jobs.values()),
        minimum_interval_seconds=environment.sensor_interval_s(30),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches {printable(str(settings.uploads_dir))} for CSV, Parquet or Feather candle files. Each "
            "valid file becomes a market of the uploads family (timeframe inferred) and is ingested and "
            "forecast (published only when the profile's uploads.publish says so); an invalid one is "
            "reported once with the reason and left alone. A file is taken once its size and modification "
            f"time are unchanged across {settings.upload_stable_looks} looks (ticks)."
        ),
    )
    def uploaded_candles(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = UploadsCursor.load(context.cursor)
        settings.uploads_dir.mkdir(parents=True, exist_ok=True)  # so users find where to drop files
        scan = scan_folder(settings.uploads_dir)
        problems = cursor.newly_skipped(scan.skipped)
        reported_earlier = len(cursor.reported) - len(problems)
        runs, adds = [], {}
        due = due_files(cursor, scan.files, settings.upload_stable_looks)
        for market in due[:MAX_FILES_PER_TICK]:
            path = scan.files[market]
            size, mtime_ns, _ = cursor.looks.pop(market)
            cursor.after = market
            try:
                digest = file_digest(path)
            except (OSError, CandleFileError) as exc:
                problems.append(printable(f"{path.name}: {exc}"))
                continue
            unchanged = cursor.taken.get(market, [None, None, None])[2] == digest
            cursor.taken[market] = [size, mtime_ns, digest]
            if unchanged:  # touched, not changed
                continue
            try:
                upload = load_candle_file(path, limits=limits)
            except CandleFileError as exc:
                problems.append(printable(str(exc)))
                continue
            tf = upload.profile.timeframe
            if tf not in candles_jobs:
                problems.append(f"{path.name}: {tf} candles, but this profile runs {', '.join(candles_jobs)} only")
                continue
            first = max(upload.profile.first_ts, starts[tf])
            last = upload.profile.last_ts
            if last < starts[tf]:
                problems.append(
                    f"{path.name}: ends {last:%Y-%m-%d}, before the {tf} partitions start {starts[tf]:%Y-%m-%d}"
                )
                continue
            adds.setdefault(uploads_partitions_name(tf), []).append(market)
            runs.append(
                dg.RunRequest(
                    run_key=f"upload|{market}|{digest[:16]}",
                    job_name=candles_jobs[tf].name,
                    tags={
                        RANGE_START: str(day_key(market, first, UPLOADS)),
                        RANGE_END: str(day_key(market, last, UPLOADS)),
                        BAR_TAG: last.strftime(BAR_FMT),
                        SYMBOL_TAG: market,
                        "kronos/upload": printable(path.name),
                        "kronos/upload_profile": json.dumps(upload.profile.to_metadata(), default=str)[:4000],
                    },
                )
            )
        for p in problems:
            context.log.warning(f"upload refused: {p}")
        waiting = sorted(m for m, look in cursor.looks.items() if look[2] < settings.upload_stable_looks)
        earlier = [f"{reported_earlier} skipped file(s) reported earlier"] if reported_earlier else []
        context.update_cursor(cursor.dump())
        return dg.SensorResult(
            run_requests=runs,
            dynamic_partitions_requests=[
                dg.DynamicPartitionsDefinition(name=name).build_add_request(markets) for name, markets in adds.items()
            ],
            skip_reason=None
            if runs
            else (
                "; ".join(
                    problems
                    + [f"{m}: waiting until its size and modification time stop changing" for m in waiting]
                    + earlier
                )
                or "no new or changed files"
            ),
        )

    return uploaded_candles
