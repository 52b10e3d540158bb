"""health's ``fresh`` rows: per series the newest clean candle and forecast, and the newest publication, judged by
``market.rules.freshness``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from kronos_assets.cli.health.rows import FAIL, OK, SKIP, WARN, Row, fmt_age, fmt_time, short, worst
from kronos_assets.configuration.settings import Settings
from kronos_assets.market.rules import FRESH_FAIL_BARS, FRESH_WARN_BARS, freshness
from kronos_assets.warehouse.readonly import ReadOnlyWarehouse


def fresh(settings: Settings, wh: ReadOnlyWarehouse, now: datetime) -> list[Row]:
    if wh.con is None:
        status, why = wh.problem or (WARN, "warehouse not opened")
        return [
            Row(
                "fresh",
                "candles and forecasts",
                FAIL if status == FAIL or "does not exist" in why else WARN,
                f"not checked: {why}",
            )
        ]
    rows = []
    for tf in settings.timeframes:
        step = tf.bar.delta
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
    step = min(tf.bar.delta for tf in settings.timeframes)
    age = now - generated
    status = freshness(age, step)
    detail = (
        f"newest origin {fmt_time(generated)} ({fmt_age(age)}), {len(manifest.get('objects', {}))} objects, "
        f"profile {manifest.get('profile')}; {where}"
    )
    if manifest.get("profile") not in (None, settings.profile):
        status = worst([status, WARN])
        detail += f" (published by profile {manifest.get('profile')}, not {settings.profile})"
    return Row("fresh", "publication", status, detail)
