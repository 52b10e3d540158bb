"""A series' Plotly figures as one shared script, so a publish writes each figure once, not once per page.

    series/<S>/<tf>/figures.js            (latest, loaded by its versioned copy) every chart of the series:
                                          KRONOS_FIGURES["<symbol> <tf>"] = {fan, reliability, pit}
    assets/plotly-templates-<sha16>.js    the plotly_white template (~7 KB of JSON) the figures name rather than
                                          carry; immutable, written once per plotly release

The dashboard (index.html) and the series' chart page (chart.html) both load the figures file beside plotly.js;
the page itself then holds a few lines that draw it. The bytes are the same for the same snapshot.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from kronos_assets.publishing.charts import fan_chart, pit_chart, reliability_chart
from kronos_assets.publishing.contract import SeriesSnapshot
from kronos_assets.publishing.keys import series_keys, versioned_key
from kronos_assets.publishing.public import rounded

TEMPLATE = "plotly_white"  # what every chart of the site uses (charts.py)


@lru_cache(maxsize=1)
def _template() -> dict[str, Any]:
    """The template as it appears inside a figure's JSON."""
    return json.loads(pio.to_json(go.Figure(layout={"template": TEMPLATE}), validate=False))["layout"]["template"]


@lru_cache(maxsize=1)
def templates_js() -> bytes:
    body = json.dumps({TEMPLATE: _template()}, sort_keys=True, separators=(",", ":"))
    return f"window.PLOTLY_TEMPLATES = {body};\n".encode()


def templates_key() -> str:
    return f"assets/plotly-templates-{hashlib.sha256(templates_js()).hexdigest()[:16]}.js"


def figure_dict(fig: Any) -> dict[str, Any]:
    """The figure's JSON with the shared template named instead of copied, and its traces' numbers to the
    digits a chart can show (a quantile's 17 digits are a third of a figure's bytes)."""
    out = json.loads(pio.to_json(fig, validate=False))
    out["data"] = rounded(out.get("data", []))  # 7 digits: the charts show 6 (",.6~g")
    if out.get("layout", {}).get("template") == _template():
        out["layout"]["template"] = TEMPLATE
    return out


def series_id(snapshot: SeriesSnapshot) -> str:
    return f"{snapshot['symbol']} {snapshot['timeframe']}"


def series_figures(snapshot: SeriesSnapshot) -> dict[str, dict[str, Any]]:
    """The fan chart, and the reliability and PIT charts once the track record has scored forecasts."""
    figs = {"fan": figure_dict(fan_chart(snapshot))}
    tr = snapshot.get("track_record") or {}
    if tr.get("n"):
        figs |= {"reliability": figure_dict(reliability_chart(tr)), "pit": figure_dict(pit_chart(tr))}
    return figs


def script_text(value: Any) -> str:
    """Compact JSON with ``<`` written as ``\\u003c`` (as plotly writes it): no markup inside a script element."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).replace("<", "\\u003c")


def figures_file(snapshot: SeriesSnapshot) -> tuple[str, bytes]:
    """The series' figures.js: its key and its bytes. A publish asks for it from the plan, the dashboard and the
    chart page: the figures are drawn once per snapshot."""
    return _figures_file(json.dumps(snapshot, sort_keys=True, default=str))


@lru_cache(maxsize=16)
def _figures_file(snapshot_json: str) -> tuple[str, bytes]:
    snapshot = json.loads(snapshot_json)
    body, name = script_text(rounded(series_figures(snapshot))), script_text(series_id(snapshot))
    text = f"(window.KRONOS_FIGURES = window.KRONOS_FIGURES || {{}})[{name}] = {body};\n"
    return series_keys(snapshot["symbol"], snapshot["timeframe"])["figures.js"], text.encode()


def figures_src(snapshot: SeriesSnapshot) -> str:
    """The versioned copy of the series' figures.js (from the site root): what pages load."""
    key, body = figures_file(snapshot)
    return versioned_key(key, hashlib.sha256(body).hexdigest())
