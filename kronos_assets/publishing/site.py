"""The published site: per-series JSON and charts, a dashboard page, a scoreboard, and a manifest written last.

Layout (keys inside the local folder or the bucket):

    series/<SYMBOL>/<tf>/latest.json            newest forecast of the series          (short cache)
    series/<SYMBOL>/<tf>/history/<origin>.json  one immutable file per forecast origin (long cache)
    series/<SYMBOL>/<tf>/chart.html             interactive chart                      (short cache)
    scoreboard.json                             the track record of every series       (short cache)
    index.html                                  the dashboard                          (short cache)
    assets/plotly-<version>.min.js              plotly.js, served beside the page      (long cache)
    manifest.json                               every object with its sha256, last     (short cache)

Each series writes only under its own prefix, so one coin's run can never overwrite another's files.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import plotly
import plotly.io as pio

from kronos_assets.publishing.charts import fan_chart
from kronos_assets.publishing.store import IMMUTABLE_CACHE, LATEST_CACHE, Artifact, Store

JSON = "application/json"
HTML = "text/html; charset=utf-8"
JS = "application/javascript"
PLOTLY_JS_KEY = f"assets/plotly-{plotly.__version__}.min.js"
DEMO_BANNER = "SYNTHETIC MARKET — demo profile: these prices are generated, not real."


def _json(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True, default=str).encode()


def series_prefix(symbol: str, timeframe: str) -> str:
    return f"series/{symbol.replace('/', '-')}/{timeframe}"


def origin_slug(origin: str) -> str:
    return origin.replace(":", "-").replace("+00-00", "Z")


def series_artifacts(snapshot: dict[str, Any], history: Iterable[dict[str, Any]]) -> list[Artifact]:
    """Artifacts of one series: latest JSON, immutable history JSON per origin, and the chart page."""
    prefix = series_prefix(snapshot["symbol"], snapshot["timeframe"])
    out = [
        Artifact(f"{prefix}/history/{origin_slug(h['origin'])}.json", _json(h), JSON, IMMUTABLE_CACHE)
        for h in history
    ]
    out.append(Artifact(f"{prefix}/latest.json", _json(snapshot), JSON, LATEST_CACHE))
    depth = prefix.count("/") + 1
    page = fan_chart(snapshot).to_html(include_plotlyjs="../" * depth + PLOTLY_JS_KEY, full_html=True, div_id="chart")
    out.append(Artifact(f"{prefix}/chart.html", page.encode(), HTML, LATEST_CACHE))
    return out


def _card(label: str, value: str, note: str = "") -> str:
    note_html = f'<div class="note">{html.escape(note)}</div>' if note else ""
    return f'<div class="card"><div class="label">{html.escape(label)}</div><div class="value">{html.escape(value)}</div>{note_html}</div>'


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _series_section(snap: dict[str, Any], board: list[dict[str, Any]], idx: int) -> str:
    primary = snap["forecasts"][snap["primary_model"]]
    last = primary["last_close"]
    expected = primary["steps"][-1]["q50"] / last - 1
    row = next((r for r in board if r["model"] == snap["primary_model"]), None)
    skill = row.get("crps_skill_vs_rw_vol") if row else None
    cards = "".join(
        [
            _card("Last price", f"{last:,.4g}", snap["last_bar"]),
            _card(f"P(up) in {primary['horizon']} bars", _pct(primary["p_up"]),
                  f"measured Brier {row['brier_up']:.3f}" if row and row.get("brier_up") is not None else "not yet scored"),
            _card("P(volatility amplification)", _pct(primary["p_vol_amp"])),
            _card("Expected move (median)", f"{100 * expected:+.2f} %"),
            _card("CRPS skill vs random walk", "n/a" if skill is None else f"{100 * skill:+.1f} %",
                  f"{row['n_forecasts']} scored forecasts" if row else "no scored forecasts yet"),
        ]
    )
    fig_json = pio.to_json(fan_chart(snap), validate=False)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in SCORE_COLUMNS) + "</tr>" for r in board
    )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in SCORE_COLUMNS)
    return f"""
<section class="series">
  <h2>{html.escape(snap['symbol'])} · {html.escape(snap['timeframe'])}
      <span class="sub">forecast at {html.escape(snap['origin'])} by {html.escape(snap['primary_model'])}</span></h2>
  <div class="cards">{cards}</div>
  <div class="chart" id="chart-{idx}"></div>
  <script>Plotly.newPlot("chart-{idx}", ...(function(f){{return [f.data, f.layout, {{responsive: true}}];}})({fig_json}));</script>
  <div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>
</section>"""


SCORE_COLUMNS = ("model", "n_forecasts", "mae", "mape", "direction_hit_rate", "crps", "coverage_80", "brier_up",
                 "crps_skill_vs_rw_vol")


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def dashboard_html(snapshots: list[dict[str, Any]], scoreboard: list[dict[str, Any]], generated_at: str,
                   synthetic: bool) -> str:
    banner = f'<div class="banner">{html.escape(DEMO_BANNER)}</div>' if synthetic else ""
    sections = []
    for i, snap in enumerate(snapshots):
        board = [r for r in scoreboard if r["symbol"] == snap["symbol"] and r["timeframe"] == snap["timeframe"]]
        sections.append(_series_section(snap, board, i))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kronos forecasts and track record</title>
<script src="{PLOTLY_JS_KEY}"></script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 12px; color: #222; }}
.banner {{ background: #b71c1c; color: #fff; font-weight: 700; padding: 10px; text-align: center; border-radius: 6px; }}
.cards {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 8px; }}
.card {{ border: 1px solid #ddd; border-radius: 6px; padding: 8px; }}
.label {{ font-size: 12px; color: #666; }} .value {{ font-size: 22px; font-weight: 600; }} .note {{ font-size: 11px; color: #888; }}
.sub {{ font-size: 13px; color: #777; font-weight: 400; }}
.table-wrap {{ overflow-x: auto; }} table {{ border-collapse: collapse; font-size: 12px; width: 100%; }}
td, th {{ border-bottom: 1px solid #eee; padding: 4px 6px; text-align: right; }} td:first-child, th:first-child {{ text-align: left; }}
footer {{ font-size: 12px; color: #777; margin-top: 20px; }}
</style></head>
<body>
{banner}
<h1>Kronos forecasts and their track record</h1>
<p>Updated {html.escape(generated_at)} (<span id="age"></span>). Every forecast is scored once its horizon has passed,
next to a random walk and a random walk with historical volatility.</p>
{''.join(sections) or '<p>No forecasts published yet.</p>'}
<footer>Scores at the horizon's last bar; CRPS on log returns; skill = 1 − CRPS / CRPS of the random walk with volatility
(positive means better than the baseline).</footer>
<script>
const t = new Date({json.dumps(generated_at)});
const mins = Math.round((Date.now() - t.getTime()) / 60000);
document.getElementById("age").textContent = mins < 120 ? mins + " min ago" : Math.round(mins / 60) + " h ago";
</script>
</body></html>"""


def publish_site(
    store: Store,
    series: list[tuple[dict[str, Any], list[dict[str, Any]]]],
    all_snapshots: list[dict[str, Any]],
    scoreboard: list[dict[str, Any]],
    synthetic: bool,
    profile: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Put the given series' artifacts, then the dashboard and scoreboard, then the manifest, in that order.

    ``series`` holds (latest snapshot, history records) per series being published now; ``all_snapshots`` the
    latest snapshot of every series the dashboard shows. Returns the manifest.
    """
    now = now or datetime.now(timezone.utc)
    generated = now.isoformat(timespec="seconds")
    put: list[Artifact] = []
    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    put.append(Artifact(PLOTLY_JS_KEY, js.read_bytes(), JS, IMMUTABLE_CACHE))
    for snap, history in series:
        put.extend(series_artifacts(snap, history))
    put.append(Artifact("scoreboard.json", _json({"generated_at": generated, "synthetic": synthetic, "rows": scoreboard}),
                        JSON, LATEST_CACHE))
    put.append(Artifact("index.html", dashboard_html(all_snapshots, scoreboard, generated, synthetic).encode(), HTML,
                        LATEST_CACHE))
    previous = store.get("manifest.json")
    objects = json.loads(previous)["objects"] if previous else {}
    for art in put:
        store.put(art)
        objects[art.key] = {"sha256": art.sha256, "bytes": len(art.body), "content_type": art.content_type,
                            "cache_control": art.cache_control}
    manifest = {"generated_at": generated, "profile": profile, "synthetic": synthetic, "objects": dict(sorted(objects.items()))}
    store.put(Artifact("manifest.json", _json(manifest), JSON, LATEST_CACHE))
    return manifest
