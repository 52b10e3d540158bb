"""Alerts: a failed run is recorded in <home>/alerts.jsonl and posted as JSON to a webhook when one is set.

The webhook address comes from KRONOS_ALERT_WEBHOOK only and is never logged (it often carries a token).
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

WEBHOOK_ENV = "KRONOS_ALERT_WEBHOOK"


def record_alert(home: Path, alert: dict[str, Any]) -> Path:
    path = home / "alerts.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(alert, sort_keys=True, default=str) + "\n")
    return path


def post_webhook(alert: dict[str, Any], url: str | None = None, attempts: int = 3, timeout_s: float = 10.0) -> str:
    """POST the alert; returns a description safe to log (host only). Raises after the last failed attempt."""
    url = url or os.environ.get(WEBHOOK_ENV)
    if not url:
        return "no webhook configured"
    host = urlsplit(url).hostname or "?"
    body = json.dumps({"text": alert.get("summary", "kronos_assets run failed"), "alert": alert}, default=str).encode()
    for attempt in range(1, attempts + 1):
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return f"posted to {host} (HTTP {resp.status})"
        except (urllib.error.URLError, TimeoutError) as exc:
            if attempt == attempts:
                raise RuntimeError(f"webhook at {host} failed after {attempts} attempts: {type(exc).__name__}") from None
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")
