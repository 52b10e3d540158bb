"""Alerts: each failed run is recorded once in ``alerts.jsonl`` and posted as JSON to a webhook when one is set.

Exactly once per run: the record is keyed by run id, so the failure sensor, ``kronos-assets run`` and a sensor
tick re-evaluated after a timeout can all report the same run and only the first counts. Posting is separate
and retried: an alert is pending until a POST succeeds (``alerts_posted.jsonl`` lists the run ids delivered),
every delivery round tries each pending alert within one short overall deadline, and a failed POST is tried again
on the next round, never recorded twice. The webhook address comes from KRONOS_ALERT_WEBHOOK only and is never logged
(it often
carries a token).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kronos_assets.base import environment
from kronos_assets.base.locks import LockHeld, file_lock

WEBHOOK_ENV = environment.WEBHOOK
ALERTS_FILE, POSTED_FILE = "alerts.jsonl", "alerts_posted.jsonl"
POST_TIMEOUT_S = 3.0  # one POST
ROUND_DEADLINE_S = 8.0  # all POSTs of one delivery round (a sensor tick, the end of `kronos-assets run`)
LOCK_WAIT_S = 30.0  # longer than a delivery round holds the lock


class WebhookTimeout(RuntimeError):
    """The webhook did not answer within the POST's timeout."""


def _locked(folder: Path) -> file_lock:
    """One writer at a time across processes (the daemon's sensor and the CLI may report the same run)."""
    folder.mkdir(parents=True, exist_ok=True)
    return file_lock(folder / ".alerts.lock", LOCK_WAIT_S, "the alerts lock")


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash mid-append: the complete ones still count
    return out


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a+b") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell():
            fh.seek(-1, os.SEEK_END)
            cut = fh.read(1) != b"\n"  # a line cut by a crash: start on a fresh line, never glued to it
            fh.seek(0, os.SEEK_END)
            if cut:
                fh.write(b"\n")
        fh.write((json.dumps(record, sort_keys=True, default=str) + "\n").encode())
        fh.flush()
        os.fsync(fh.fileno())


def recorded_alerts(folder: Path) -> list[dict[str, Any]]:
    return _read_lines(folder / ALERTS_FILE)


def record_alert(folder: Path, alert: dict[str, Any]) -> bool:
    """Appends the alert unless its run id is already recorded; True when it was new."""
    with _locked(folder):
        if any(a.get("run_id") == alert["run_id"] for a in recorded_alerts(folder)):
            return False
        _append(folder / ALERTS_FILE, alert)
        return True


def pending_alerts(folder: Path) -> list[dict[str, Any]]:
    posted = {p.get("run_id") for p in _read_lines(folder / POSTED_FILE)}
    return [a for a in recorded_alerts(folder) if a.get("run_id") not in posted]


def deliver_pending(
    folder: Path, url: str | None = None, deadline_s: float = ROUND_DEADLINE_S, timeout_s: float = POST_TIMEOUT_S
) -> str:
    """POSTs every pending alert once, within ``deadline_s`` in all; what fails stays pending for the next
    round. Returns a summary safe to log (host only)."""
    url = url or environment.webhook_url()
    if not url:
        return "no webhook configured"
    host = urlsplit(url).hostname or "?"
    end = time.monotonic() + deadline_s
    try:
        sent, failed = _deliver_locked(folder, url, deadline_s, timeout_s, end)
    except LockHeld as exc:  # a round stuck past its deadline (a stopped process): this one leaves them pending
        sent, failed = 0, [str(exc)]
    left_over = len(pending_alerts(folder))
    summary = f"webhook at {host}: {sent} posted"
    return summary + (f", {left_over} pending for the next round ({failed[-1]})" if left_over else "")


def _deliver_locked(folder: Path, url: str, deadline_s: float, timeout_s: float, end: float) -> tuple[int, list[str]]:
    """One round under the alerts lock: how many were posted, and why the others were not."""
    sent, failed = 0, []
    with _locked(folder):  # two rounds at once would post the same alert twice
        # Every pending alert gets its try, oldest first: one the webhook refuses (an HTTP error, a refused
        # connection: answered at once) must not hold back the others. A webhook that does not answer in time
        # ends the round: the next POST would wait as long, and a failure sensor runs a round per failed run.
        for alert in pending_alerts(folder):
            left = end - time.monotonic()
            if left <= 0.2:
                failed.append(f"the round's {deadline_s:g} s deadline reached")
                break
            try:
                post_webhook(alert, url, attempts=1, timeout_s=min(timeout_s, left))
            except WebhookTimeout as exc:
                failed.append(str(exc))
                break
            except RuntimeError as exc:
                failed.append(str(exc))
                continue
            _append(folder / POSTED_FILE, {"run_id": alert["run_id"], "posted_at": time.time()})
            sent += 1
    return sent, failed


def post_webhook(
    alert: dict[str, Any], url: str | None = None, attempts: int = 1, timeout_s: float = POST_TIMEOUT_S
) -> str:
    """POST the alert; returns a description safe to log (host only). Raises after the last failed attempt."""
    url = url or environment.webhook_url()
    if not url:
        return "no webhook configured"
    host = urlsplit(url).hostname or "?"
    body = json.dumps({"text": alert.get("summary", "kronos_assets run failed"), "alert": alert}, default=str).encode()
    for attempt in range(1, attempts + 1):
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return f"posted to {host} (HTTP {resp.status})"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            if attempt == attempts:
                timed_out = isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)
                raise (WebhookTimeout if timed_out else RuntimeError)(
                    f"webhook at {host} failed after {attempts} attempt(s): "
                    f"{'no answer in time' if timed_out else type(exc).__name__}"
                ) from None
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")
