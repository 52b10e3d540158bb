"""Command line: ``kronos-assets run`` runs the main job; ``check`` validates the configuration; ``ui`` opens the
Dagster UI on the profile's runs."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from kronos_assets.base import environment
from kronos_assets.cli.script_exit import exit_without_teardown
from kronos_assets.configuration.settings import PROFILES, ConfigError, Settings


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _utc_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time like 2026-11-21T10:05, got {text!r}") from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def crash_cause(exc: BaseException, settings: Settings) -> str:
    """One line: the exception, and a full disk when that is why (SQLite says only 'disk I/O error'), or the
    damaged file and what to do (SQLite says only 'file is not a database')."""
    from kronos_assets.orchestration.instance_files import damaged_file, is_sqlite_damage
    from kronos_assets.warehouse import DamagedWarehouse

    if isinstance(exc, DamagedWarehouse):
        return str(exc)
    if is_sqlite_damage(exc) and (found := damaged_file(Path(environment.dagster_home() or settings.dagster_home))):
        return str(found)
    text = " ".join(f"{type(exc).__name__}: {exc}".split("\n")[0].split())
    for folder in (settings.dagster_home, settings.profile_home):
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            continue
        if free < 1_000_000:
            return (
                f"{text} -- the disk holding {folder} is full ({free // 1024} KiB free); free space and run "
                "again: the interrupted run is failed and its slots freed then"
            )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kronos-assets", description=__doc__)
    parser.add_argument("--profile", choices=PROFILES, help="profile to use (default: $KRONOS_PROFILE or demo)")
    parser.add_argument("--home", help="project home: warehouse, publish folder, Dagster runs ($KRONOS_HOME)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="fetch candles, forecast, score and publish every configured series once")
    run.add_argument(
        "--backfill-bars",
        type=_positive_int,
        default=48,
        help="also forecast and score this many past bars (rolling origin) so the track record is not empty",
    )
    run.add_argument(
        "--now",
        type=_utc_time,
        default=None,
        help="run as if it were this UTC time (ISO 8601): no bar closing later is fetched; default: now, or "
        "the end of the replay data",
    )
    run.add_argument(
        "--pool-wait-s",
        type=_positive_float,
        default=None,
        help="give up on a run that waits longer than this for the warehouse or publish slot "
        "(default $KRONOS_POOL_WAIT_S or 300)",
    )
    study = sub.add_parser(
        "study",
        help="the real-data study: backtest every model of the demo profile on the replayed "
        "candles 2024-07-01..2025-06-30 and publish study.html (home <home>/study)",
    )
    study.add_argument("--stride", type=_positive_int, default=1, help="every K-th origin (K divides the horizon)")
    study.add_argument("--months", type=_positive_int, default=None, help="only the first N months of the study")
    sub.add_parser("check", help="load and validate the configuration and the Dagster definitions")
    health = sub.add_parser(
        "health", help="what is configured, reachable, fresh and failing; exit 1 when anything fails"
    )
    health.add_argument(
        "--network",
        action="store_true",
        help="also contact the exchanges and the R2 bucket (no network call without it)",
    )
    health.add_argument("--since-hours", type=float, default=24.0, help="how far back to look for failed runs")
    backup = sub.add_parser(
        "backup",
        help="a consistent copy of the warehouse and the publication, safe while runs write (restore: see README)",
    )
    backup.add_argument(
        "--to",
        type=Path,
        default=None,
        help="folder receiving the backup, one subfolder per backup (default <home>/<profile>/backups)",
    )
    backup.add_argument(
        "--wait-s",
        type=_positive_float,
        default=120.0,
        help="how long to wait for a run writing the warehouse (default 120)",
    )
    restore = sub.add_parser("restore", help="put a backup folder back (the current warehouse file is moved aside)")
    restore.add_argument("folder", type=Path, help="a folder `kronos-assets backup` printed")
    ui = sub.add_parser(
        "ui", help="the Dagster UI (dg dev) on this profile's runs; Ctrl-C or SIGTERM stops it within 10 s"
    )
    ui.add_argument("--port", type=_positive_int, default=None, help="webserver port (default 3000, or a free one)")
    ui.add_argument("--host", default=None, help="webserver address (default 127.0.0.1)")
    verify = sub.add_parser(
        "verify",
        help="check a published record (hash chain, files, every recomputable score and "
        "verdict); exit 1 naming the first mismatch",
    )
    verify.add_argument("target", help="a publish folder, or s3://bucket[/prefix] (with the R2_* variables)")
    args = parser.parse_args(argv)
    if args.command == "verify":  # reads the published files alone: no profile, no warehouse
        from kronos_assets.publishing.verify import main as verify_main

        return verify_main(args.target)
    environment.export(PROFILE=args.profile, HOME=args.home)

    from kronos_assets.configuration.settings import load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        for line in exc.lines:  # every problem of the file, each naming the file and the field
            print(f"configuration error: {line}", file=sys.stderr)
        return 2
    if args.command == "health":
        from kronos_assets.cli.health import main as health_main

        return health_main(settings, network=args.network, since_hours=args.since_hours)
    if args.command in ("run", "ui") and (refused := _upgrade(settings, warehouse=args.command == "run")):
        return refused
    if args.command == "ui":
        from kronos_assets.cli.ui import serve

        code = serve(
            settings,
            [*(["--port", str(args.port)] if args.port else []), *(["--host", args.host] if args.host else [])],
        )
        # Nothing is left to finalise (the UI's processes are gone, the instance closed); tearing down the
        # imported Dagster modules costs ~1 s of CPU, 10 s and more at load 15, so the stop ends here.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if args.command == "study":
        from kronos_assets.cli.study import main as study_main

        return study_main(settings, stride=args.stride, months=args.months)
    if args.command == "check":
        import dagster as dg

        from kronos_assets.definitions import code_location

        dg.Definitions.validate_loadable(code_location(settings))
        from kronos_assets.cli.health.stored import damaged_files

        damaged = damaged_files(settings)  # a damaged warehouse or run history stops every run: say so here
        for problem in damaged:
            print(problem, file=sys.stderr)
        if damaged:
            return 1
        print(f"profile {settings.profile}: {len(settings.symbols)} symbols x {len(settings.timeframes)} timeframes OK")
        return 0
    if args.command in ("backup", "restore"):
        from kronos_assets.orchestration.backup import BackupError, backup, restore
        from kronos_assets.warehouse import DamagedWarehouse

        try:
            if args.command == "backup":
                print(f"backup: {backup(settings, to=args.to, wait_s=args.wait_s).summary()}")
            else:
                print(restore(settings, args.folder))
        except (BackupError, DamagedWarehouse, OSError) as exc:
            print(f"{args.command} failed: {exc}", file=sys.stderr)
            return 1
        return 0

    from kronos_assets.cli.main_job import POOL_WAIT_S, MainJobFailed, resolve_now, run_main_job
    from kronos_assets.defs.resources import build_resources, library

    t0 = time.perf_counter()
    try:  # the time the job works at, checked before anything is created
        resources = build_resources(settings)
        now = resolve_now(settings, args.now, library(resources["market"]) if settings.replay else None)
    except ConfigError as exc:  # e.g. R2 chosen but its variables missing
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except MainJobFailed as exc:
        print(f"main job refused: {exc}", file=sys.stderr)
        return 2
    as_of = f", as of {now:%Y-%m-%d %H:%M} UTC" if settings.replay else ""
    print(f"profile {settings.profile} ({settings.description}{as_of}); data in {settings.profile_home}")
    dagster_home = environment.dagster_home()
    print(f"full Dagster log: {settings.log_path if not dagster_home else 'in the instance at ' + dagster_home}")
    try:
        result = run_main_job(
            settings,
            backfill_bars=args.backfill_bars,
            now=now,
            resources=resources,
            pool_wait_s=args.pool_wait_s or POOL_WAIT_S,
        )
    except ConfigError as exc:  # e.g. R2 chosen but its variables missing
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except MainJobFailed as exc:
        sys.stdout.flush()
        print(f"main job failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # not a failed run but a crash (e.g. Dagster's storage unwritable): trace, then cause
        sys.stdout.flush()
        traceback.print_exc()
        print(f"main job failed: {crash_cause(exc, settings)}", file=sys.stderr)
        return 1
    print(f"{result.runs} runs in {time.perf_counter() - t0:.1f} s")
    from kronos_assets.cli.ui import ui_command

    print(f"runs in the UI: {ui_command(settings.profile, settings.home)}")
    print(f"dashboard: {result.dashboard}")
    return 0


def _upgrade(settings: Settings, warehouse: bool) -> int:
    """Moves an older release's home layout into the profile's folder (home_layout) and, before a run, brings the
    warehouse to this release's schema version (warehouse/migrations.py); 2 when either must not happen."""
    from kronos_assets.configuration import home_layout
    from kronos_assets.warehouse import DamagedWarehouse, MigrationFailed, SchemaTooNew
    from kronos_assets.warehouse.backends import WarehouseUnavailable

    try:
        demo_market = home_layout.configured_demo_market(settings.config_dir, settings.profile, settings.market)
        synthetic = home_layout.relocate_synthetic(settings.home, demo_market)
        if synthetic is not None:
            print(
                f"moved {settings.home / home_layout.OLD_SYNTHETIC_PROFILE} to {synthetic}: its candles are the "
                f"synthetic market's (an older release's demo profile); that record is now the synthetic "
                f"profile's: `kronos-assets --profile synthetic run`"
            )
        target = home_layout.destination(settings.home, settings.profile_home, settings.market)
        moved = home_layout.adopt(settings.home, target)
        if moved:
            print(
                f"moved {', '.join(moved)} from {settings.home} (the layout before per-profile folders) into {target}"
            )
        if warehouse:
            wh = settings.open_warehouse()
            try:
                found, now = wh.migrate()
            finally:
                wh.close()
            if found is not None and found != now:
                print(f"warehouse schema migrated from version {found} to {now}")
    except DamagedWarehouse as exc:  # not an upgrade's refusal: the run fails as any run on that file would
        print(f"main job failed: {exc}", file=sys.stderr)
        return 1
    except (
        home_layout.LayoutConflict,
        SchemaTooNew,
        MigrationFailed,
        WarehouseUnavailable,
        TimeoutError,
        OSError,
    ) as exc:
        print(f"upgrade refused: {exc}", file=sys.stderr)
        return 2
    return 0


def cli() -> None:
    """The ``kronos-assets`` console script (cli.script_exit)."""
    exit_without_teardown(main())


if __name__ == "__main__":
    cli()
