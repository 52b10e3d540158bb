"""The health screen: every row of every section (each section's module makes its rows), rendered as one table
whose last line says HEALTHY or FAILING; the exit status is 1 when any row is FAIL."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from kronos_assets.cli.health.alerting import alerts_row
from kronos_assets.cli.health.configured import configured, publish_target
from kronos_assets.cli.health.fresh import fresh, publication_row
from kronos_assets.cli.health.reachable import bucket_row, exchange_rows, folder_row, open_instance, uploads_row
from kronos_assets.cli.health.rows import FAIL, OK, SKIP, WARN, Row, short
from kronos_assets.configuration.settings import Settings
from kronos_assets.warehouse.readonly import ReadOnlyWarehouse

SECTIONS = ("configured", "reachable", "fresh", "failing")
LOCK_WAIT_S = 5.0  # health waits this long for a warehouse file a run is writing


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
                lines = textwrap.wrap(r.detail, detail_w, break_on_hyphens=False, break_long_words=False) or [
                    ""
                ]  # paths stay whole
                item = r.item if len(r.item) <= w_item else r.item[: w_item - 1] + "~"
                out.append(f"{section if first else '':<{w_sec}}  {item:<{w_item}}  {r.status:<{w_stat}}  {lines[0]}")
                out += [" " * indent + line for line in lines[1:]]
                first = False
        out.append("")
        n_fail, n_warn = len(self.failing), len(self.warnings)
        if n_fail:
            out.append(
                f"FAILING: {n_fail} failing, {n_warn} warning(s): "
                + "; ".join(f"{r.section}/{r.item}" for r in self.failing)
            )
        elif n_warn:
            out.append(
                f"HEALTHY with {n_warn} warning(s): " + "; ".join(f"{r.section}/{r.item}" for r in self.warnings)
            )
        else:
            out.append("HEALTHY: configured, reachable, fresh, nothing failing")
        out += [r.fix for r in self.failing if r.fix]  # what to do about a damaged file comes last, in full
        return "\n".join(out)


def run_health(
    settings: Settings, network: bool = False, since_hours: float = 24.0, now: datetime | None = None
) -> Report:
    """Every row of the health screen. Reads only; calls the network only when ``network`` is set."""
    now = now or datetime.now(timezone.utc)
    # A replay is fresh against its replay clock (read, never started here), not against the wall clock.
    try:
        replay_now = settings.replay_market().clock_now(now, start_clock=False) if settings.replay else None
        rows = configured(settings, replay_now)
    except Exception as exc:  # a refused replay file: named in its row, the rest of the screen still shown
        replay_now, rows = None, configured(settings)
        rows.append(Row("configured", "replay data", FAIL, short(exc)))

    def guarded(section: str, item: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # a broken probe is itself a failure worth a row, never a traceback
            rows.append(Row(section, item, FAIL, f"could not check: {short(exc)}"))
            return None

    wh = ReadOnlyWarehouse(settings.warehouse_path, settings.warehouse, lock_wait_s=LOCK_WAIT_S)
    status, detail = wh.open()
    rows.append(Row("reachable", "warehouse", status, detail, wh.damage))
    if wh.con is not None:
        status, detail = wh.integrity()
        rows.append(Row("reachable", "warehouse check", status, detail, wh.damage))
    rows.append(schema_row(settings, wh))
    pub_status, _, r2_cfg = publish_target(settings)
    store, why_not = None, None
    if pub_status == FAIL:
        why_not = "publish target misconfigured (see configured/publish)"
    elif r2_cfg is None:
        from kronos_assets.publishing.store import LocalStore

        rows.append(folder_row("publish folder", settings.publish_dir, "the first publish creates it"))
        store = LocalStore(settings.publish_dir)
    else:
        row, store = bucket_row(r2_cfg, network)
        rows.append(row)
        if store is None:
            why_not = "bucket not contacted (add --network)" if not network else "bucket unreachable"
    rows.append(uploads_row(settings))
    ex_rows = guarded("reachable", "exchanges", lambda: exchange_rows(settings, network, now))
    rows += ex_rows or []
    instance, inst_row = open_instance(settings)
    rows.append(inst_row)

    try:
        rows += fresh(settings, wh, replay_now or now)
    finally:
        wh.close()
    rows.append(publication_row(settings, store, replay_now or now, why_not))

    if instance is None:
        why = "no Dagster instance yet" if inst_row.status == OK else "Dagster instance not reachable"
        rows.append(Row("failing", f"runs (last {since_hours:g} h)", SKIP if inst_row.status == OK else FAIL, why))
    else:
        from kronos_assets.cli.health.failing import daemon_row, failed_checks, failed_runs, in_flight_runs, pool_slots

        try:
            for item, fn in (
                (f"runs (last {since_hours:g} h)", lambda: [failed_runs(instance, now, since_hours)]),
                ("asset checks", lambda: [failed_checks(settings, instance)]),
                ("runs in flight", lambda: [in_flight_runs(instance, now)]),
                ("pool slots", lambda: [pool_slots(instance)]),
                ("dagster daemon", lambda: [r for r in [daemon_row(instance, now)] if r]),
            ):
                rows += guarded("failing", item, fn) or []
        finally:
            instance.dispose()
    rows += guarded("failing", "alerts", lambda: [alerts_row(settings)]) or []  # delivery needs no instance
    return Report(settings, now, rows)


def schema_row(settings: Settings, wh: ReadOnlyWarehouse) -> Row:
    """The warehouse's schema version and what the next run migrates, and an older home layout it moves."""
    from kronos_assets.configuration import home_layout

    layout = home_layout.pending_note(
        settings.home,
        settings.profile_home,
        settings.market,
        home_layout.configured_demo_market(settings.config_dir, settings.profile, settings.market),
    )
    if wh.con is None and layout:
        return Row("reachable", "warehouse schema", WARN, layout)
    status, detail = wh.schema()
    if layout:
        status, detail = (WARN if status == OK or status == SKIP else status), f"{detail}; {layout}"
    return Row("reachable", "warehouse schema", status, detail)


def main(settings: Settings, network: bool = False, since_hours: float = 24.0) -> int:
    report = run_health(settings, network=network, since_hours=since_hours)
    print(report.render())
    return report.exit_code
