"""``kronos-assets health``: one screen saying what is configured, what is reachable, what is fresh and what fails.

    configured  profile, market source, symbols, timeframes, forecasters and models, where it publishes,
                the project home and the Dagster instance
    reachable   the warehouse file (opened read-only), the publish folder or bucket, the uploads folder, the
                Dagster instance; the exchanges and the bucket only with ``--network`` (no network call otherwise)
    fresh       per series, the newest clean candle and the newest forecast against the timeframe; the newest
                publication (manifest.json)
    failing     failed runs of the last hours that no later run of the same job and partitions has repaired,
                and asset checks whose latest evaluation failed

A row is OK, WARN, FAIL, SKIP (not checked, with the reason) or INFO. The exit status is 1 when any row is FAIL.
Freshness is ``market.rules.freshness``, the rule the assets' freshness policies use: data older than two bars
(plus the schedule's few minutes) warns, older than three fails.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from kronos_assets import environment
from kronos_assets.health_rows import FAIL, OK, SKIP, WARN, Row, fmt_age, fmt_time, listing, short, worst
from kronos_assets.forecasting.kinds import kind_of
from kronos_assets.forecasting.kinds import kronos as kronos_kind
from kronos_assets.market.rules import FRESH_FAIL_BARS, FRESH_WARN_BARS, freshness
from kronos_assets.market.timeframes import timeframe_delta
from kronos_assets.settings import BASELINES, ConfigError, Settings

SECTIONS = ("configured", "reachable", "fresh", "failing")
LOCK_WAIT_S = 5.0


@dataclass
class Report:
    settings: Settings
    now: datetime
    rows: list[Row]

    @property
    def failing(self) -> list[Row]:
        return [r for r in self.rows if r.status == FAIL]

    @property
    def warnings(self) -> list[Row]:
        return [r for r in self.rows if r.status == WARN]

    @property
    def exit_code(self) -> int:
        return 1 if self.failing else 0

    def render(self, width: int | None = None) -> str:
        width = width or shutil.get_terminal_size((120, 40)).columns
        s = self.settings
        out = [f"kronos-assets health: profile {s.profile} ({s.description}), {self.now:%Y-%m-%d %H:%M} UTC", ""]
        w_sec = max(len(x) for x in SECTIONS)
        w_item = min(30, max(len(r.item) for r in self.rows))
        w_stat = 6
        indent = w_sec + w_item + w_stat + 6
        detail_w = max(30, width - indent)
        out.append(f"{'SECTION':<{w_sec}}  {'ITEM':<{w_item}}  {'STATUS':<{w_stat}}  DETAIL")
        out.append(f"{'-' * w_sec}  {'-' * w_item}  {'-' * w_stat}  {'-' * min(detail_w, 40)}")
        for section in SECTIONS:
            first = True
            for r in (r for r in self.rows if r.section == section):
                lines = textwrap.wrap(r.detail, detail_w, break_on_hyphens=False) or [""]
                item = r.item if len(r.item) <= w_item else r.item[: w_item - 1] + "~"
                out.append(f"{section if first else '':<{w_sec}}  {item:<{w_item}}  {r.status:<{w_stat}}  {lines[0]}")
                out += [" " * indent + line for line in lines[1:]]
                first = False
        out.append("")
        n_fail, n_warn = len(self.failing), len(self.warnings)
        if n_fail:
            out.append(f"FAILING: {n_fail} failing, {n_warn} warning(s): "
                       + "; ".join(f"{r.section}/{r.item}" for r in self.failing))
        elif n_warn:
            out.append(f"HEALTHY with {n_warn} warning(s): " + "; ".join(f"{r.section}/{r.item}" for r in self.warnings))
        else:
            out.append("HEALTHY: configured, reachable, fresh, nothing failing")
        return "\n".join(out)


# ---------------------------------------------------------------------------------------------------- configured


def _publish_target(settings: Settings) -> tuple[str, str, Any]:
    """(status, detail, store or None) for the profile's publish backend, without any network call."""
    from kronos_assets.publishing.backend import resolve_backend

    try:
        backend = resolve_backend(settings.publish_backend)
    except ValueError as exc:
        return FAIL, str(exc), None
    if backend == "local":
        return OK, f"{settings.publish_backend} -> local folder {settings.publish_dir}", None
    from kronos_assets.publishing.r2 import R2ConfigError, r2_config_from_env

    try:
        cfg = r2_config_from_env()
    except R2ConfigError as exc:
        return FAIL, f"{settings.publish_backend} -> R2, but {exc}", None
    where = f"bucket {cfg.bucket} at {cfg.endpoint_url}" + (f", public at {cfg.public_base}" if cfg.public_base else "")
    return OK, f"{settings.publish_backend} -> R2 {where}", cfg


model_source = kronos_kind.describe  # where a Kronos checkpoint's weights come from (folder or hub revision)


def configured(settings: Settings) -> list[Row]:
    s = settings
    rows = [Row("configured", "profile", OK, f"{s.profile}: {s.description} (configs in {s.config_dir})")]
    if s.synthetic:
        rows.append(Row("configured", "market", OK, "synthetic demo market (no exchange, no network)"))
    else:
        chain = " -> ".join(e.id + (f" ({e.base_url})" if e.base_url else "") for e in s.exchanges)
        rows.append(Row("configured", "market", OK, f"ccxt, exchanges tried in order: {chain}"))
    rows.append(Row("configured", "symbols", OK, f"{len(s.symbols)}: {', '.join(s.symbols)}"))
    rows.append(Row("configured", "timeframes", OK, "; ".join(
        f"{tf.name} (from {tf.start}, history {tf.history_bars} bars, horizon {tf.horizon})" for tf in s.timeframes)))
    models = []
    for name in s.forecasters:
        spec = s.model_specs[name]
        models.append(f"{name} (baseline)" if name in BASELINES else f"{name} ({kind_of(spec).describe(spec.options)})")
    rows.append(Row("configured", "forecasters", OK, f"{', '.join(models)}; primary {s.primary_model}"))
    status, detail, _ = _publish_target(s)
    rows.append(Row("configured", "publish", status, detail))
    rows.append(Row("configured", "home", OK, f"{s.home}; this profile's data in {s.profile_home} (warehouse "
                    f"{s.warehouse_path.name}, uploads {s.uploads_dir})"))
    if environment.dagster_home():
        rows.append(Row("configured", "dagster instance", OK, f"$DAGSTER_HOME = {environment.dagster_home()}"))
    else:
        rows.append(Row("configured", "dagster instance", OK, f"{s.dagster_home} (set DAGSTER_HOME for another)"))
    return rows


# ---------------------------------------------------------------------------------------------------- reachable


class ReadOnlyWarehouse:
    """Read-only access to the warehouse file for the freshness queries; never creates it, never waits long."""

    def __init__(self, path: Path):
        self.path = path
        self.con: Any = None
        self.problem: tuple[str, str] | None = None  # (status, detail) when it could not be opened

    def open(self) -> tuple[str, str]:
        import duckdb

        if not self.path.exists():
            self.problem = (WARN, f"{self.path} does not exist yet: run `kronos-assets run` or materialise candles")
            return self.problem
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                self.con = duckdb.connect(str(self.path), read_only=True)
                break
            except duckdb.IOException as exc:
                if "lock" in str(exc).lower() and time.monotonic() < deadline:
                    time.sleep(0.25)
                    continue
                if "lock" in str(exc).lower():
                    self.problem = (WARN, f"{self.path} is held by another process for {LOCK_WAIT_S:.0f} s "
                                          f"(a run writing?): {short(exc, 120)}")
                else:
                    self.problem = (FAIL, f"cannot open {self.path}: {short(exc)}")
                return self.problem
            except Exception as exc:  # corrupt file, not a DuckDB file, permissions
                self.problem = (FAIL, f"cannot open {self.path}: {short(exc)}")
                return self.problem
        self.con.execute("SET TimeZone = 'UTC'")
        tables = {r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        size = self.path.stat().st_size / 1e6
        missing = sorted({"clean_candles", "forecasts"} - tables)
        if missing:
            return WARN, f"{self.path} ({size:.1f} MB) opened read-only, but has no {', '.join(missing)} table yet"
        return OK, f"{self.path} ({size:.1f} MB) opened read-only; {len(tables)} tables"

    def newest(self, table: str, column: str, timeframe: str, model: str | None = None) -> dict[str, datetime]:
        if self.con is None:
            return {}
        sql = f"SELECT symbol, max({column}) FROM {table} WHERE timeframe = ?"
        params: list[Any] = [timeframe]
        if model:
            sql += " AND model = ?"
            params.append(model)
        try:
            rows = self.con.execute(sql + " GROUP BY symbol", params).fetchall()
        except Exception:  # table absent: reported by open()
            return {}
        return {sym: ts.astimezone(timezone.utc) for sym, ts in rows if ts is not None}

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None


def _folder_row(item: str, folder: Path, missing_ok: str) -> Row:
    if folder.is_dir():
        if os.access(folder, os.W_OK | os.X_OK):
            return Row("reachable", item, OK, f"{folder} exists and is writable")
        return Row("reachable", item, FAIL, f"{folder} is not writable by this user")
    parent = next((p for p in folder.parents if p.exists()), None)
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        return Row("reachable", item, FAIL, f"{folder} does not exist and {parent} is not writable")
    if folder.exists():
        return Row("reachable", item, FAIL, f"{folder} exists but is not a folder")
    return Row("reachable", item, OK, f"{folder} not created yet; {missing_ok}")


def _uploads_row(settings: Settings) -> Row:
    from kronos_assets.market.files import scan_folder

    folder = settings.uploads_dir
    row = _folder_row("uploads folder", folder, "the uploaded_candles sensor creates it")
    if row.status != OK or not folder.is_dir():
        return row
    try:
        scan = scan_folder(folder)
    except OSError as exc:
        return Row("reachable", "uploads folder", FAIL, f"cannot list {folder}: {short(exc)}")
    detail = f"{folder}: {len(scan.files)} candle file(s)"
    if scan.skipped:
        return Row("reachable", "uploads folder", WARN,
                   detail + "; skipped " + listing([f"{n}: {why}" for n, why in scan.skipped]))
    return Row("reachable", "uploads folder", OK, detail)


def _exchange_rows(settings: Settings, network: bool, now: datetime) -> list[Row]:
    if settings.synthetic:
        return [Row("reachable", "exchanges", OK, "none needed: the synthetic market is generated locally")]
    if not network:
        return [Row("reachable", "exchanges", SKIP,
                    f"{', '.join(e.id for e in settings.exchanges)} not contacted (add --network)")]
    from kronos_assets.market.ccxt_source import CcxtSource

    tf = min(settings.timeframes, key=lambda t: timeframe_delta(t.name))
    step = timeframe_delta(tf.name)
    symbol = settings.symbols[0]
    rows = []
    for ex in settings.exchanges:
        t0 = time.perf_counter()
        try:
            with CcxtSource.from_settings([ex], max_retries=0, timeout_ms=10_000, max_gap_requests=0) as source:
                frame = source.fetch(symbol, tf.name, now - 3 * step, now, now)
            secs = time.perf_counter() - t0
            if frame.height == 0:
                rows.append(Row("reachable", f"exchange {ex.id}", WARN,
                                f"answered in {secs:.1f} s but served no {symbol} {tf.name} bar of the last 3"))
            else:
                rows.append(Row("reachable", f"exchange {ex.id}", OK,
                                f"served {frame.height} {symbol} {tf.name} bar(s) in {secs:.1f} s"))
        except Exception as exc:
            rows.append(Row("reachable", f"exchange {ex.id}", FAIL, short(exc)))
    if rows and all(r.status == FAIL for r in rows):
        return rows
    # One exchange down is what the fallback chain is for: degrade its row to a warning.
    return [replace(r, status=WARN, detail=r.detail + " (the chain falls back)") if r.status == FAIL else r
            for r in rows]


def _bucket_row(cfg: Any, network: bool) -> tuple[Row, Any]:
    """The R2 bucket: only contacted with --network. Returns the row and the store (for the manifest) or None."""
    if not network:
        return Row("reachable", "publish bucket", SKIP, f"{cfg.bucket} not contacted (add --network)"), None
    from kronos_assets.defs.resources import r2_store

    try:
        store = r2_store(cfg)
        store.client.head_bucket(Bucket=store.bucket)
        return Row("reachable", "publish bucket", OK, f"{cfg.bucket} at {cfg.endpoint_url} answers"), store
    except Exception as exc:
        return Row("reachable", "publish bucket", FAIL, f"{cfg.bucket}: {short(exc)}"), None


# ---------------------------------------------------------------------------------------------------- fresh


def fresh(settings: Settings, wh: ReadOnlyWarehouse, now: datetime) -> list[Row]:
    if wh.con is None:
        status, why = wh.problem or (WARN, "warehouse not opened")
        return [Row("fresh", "candles and forecasts", FAIL if status == FAIL or "does not exist" in why else WARN,
                    f"not checked: {why}")]
    rows = []
    for tf in settings.timeframes:
        step = timeframe_delta(tf.name)
        candles = wh.newest("clean_candles", "ts", tf.name)
        forecasts = wh.newest("forecasts", "origin", tf.name, settings.primary_model)
        for symbol in settings.symbols:
            parts, statuses = [], []
            bar = candles.get(symbol)
            if bar is None:
                parts.append("no clean candle")
                statuses.append(FAIL)
            else:
                age = now - (bar + step)  # since the newest bar closed
                statuses.append(freshness(age, step))
                parts.append(f"candle {fmt_time(bar)} (closed {fmt_age(age)})")
            origin = forecasts.get(symbol)
            if origin is None:
                parts.append(f"no {settings.primary_model} forecast")
                statuses.append(FAIL)
            else:
                age = now - origin
                statuses.append(freshness(age, step))
                parts.append(f"forecast from {fmt_time(origin)} ({fmt_age(age)})")
            status = worst(statuses)
            if status != OK:
                parts.append(f"warns past {FRESH_WARN_BARS} bars, fails past {FRESH_FAIL_BARS}")
            rows.append(Row("fresh", f"{symbol} {tf.name}", status, "; ".join(parts)))
    return rows


def publication_row(settings: Settings, store: Any, now: datetime, why_not: str | None = None) -> Row:
    """The newest publication, from manifest.json (written last by every publish)."""
    if why_not:
        return Row("fresh", "publication", SKIP, why_not)
    from kronos_assets.publishing.site import MANIFEST_KEY

    try:
        raw = store.get(MANIFEST_KEY)
    except Exception as exc:
        return Row("fresh", "publication", FAIL, f"cannot read {MANIFEST_KEY}: {short(exc)}")
    where = store.location(MANIFEST_KEY)
    if not raw:
        return Row("fresh", "publication", FAIL, f"nothing published yet ({where} absent)")
    try:
        manifest = json.loads(raw)
        generated = datetime.fromisoformat(manifest["generated_at"]).astimezone(timezone.utc)
    except Exception as exc:
        return Row("fresh", "publication", FAIL, f"{where} unreadable: {short(exc)}")
    step = min(timeframe_delta(tf.name) for tf in settings.timeframes)
    age = now - generated
    status = freshness(age, step)
    detail = (f"newest origin {fmt_time(generated)} ({fmt_age(age)}), {len(manifest.get('objects', {}))} objects, "
              f"profile {manifest.get('profile')}; {where}")
    if manifest.get("profile") not in (None, settings.profile):
        status = worst([status, WARN])
        detail += f" (published by profile {manifest.get('profile')}, not {settings.profile})"
    return Row("fresh", "publication", status, detail)


# ---------------------------------------------------------------------------------------------------- failing


def open_instance(settings: Settings) -> tuple[Any, Row]:
    """The Dagster instance of ``instance_for(settings)`` (or $DAGSTER_HOME's); None when none exists yet."""
    if not environment.dagster_home() and not settings.dagster_home.is_dir():
        return None, Row("reachable", "dagster instance", OK,
                         f"none yet at {settings.dagster_home}: no run recorded")
    from kronos_assets.local_instance import instance_for

    try:
        instance = instance_for(settings)
        kind = type(instance.run_storage).__name__.replace("RunStorage", "")
        instance.get_runs_count()
    except Exception as exc:
        return None, Row("reachable", "dagster instance", FAIL, f"cannot open: {short(exc)}")
    where = environment.dagster_home() or str(settings.dagster_home)
    return instance, Row("reachable", "dagster instance", OK, f"{where} ({kind} storage)")


def _run_partitions(tags: dict[str, str]) -> dict[str, str]:
    keys = ("dagster/partition", "dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
    return {k: tags[k] for k in keys if k in tags}


def failed_runs(instance: Any, now: datetime, since_hours: float) -> Row:
    import dagster as dg

    from kronos_assets.failures import run_cause
    from kronos_assets.runs import run_label

    since = now - timedelta(hours=since_hours)
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], created_after=since), limit=50)
    if not records:
        return Row("failing", f"runs (last {since_hours:g} h)", OK, "no failed run")
    open_, repaired = [], []
    for rec in records:
        run = rec.dagster_run
        later = instance.get_run_records(
            filters=dg.RunsFilter(job_name=run.job_name, statuses=[dg.DagsterRunStatus.SUCCESS],
                                  tags=_run_partitions(run.tags), created_after=rec.create_timestamp),
            limit=1)
        label = f"{run_label(run)} run {run.run_id[:8]} at {fmt_time(rec.create_timestamp)}"
        if later:
            repaired.append(f"{label} (repaired by {later[0].dagster_run.run_id[:8]})")
        else:
            open_.append(f"{label}: {run_cause(instance, run.run_id)}")
    if open_:
        detail = f"{len(open_)} failed: " + listing(open_)
        if repaired:
            detail += f"; {len(repaired)} more failed then succeeded on a re-run"
        return Row("failing", f"runs (last {since_hours:g} h)", FAIL, detail)
    return Row("failing", f"runs (last {since_hours:g} h)", WARN,
               f"{len(repaired)} failed, each succeeded on a later run: " + listing(repaired))


def _check_keys(settings: Settings) -> list[Any]:
    """Every asset check the code location defines (from the definitions, built as the location builds them)."""
    from kronos_assets.defs.factory import build_definitions
    from kronos_assets.defs.resources import build_resources

    try:
        resources = build_resources(settings)
    except ConfigError:  # the publish target is misconfigured (reported above): the checks are the same
        resources = build_resources(replace(settings, publish_backend="local"))
    defs = build_definitions(settings, resources)
    return sorted(defs.resolve_asset_graph().asset_check_keys, key=lambda k: k.to_user_string())


def failed_checks(settings: Settings, instance: Any) -> Row:
    import dagster as dg

    keys = _check_keys(settings)
    latest = {k: rec for k in keys if (rec := instance.get_latest_asset_check_evaluation_record(k)) is not None}
    errors, warns, passed, planned = [], [], 0, 0
    for key, rec in latest.items():
        name = key.to_user_string()
        ev = rec.evaluation  # absent while the check is only planned
        if ev is not None and ev.passed:
            passed += 1
        elif ev is not None:
            when = fmt_time(datetime.fromtimestamp(rec.create_timestamp, timezone.utc))
            label = f"{name} (run {rec.run_id[:8]}, {when})"
            (warns if ev.severity == dg.AssetCheckSeverity.WARN else errors).append(label)
        else:  # planned: in progress, or its run stopped before the check ran
            run = instance.get_run_by_id(rec.run_id)
            if run is None or run.is_finished:
                planned += 1
    never = len(keys) - len(latest)
    summary = f"{len(keys)} checks: {passed} passed at their latest evaluation"
    if never:
        summary += f", {never} never evaluated"
    if planned:
        summary += f", {planned} did not run (their run stopped first)"
    if errors:
        return Row("failing", "asset checks", FAIL, f"{len(errors)} failed (ERROR): " + listing(errors)
                   + (f"; {len(warns)} warned" if warns else "") + f"; {summary}")
    if warns:
        return Row("failing", "asset checks", WARN, f"{len(warns)} failed (WARN severity): " + listing(warns)
                   + f"; {summary}")
    return Row("failing", "asset checks", OK, summary)


def daemon_row(instance: Any, now: datetime) -> Row | None:
    """With $DAGSTER_HOME (a deployment), whether a daemon runs the schedules, sensors and run queue."""
    if not environment.dagster_home():
        return None
    try:
        beats = instance.get_daemon_heartbeats()
    except Exception as exc:
        return Row("failing", "dagster daemon", WARN, f"no heartbeat readable: {short(exc)}")
    if not beats:
        return Row("failing", "dagster daemon", WARN,
                   "no heartbeat ever: schedules, sensors and queued runs need `dagster-daemon run`")
    newest = max(b.timestamp for b in beats.values())
    age = now - datetime.fromtimestamp(newest, timezone.utc)
    if age > timedelta(minutes=5):
        return Row("failing", "dagster daemon", WARN, f"last heartbeat {fmt_age(age)}: is `dagster-daemon run` up?")
    errors = [f"{t}: {short(b.errors[0].message, 80)}" for t, b in beats.items() if getattr(b, "errors", None)]
    if errors:
        return Row("failing", "dagster daemon", WARN, "heartbeat ok, errors: " + listing(errors))
    return Row("failing", "dagster daemon", OK, f"{len(beats)} daemons, last heartbeat {fmt_age(age)}")


# ---------------------------------------------------------------------------------------------------- all


def run_health(settings: Settings, network: bool = False, since_hours: float = 24.0,
               now: datetime | None = None) -> Report:
    """Every row of the health screen. Reads only; calls the network only when ``network`` is set."""
    now = now or datetime.now(timezone.utc)
    rows = configured(settings)

    def guarded(section: str, item: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # a broken probe is itself a failure worth a row, never a traceback
            rows.append(Row(section, item, FAIL, f"could not check: {short(exc)}"))
            return None

    wh = ReadOnlyWarehouse(settings.warehouse_path)
    status, detail = wh.open()
    rows.append(Row("reachable", "warehouse", status, detail))
    pub_status, _, r2_cfg = _publish_target(settings)
    store, why_not = None, None
    if pub_status == FAIL:
        why_not = "publish target misconfigured (see configured/publish)"
    elif r2_cfg is None:
        from kronos_assets.publishing.store import LocalStore

        rows.append(_folder_row("publish folder", settings.publish_dir, "the first publish creates it"))
        store = LocalStore(settings.publish_dir)
    else:
        row, store = _bucket_row(r2_cfg, network)
        rows.append(row)
        if store is None:
            why_not = "bucket not contacted (add --network)" if not network else "bucket unreachable"
    rows.append(_uploads_row(settings))
    ex_rows = guarded("reachable", "exchanges", lambda: _exchange_rows(settings, network, now))
    rows += ex_rows or []
    instance, inst_row = open_instance(settings)
    rows.append(inst_row)

    try:
        rows += fresh(settings, wh, now)
    finally:
        wh.close()
    rows.append(publication_row(settings, store, now, why_not))

    from kronos_assets.health_runs import in_flight_runs, pool_slots

    if instance is None:
        why = "no Dagster instance yet" if inst_row.status == OK else "Dagster instance not reachable"
        rows.append(Row("failing", f"runs (last {since_hours:g} h)", SKIP if inst_row.status == OK else FAIL, why))
    else:
        try:
            for item, fn in ((f"runs (last {since_hours:g} h)", lambda: [failed_runs(instance, now, since_hours)]),
                             ("asset checks", lambda: [failed_checks(settings, instance)]),
                             ("runs in flight", lambda: [in_flight_runs(instance, now)]),
                             ("pool slots", lambda: [pool_slots(instance)]),
                             ("dagster daemon", lambda: [r for r in [daemon_row(instance, now)] if r])):
                rows += guarded("failing", item, fn) or []
        finally:
            instance.dispose()
    return Report(settings, now, rows)


def main(settings: Settings, network: bool = False, since_hours: float = 24.0) -> int:
    report = run_health(settings, network=network, since_hours=since_hours)
    print(report.render())
    return report.exit_code
