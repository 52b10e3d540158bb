"""Users' own candles: a sensor watches the uploads folder and turns each valid file into a market (a dynamic
partition of the uploads family) that runs through the same graph as the configured symbols."""

import hashlib
import json
from datetime import datetime, time, timezone

import dagster as dg

from kronos_assets.defs.automation import BAR_TAG, SYMBOL_TAG
from kronos_assets.defs.partitions import BAR_FMT, RANGE_END, RANGE_START, UPLOADS, day_key, uploads_partitions_name
from kronos_assets.market.files import CandleFileError, load_candle_file, scan_folder
from kronos_assets.settings import Settings

MAX_FILES_PER_TICK = 20


def _digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_uploads_sensor(settings: Settings, candles_jobs: dict[str, object]) -> dg.SensorDefinition:
    """``candles_jobs``: the uploads family's candles job per enabled timeframe."""
    starts = {tf.name: datetime.combine(tf.start, time(), tzinfo=timezone.utc) for tf in settings.timeframes}

    @dg.sensor(
        name="uploaded_candles",
        jobs=list(candles_jobs.values()),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(f"Watches {settings.uploads_dir} for CSV, Parquet or Feather candle files. Each valid file becomes "
                     "a market of the uploads family (timeframe inferred) and is ingested, forecast and published; an "
                     "invalid one is reported with the reason and left alone."),
    )
    def uploaded_candles(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        settings.uploads_dir.mkdir(parents=True, exist_ok=True)  # so users find where to drop files
        scan = scan_folder(settings.uploads_dir)
        runs, adds, problems = [], {}, [f"{name}: {why}" for name, why in scan.skipped]
        for market, path in sorted(scan.files.items())[:MAX_FILES_PER_TICK]:
            digest = _digest(path)
            if seen.get(market) == digest:
                continue
            seen[market] = digest  # a bad file is reported once, and again only when it changes
            try:
                upload = load_candle_file(path)
            except CandleFileError as exc:
                problems.append(str(exc))
                continue
            tf = upload.profile.timeframe
            if tf not in candles_jobs:
                problems.append(f"{path.name}: {tf} candles, but this profile runs {', '.join(candles_jobs)} only")
                continue
            first = max(upload.profile.first_ts, starts[tf])
            last = upload.profile.last_ts
            if last < starts[tf]:
                problems.append(f"{path.name}: ends {last:%Y-%m-%d}, before the {tf} partitions start {starts[tf]:%Y-%m-%d}")
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
                        "kronos/upload": path.name,
                        "kronos/upload_profile": json.dumps(upload.profile.to_metadata(), default=str)[:4000],
                    },
                )
            )
        for p in problems:
            context.log.warning(f"upload refused: {p}")
        context.update_cursor(json.dumps(seen, sort_keys=True))
        return dg.SensorResult(
            run_requests=runs,
            dynamic_partitions_requests=[
                dg.DynamicPartitionsDefinition(name=name).build_add_request(markets) for name, markets in adds.items()
            ],
            skip_reason=None if runs else ("; ".join(problems) or "no new or changed files"),
        )

    return uploaded_candles
