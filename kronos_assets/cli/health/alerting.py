"""health's ``alerts`` row: the failed runs recorded in alerts.jsonl, and with a webhook set, how many of them it
has not received yet (alerts_posted.jsonl lists the delivered ones). Reads the two files only: no POST here."""

from __future__ import annotations

from urllib.parse import urlsplit

from kronos_assets.base import environment
from kronos_assets.cli.health.rows import OK, WARN, Row
from kronos_assets.configuration.settings import Settings
from kronos_assets.orchestration.alerts import ALERTS_FILE, pending_alerts, recorded_alerts

RETRIED_BY = "retried by the recover_dead_runs_and_deliver_alerts sensor and by `kronos-assets run`"


def alerts_row(settings: Settings) -> Row:
    folder = settings.profile_home
    recorded = recorded_alerts(folder)
    url = environment.webhook_url()
    where = folder / ALERTS_FILE
    if not url:
        return Row(
            "failing",
            "alerts",
            OK,
            f"{len(recorded)} recorded in {where}; no webhook (set {environment.WEBHOOK} to post them)",
        )
    host = urlsplit(str(url)).hostname or "?"  # the address often carries a token: only its host is shown
    pending = pending_alerts(folder)
    if not pending:
        return Row("failing", "alerts", OK, f"{len(recorded)} recorded, all delivered to the webhook at {host}")
    oldest = pending[0]
    return Row(
        "failing",
        "alerts",
        WARN,
        f"{len(pending)} of {len(recorded)} not delivered to the webhook at {host} (oldest: run "
        f"{str(oldest.get('run_id', '?'))[:8]} at {oldest.get('time', '?')}); {RETRIED_BY}; "
        f"listed in {where}",
    )
