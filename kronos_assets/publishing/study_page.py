"""The real-data study's page (study.html, beside the dashboard) and its JSON (study.json), rendered from the
record that kronos_assets/evaluation/study_record.py computes from the warehouse."""

from __future__ import annotations

import json
from typing import Any

from kronos_assets.publishing.pages import TEMPLATES
from kronos_assets.publishing.sentences import pct, utc_minute
from kronos_assets.publishing.store import Artifact

CACHE = "public, max-age=300"  # rewritten when the study is run again


def _p(x: float | None) -> str:
    return "–" if x is None else f"{x:.2g}"


def _signed(x: float | None) -> str:
    return pct(x, signed=True) if x is not None else "–"


def study_html(record: dict[str, Any]) -> str:
    return TEMPLATES.get_template("study.html.j2").render(
        r=record,
        pct=pct,
        signed=_signed,
        p=_p,
        minute=utc_minute,
        months=lambda entry: sorted(entry["months"].items()),
    )


def publish_study(store: Any, record: dict[str, Any]) -> str:
    """Writes study.json, then study.html (the page last: a reader who sees it finds its JSON); returns where
    the page is."""
    store.put(Artifact.of("study.json", (json.dumps(record, indent=1, default=str) + "\n").encode(), CACHE))
    store.put(Artifact.of("study.html", study_html(record).encode(), CACHE))
    return store.location("study.html")
