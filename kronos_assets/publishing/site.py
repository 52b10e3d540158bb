"""The published site: per-series JSON, Parquet and charts, a dashboard page, a scoreboard, and a manifest.

Layout (keys inside the local folder or the bucket):

    series/<SYMBOL>/<tf>/latest.json                newest forecast, track record, links  (latest: short cache)
    series/<SYMBOL>/<tf>/chart.html                 interactive chart                     (latest)
    series/<SYMBOL>/<tf>/chart.png                  the same chart as a PNG               (latest)
    series/<SYMBOL>/<tf>/scoreboard.json            track record of the series            (latest)
    series/<SYMBOL>/<tf>/history/<origin>.json      one file per forecast origin          (immutable: long cache)
    series/<SYMBOL>/<tf>/paths/<origin>.parquet     every model's sample paths, per origin (immutable)
    scoreboard.json                                 track record of every series          (latest)
    index.html                                      the dashboard                         (latest)
    assets/plotly-<version>.min.js                  plotly.js, served beside the page     (immutable)
    manifest.json                                   what is published, written last       (no-cache)

Every "latest" file also exists as a versioned copy beside it, named by its content (``latest.<sha16>.json``,
``index.<sha16>.html``...), which never changes once written. The manifest lists every immutable object
(history, paths, plotly.js and the versioned copies) with its sha256, size, content type and cache policy,
and maps each latest name to its versioned copy (``aliases``). Publishing puts the immutable objects first,
then the latest names (each after everything it links to), then the manifest, and only then deletes the
versioned copies two publishes old. So a reader that follows the manifest always finds every object it lists,
with the listed sha256, even while the next publish runs or after one failed half-way; a browser opening a
latest name gets a page whose links already exist.

Each series writes only under its own prefix, so one coin's run can never overwrite another's files.
Re-publishing the same data changes no byte: every content (generated_at included) derives from the data.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import plotly
import plotly.io as pio
import polars as pl

from kronos_assets.publishing.charts import fan_chart, fan_chart_png, pit_chart, reliability_chart
from kronos_assets.publishing.snapshots import MIN_BIN, MIN_INDEPENDENT
from kronos_assets.publishing.store import (
    IMMUTABLE_CACHE,
    LATEST_CACHE,
    MANIFEST_CACHE,
    Artifact,
    Store,
    check_key,
)

MANIFEST_KEY = "manifest.json"
MANIFEST_FORMAT = 2
PLOTLY_JS_KEY = f"assets/plotly-{plotly.__version__}.min.js"
DEMO_BANNER = "SYNTHETIC MARKET — demo profile: these prices are generated, not real."
_VERSIONED_RE = re.compile(r"\.[0-9a-f]{16}(\.[a-z]+)$")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True, default=str).encode()


def series_prefix(symbol: str, timeframe: str) -> str:
    return check_key(f"series/{symbol.replace('/', '-')}/{timeframe}")


def origin_slug(origin: str) -> str:
    return origin.replace(":", "-").replace("+00-00", "Z")


def versioned_key(key: str, sha256: str) -> str:
    """latest.json -> latest.<first 16 hex of sha256>.json, in the same folder (relative links keep working)."""
    stem, dot, ext = key.rpartition(".")
    return f"{stem}.{sha256[:16]}.{ext}" if dot else f"{key}.{sha256[:16]}"


def is_versioned(key: str) -> bool:
    return bool(_VERSIONED_RE.search(key))


def series_keys(symbol: str, timeframe: str) -> dict[str, str]:
    prefix = series_prefix(symbol, timeframe)
    return {name: f"{prefix}/{name}" for name in ("latest.json", "chart.html", "chart.png", "scoreboard.json")}


@dataclass
class SeriesUpdate:
    """What one run publishes for a series: history (and paths) of its origins, and the latest state unless a
    newer one is already published (``snapshot`` None: a backfill of old bars must not roll ``latest`` back)."""

    symbol: str
    timeframe: str
    history: list[dict[str, Any]]
    paths: dict[str, pl.DataFrame] = field(default_factory=dict)
    snapshot: dict[str, Any] | None = None
    scoreboard: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SitePlan:
    immutable: list[Artifact] = field(default_factory=list)  # never change once written
    latest: list[Artifact] = field(default_factory=list)  # fixed names; each gets a versioned copy

    def add_latest(self, key: str, body: bytes) -> None:
        self.latest.append(Artifact.of(key, body, LATEST_CACHE))


def paths_parquet(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", statistics=True)
    return buf.getvalue()


def latest_document(snapshot: dict[str, Any]) -> dict[str, Any]:
    """latest.json: the snapshot with the banner flag and links (relative to the site root) to the rest."""
    keys = series_keys(snapshot["symbol"], snapshot["timeframe"])
    prefix = series_prefix(snapshot["symbol"], snapshot["timeframe"])
    slug = origin_slug(snapshot["origin"])
    return snapshot | {
        "demo_banner": DEMO_BANNER if snapshot.get("synthetic") else None,
        "links": {
            "history": f"{prefix}/history/{slug}.json",
            "paths": f"{prefix}/paths/{slug}.parquet",
            "chart": keys["chart.html"],
            "chart_png": keys["chart.png"],
            "scoreboard": keys["scoreboard.json"],
            "dashboard": "index.html",
        },
    }


def chart_page(snapshot: dict[str, Any]) -> bytes:
    depth = series_prefix(snapshot["symbol"], snapshot["timeframe"]).count("/") + 1
    fig = fan_chart(snapshot)
    page = fig.to_html(include_plotlyjs="../" * depth + PLOTLY_JS_KEY, full_html=True, div_id="chart",
                       config={"responsive": True, "displaylogo": False})
    banner = (f'<div style="background:#b71c1c;color:#fff;font:700 14px system-ui,sans-serif;padding:8px;'
              f'text-align:center">{html.escape(DEMO_BANNER)}</div>' if snapshot.get("synthetic") else "")
    head = ('<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>{html.escape(snapshot['symbol'])} {html.escape(snapshot['timeframe'])} forecast</title>")
    page = page.replace("<head>", "<head>" + head, 1).replace("<body>", "<body>" + banner, 1)
    return page.encode()


def series_plan(update: SeriesUpdate, plan: SitePlan) -> None:
    prefix = series_prefix(update.symbol, update.timeframe)
    for h in update.history:
        if (h["symbol"], h["timeframe"]) != (update.symbol, update.timeframe):
            raise ValueError(f"history of {h['symbol']} {h['timeframe']} handed to {update.symbol} {update.timeframe}")
        plan.immutable.append(Artifact.of(f"{prefix}/history/{origin_slug(h['origin'])}.json", _json(h),
                                          IMMUTABLE_CACHE))
    for origin, frame in sorted(update.paths.items()):
        plan.immutable.append(Artifact.of(f"{prefix}/paths/{origin_slug(origin)}.parquet", paths_parquet(frame),
                                          IMMUTABLE_CACHE))
    snap = update.snapshot
    if snap is None:
        return
    keys = series_keys(update.symbol, update.timeframe)
    plan.add_latest(keys["chart.png"], fan_chart_png(snap))
    plan.add_latest(keys["chart.html"], chart_page(snap))
    plan.add_latest(keys["scoreboard.json"], _json({
        "symbol": snap["symbol"], "timeframe": snap["timeframe"], "as_of": snap["origin"],
        "synthetic": snap.get("synthetic", False), "track_record": snap.get("track_record"),
        "verdict": snap.get("verdict"), "rows": update.scoreboard,
    }))
    plan.add_latest(keys["latest.json"], _json(latest_document(snap)))


# ---------------------------------------------------------------------------------------------------- dashboard

SCORE_COLUMNS = (  # (column, header, format, header tooltip)
    ("model", "model", None, ""),
    ("n_forecasts", "scored", None, "forecasts scored, and about how many non-overlapping horizons they cover"),
    ("mape", "MAPE", "percent_units", "mean absolute % error of the median at the horizon"),
    ("direction_hit_rate", "direction", "pct",
     "share of forecasts whose median moved the right way (n/a: the model never forecasts a move)"),
    ("crps", "CRPS", "num", "continuous ranked probability score on log returns (lower is better)"),
    ("coverage_80", "80 % band (expected)", "coverage",
     "share of outcomes inside the 80 % band, and in brackets what a perfectly calibrated forecaster's band "
     "covers with the stored number of sample paths N: 80 % x (N-1)/(N+1), 74.8 % for 30 paths; 'too narrow' or "
     "'too wide' when more than 2 standard errors away, counted over independent horizons"),
    ("brier_up", "Brier P(up)", "num",
     "Brier score of P(up): 0 is perfect, 0.25 a coin flip (n/a: a point forecast gives no probability)"),
    ("crps_skill_vs_rw_vol", "skill vs RW+vol", "signed_pct",
     "1 - CRPS / CRPS of the random walk with volatility on the same origins (positive is better)"),
)
NA_COLUMNS = ("direction_hit_rate", "brier_up")  # NULL there: the model does not forecast it


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:+.1f} %" if signed else f"{100 * x:.1f} %"


def _price(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:,.2f}"
    return f"{x:.4g}"


def _card(label: str, value: str, note: str = "", muted: bool = False, title: str = "") -> str:
    note_html = f'<div class="note">{html.escape(note)}</div>' if note else ""
    cls = "card muted" if muted else "card"
    tip = f' title="{html.escape(title)}"' if title else ""
    return (f'<div class="{cls}"{tip}><div class="label">{html.escape(label)}</div>'
            f'<div class="value">{html.escape(value)}</div>{note_html}</div>')


def _not_yet(tr: dict[str, Any], n: int | None = None, k: int | None = None) -> str:
    n = tr.get("n", 0) if n is None else n
    k = tr.get("n_independent", 0) if k is None else k
    if n == 0:
        return "no forecast scored yet"
    return (f"{n} scored ≈ {k} independent horizon{'s' if k != 1 else ''}; "
            f"needs {tr.get('min_independent', MIN_INDEPENDENT)}")


def _p_up_note(p: float, tr: dict[str, Any]) -> tuple[str, bool]:
    if not tr.get("enough"):
        return "calibration not yet scored: " + _not_yet(tr), True
    parts = []
    for b in tr.get("calibration", []):
        if b["from"] <= p < b["to"] or (b["to"] == 1.0 and p == 1.0):
            if b["n"] >= MIN_BIN:
                parts.append(f"when it said {100 * b['from']:.0f}–{100 * b['to']:.0f} %, it rose "
                             f"{100 * b['up_rate']:.0f} % of {b['n']} times")
            else:
                parts.append(f"only {b['n']} past forecasts in the {100 * b['from']:.0f}–{100 * b['to']:.0f} % range")
    parts.append(f"Brier {tr['brier_up']:.3f} (coin flip 0.250)")
    return "; ".join(parts), False


def _skill_card(snap: dict[str, Any]) -> str:
    """CRPS skill against the random walk with volatility over the verdict's window, with the DM test's word."""
    verdict = snap.get("verdict") or {}
    label = "Skill vs random walk with volatility (CRPS, 30 days)"
    if not verdict:
        return _card(label, "not yet scored", "no forecast scored yet", muted=True)
    c = verdict.get("crps")
    if c is None:
        return _card(label, "–", "the model is itself this baseline", muted=True)
    if c["p_value"] is None or c["relative"] is None:
        return _card(label, "not yet scored", _not_yet({}, c["n"], c["n_independent"]), muted=True)
    if c["significant"]:
        side = {"model": "better than", "reference": "worse than"}[c["winner"]]
        word = f"{side} the baseline (significant, p = {c['p_value']:.2g})"
    else:
        word = f"within noise of the baseline (p = {c['p_value']:.2f})"
    return _card(label, f"{-100 * c['relative']:+.1f} %",
                 f"{word}; Diebold–Mariano test over ≈{c['n_independent']} independent horizons",
                 title="1 − CRPS(model) / CRPS(baseline) on the origins both scored; positive is better")


def _table(board: list[dict[str, Any]], horizon: int, bar_seconds: int) -> str:
    head = "".join(f'<th title="{html.escape(tip)}">{html.escape(label)}</th>' for _, label, _, tip in SCORE_COLUMNS)
    if not board:
        return f'<p class="note">No forecast scored yet: a forecast is scored once its {horizon} bars have passed.</p>'
    rows = []
    for r in board:
        k = _independent_approx(r, horizon, bar_seconds)
        early = k < MIN_INDEPENDENT
        cells = []
        for col, _, kind, _ in SCORE_COLUMNS:
            v = r.get(col)
            if col in NA_COLUMNS and v is None:
                txt = "n/a"
            elif col == "model":
                txt = str(v) + (" · too few to judge" if early else "")
            elif col == "n_forecasts":
                txt = f"{v} (≈{k} indep.)"
            elif col == "crps_skill_vs_rw_vol" and (early or r.get("model") == "random_walk_vol"):
                txt = "–" if r.get("model") == "random_walk_vol" else "not yet scored"
            elif v is None:
                txt = "–"
            elif kind == "pct":
                txt = _pct(v)
            elif kind == "coverage":
                expected = r.get("expected_coverage_80")
                txt = _pct(v) + (f" ({_pct(expected)})" if expected is not None else " (n/a)")
                txt += "" if early or expected is None else coverage_judgement(v, expected, k)
            elif kind == "percent_units":
                txt = f"{v:.2f} %"
            elif kind == "signed_pct":
                txt = _pct(v, signed=True)
            elif kind == "num":
                txt = f"{v:.4g}"
            else:
                txt = str(v)
            cells.append(f"<td>{html.escape(txt)}</td>")
        rows.append(f'<tr class="{"early" if early else ""}">' + "".join(cells) + "</tr>")
    return (f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            "</div>")


def coverage_judgement(observed: float, expected: float, n_independent: int) -> str:
    """' · too narrow' / ' · too wide' when the observed coverage is more than two standard errors from what a
    calibrated forecaster with this path count covers, counting independent horizons (not overlapping
    forecasts) as the sample; '' when within that."""
    se = math.sqrt(expected * (1 - expected) / n_independent)
    if observed < expected - 2 * se:
        return " · too narrow"
    return " · too wide" if observed > expected + 2 * se else ""


def _independent_approx(row: dict[str, Any], horizon: int, bar_seconds: int) -> int:
    if not row.get("n_forecasts") or not row.get("first_origin"):
        return 0
    span = (datetime.fromisoformat(row["last_origin"]) - datetime.fromisoformat(row["first_origin"])).total_seconds()
    return min(int(row["n_forecasts"]), int(span // (horizon * bar_seconds)) + 1)


def _verdict_paragraph(snap: dict[str, Any]) -> str:
    verdict = snap.get("verdict")
    if verdict is None:
        h = snap["forecasts"][snap["primary_model"]]["horizon"]
        text, cls = (f"No forecast of {snap['primary_model']} scored yet: a forecast is scored once its {h} bars "
                     "have passed."), "verdict pending"
    else:
        enough = verdict["n_independent"] >= verdict["min_independent"]
        text, cls = verdict["sentence"], "verdict" if enough else "verdict pending"
    return f'<p class="{cls}">{html.escape(text)}</p>'


def _script_json(obj: Any) -> str:
    return obj.replace("</", "<\\/") if isinstance(obj, str) else json.dumps(obj).replace("</", "<\\/")


def _series_section(snap: dict[str, Any], board: list[dict[str, Any]], idx: int) -> str:
    primary = snap["forecasts"][snap["primary_model"]]
    tr = snap.get("track_record") or {}
    last = primary["last_close"]
    end = primary["steps"][-1]
    h = primary["horizon"]
    bar_seconds = snap.get("bar_seconds", 3600)
    p_note, p_muted = _p_up_note(primary["p_up"], tr)
    vol_note = (f"Brier {tr['brier_vol_amp']:.3f} over {tr['n']} scored" if tr.get("enough") and
                tr.get("brier_vol_amp") is not None else "not yet scored: " + _not_yet(tr))
    cards = "".join([
        _card("Last price", _price(last), f"close of the {snap['last_bar'][:16].replace('T', ' ')} UTC bar"),
        _card(f"P(up) in {h} bars", _pct(primary["p_up"]), p_note,
              title="share of sample paths closing above the last price at the horizon"),
        _card(f"P(volatility amplification), {h} bars", _pct(primary["p_vol_amp"]), vol_note,
              title=f"share of sample paths more volatile over the next {h} bars than the last {h} bars were"),
        _card(f"Expected move in {h} bars (median)", f"{100 * (end['q50'] / last - 1):+.2f} %",
              f"80 % range {100 * (end['q10'] / last - 1):+.2f} % … {100 * (end['q90'] / last - 1):+.2f} %"),
        _skill_card(snap),
    ])
    fig_json = pio.to_json(fan_chart(snap), validate=False)
    keys = series_keys(snap["symbol"], snap["timeframe"])
    doc = latest_document(snap)["links"]
    links = " · ".join(
        f'<a href="{html.escape(href)}">{html.escape(text)}</a>'
        for text, href in (("interactive chart", keys["chart.html"]), ("PNG", keys["chart.png"]),
                           ("latest JSON", keys["latest.json"]), ("sample paths (Parquet)", doc["paths"]),
                           ("scoreboard JSON", keys["scoreboard.json"]))
    )
    small = (("reliability", reliability_chart), ("pit", pit_chart)) if tr.get("n") else ()
    # Both boxes first, then the drawing: a chart drawn before its neighbour exists would take the whole row.
    calibration = "".join(f'<div class="chart calib" id="chart-{idx}-{name}"></div>' for name, _ in small) + "".join(
        f'<script>drawChart("chart-{idx}-{name}", {_script_json(pio.to_json(fig(tr), validate=False))});</script>'
        for name, fig in small)
    return f"""
<section class="series" data-origin="{html.escape(snap['origin'])}" data-bar-seconds="{bar_seconds}">
  <h2>{html.escape(snap['symbol'])} · {html.escape(snap['timeframe'])}
      <span class="sub">forecast at {html.escape(snap['origin'][:16].replace('T', ' '))} UTC by
      {html.escape(snap['primary_model'])} · <span class="fresh"></span></span></h2>
  {_verdict_paragraph(snap)}
  <div class="cards">{cards}</div>
  <div class="chart" id="chart-{idx}"></div>
  <script>drawChart("chart-{idx}", {_script_json(fig_json)});</script>
  <p class="links">{links}</p>
  <div class="calibration">{calibration}</div>
  <details{' open' if idx == 0 else ''}><summary>Scoreboard: every model on {html.escape(snap['symbol'])}
  {html.escape(snap['timeframe'])}, scored at the {h}th bar</summary>{_table(board, h, bar_seconds)}</details>
</section>"""


DASHBOARD_CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 12px; color: #222; line-height: 1.35; }
h1 { font-size: 22px; margin: 12px 0 4px; } h2 { font-size: 18px; margin: 0 0 8px; }
.banner { background: #b71c1c; color: #fff; font-weight: 700; padding: 10px; text-align: center; border-radius: 6px; }
.updated { color: #555; font-size: 14px; }
.badge, .fresh { display: inline-block; padding: 1px 7px; border-radius: 9px; font-size: 12px; font-weight: 600; }
.ok { background: #e8f5e9; color: #1b5e20; } .stale { background: #fff3e0; color: #bf360c; }
.series { border-top: 1px solid #ddd; margin-top: 18px; padding-top: 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(165px, 1fr)); gap: 8px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px; min-width: 0; }
.card.muted .value { color: #999; font-size: 16px; }
.label { font-size: 12px; color: #666; } .value { font-size: 22px; font-weight: 600; overflow-wrap: anywhere; }
.note { font-size: 11px; color: #777; }
.sub { font-size: 13px; color: #777; font-weight: 400; }
.chart { width: 100%; min-height: 320px; margin-top: 8px; }
.calibration { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 8px; }
.chart.calib { min-height: 280px; min-width: 0; }
.verdict { font-size: 15px; background: #f5f5f5; border-left: 4px solid #1565c0; padding: 8px 10px;
           margin: 6px 0 10px; }
.verdict.pending { border-left-color: #9e9e9e; color: #555; }
.links { font-size: 13px; } a { color: #1565c0; }
summary { cursor: pointer; font-size: 14px; margin: 6px 0; }
.table-wrap { overflow-x: auto; } table { border-collapse: collapse; font-size: 12px; width: 100%; }
td, th { border-bottom: 1px solid #eee; padding: 4px 6px; text-align: right; white-space: nowrap; }
td:first-child, th:first-child { text-align: left; } tr.early td { color: #999; }
footer { font-size: 12px; color: #777; margin-top: 24px; }
@media (max-width: 600px) { body { padding: 8px; } h1 { font-size: 19px; } .value { font-size: 19px; }
  .cards { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
"""

DASHBOARD_JS_HEAD = """
function drawChart(id, fig) {
  var el = document.getElementById(id), small = window.innerWidth < 600;
  var fixed = (fig.layout.meta || {}).height;  // the small calibration charts keep their own height
  var layout = Object.assign({}, fig.layout, {autosize: true, height: fixed || (small ? 340 : 420)});
  if (small && !fixed) {  // a phone: the heading names the series; the legend and the tool bar take too much room
    layout.margin = {l: 45, r: 6, t: 10, b: 20};
    layout.showlegend = false;
    layout.title = {text: ""};
    var meta = fig.layout.meta || {};
    if (meta.phone_xrange) {
      layout.xaxis = Object.assign({}, fig.layout.xaxis, {range: meta.phone_xrange, autorange: false});
      layout.yaxis = Object.assign({}, fig.layout.yaxis, {range: meta.phone_yrange, autorange: false});
    }
  }
  Plotly.newPlot(el, fig.data, layout, {responsive: true, displaylogo: false, displayModeBar: !small});
}
"""

DASHBOARD_JS_TAIL = """
function age(ms) {
  var m = Math.round(ms / 60000);
  return m < 120 ? m + " min ago" : (m < 2880 ? Math.round(m / 60) + " h ago" : Math.round(m / 1440) + " days ago");
}
(function () {
  var now = Date.now();
  var updated = new Date(document.body.dataset.updated).getTime();
  document.getElementById("age").textContent = age(now - updated);
  var fresh = true;
  document.querySelectorAll("section.series").forEach(function (s) {
    var since = now - new Date(s.dataset.origin).getTime();
    var late = since - 2000 * Number(s.dataset.barSeconds);  // a forecast is due every bar: stale after two
    var el = s.querySelector(".fresh");
    el.textContent = late > 0 ? "stale: newest forecast " + age(since) : "up to date";
    el.className = "fresh " + (late > 0 ? "stale" : "ok");
    if (late > 0) fresh = false;
  });
  var b = document.getElementById("freshness");
  b.textContent = fresh ? "up to date" : "some series are stale";
  b.className = "badge " + (fresh ? "ok" : "stale");
})();
"""


def dashboard_html(snapshots: list[dict[str, Any]], scoreboard: list[dict[str, Any]], generated_at: str,
                   synthetic: bool) -> str:
    banner = f'<div class="banner" id="demo-banner">{html.escape(DEMO_BANNER)}</div>' if synthetic else ""
    when = html.escape(generated_at[:16].replace("T", " "))
    sections = []
    for i, snap in enumerate(snapshots):
        board = [r for r in scoreboard if r["symbol"] == snap["symbol"] and r["timeframe"] == snap["timeframe"]]
        sections.append(_series_section(snap, board, i))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Kronos forecasts and track record</title>
<script src="{PLOTLY_JS_KEY}"></script>
<script>{DASHBOARD_JS_HEAD}</script>
<style>{DASHBOARD_CSS}</style></head>
<body data-updated="{html.escape(generated_at)}">
{banner}
<h1>Kronos forecasts and their track record</h1>
<p class="updated">Last update: newest forecast at <time datetime="{html.escape(generated_at)}">{when} UTC</time>
(<span id="age"></span>) <span id="freshness" class="badge"></span></p>
<p class="note">Every forecast is scored once its horizon has passed, next to a random walk and a random walk with
historical volatility. A track record is shown as a number, and judged, only once it covers {MIN_INDEPENDENT}
non-overlapping horizons: forecasts made a bar apart share most of their future, so they count as far fewer
independent tests. Each series starts with one sentence that says who wins and whether it is significant.</p>
{''.join(sections) or '<p>No forecasts published yet.</p>'}
<footer>Scores at the horizon's last bar; CRPS on log returns; skill = 1 − CRPS / CRPS of the baseline on the same
origins (positive means better than the baseline). "Significant" means a Diebold–Mariano test on the paired losses
rejects equal accuracy at 5 %; its variance estimate (equal-weighted cosines, one degree of freedom per two
independent horizons, Student t) keeps that 5 % honest for overlapping forecasts (benchmarks/bench_dm_size.py).
Point error: the median's absolute error relative to the last price's. Brier scores: 0 is perfect, 0.25 is a
coin flip; n/a where a model makes no such forecast. Files: <a href="scoreboard.json">scoreboard.json</a> ·
<a href="manifest.json">manifest.json</a>.</footer>
<script>{DASHBOARD_JS_TAIL}</script>
</body></html>"""


# ---------------------------------------------------------------------------------------------------- publishing

@dataclass
class PublishReport:
    manifest: dict[str, Any]
    written: list[str]  # keys put (or found identical by the store), in order
    skipped: list[str]  # immutable keys already listed in the previous manifest with the same sha256
    deleted: list[str]  # versioned copies two publishes old
    changed_immutable: list[str]  # immutable keys whose content differs from the previous manifest's (recomputed)
    manifest_written: bool


def _read_manifest(store: Store) -> dict[str, Any]:
    raw = store.get(MANIFEST_KEY)
    if not raw:
        return {"objects": {}, "aliases": {}, "retired": []}
    m = json.loads(raw)
    m.setdefault("aliases", {})
    m.setdefault("retired", [])
    if m.get("format") != MANIFEST_FORMAT:  # format 1 listed latest names as objects: they are no longer immutable
        m["objects"] = {k: v for k, v in m.get("objects", {}).items()
                        if "/history/" in k or k.startswith("assets/") or "/paths/" in k}
    return m


def _entry(art: Artifact) -> dict[str, Any]:
    return {"sha256": art.sha256, "bytes": len(art.body), "content_type": art.content_type,
            "cache_control": art.cache_control}


def publish_site(
    store: Store,
    updates: Iterable[SeriesUpdate],
    all_snapshots: list[dict[str, Any]],
    scoreboard: list[dict[str, Any]],
    synthetic: bool,
    profile: str,
    generated_at: datetime,
    verdicts: list[dict[str, Any]] = (),
) -> PublishReport:
    """Publish the given series' artifacts, the dashboard and the scoreboard, then the manifest, in that order.

    ``updates`` hold what each series publishes now; ``all_snapshots`` the latest snapshot of every series the
    dashboard shows; ``generated_at`` the newest origin among them (never the wall clock: re-publishing the same
    data must give the same bytes).
    """
    generated = generated_at.isoformat(timespec="seconds")
    plan = SitePlan()
    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    plan.immutable.append(Artifact.of(PLOTLY_JS_KEY, js.read_bytes(), IMMUTABLE_CACHE))
    for update in updates:
        series_plan(update, plan)
    plan.add_latest("scoreboard.json", _json({"generated_at": generated, "synthetic": synthetic, "rows": scoreboard,
                                              "verdicts": list(verdicts)}))
    plan.add_latest("index.html", dashboard_html(all_snapshots, scoreboard, generated, synthetic).encode())

    previous = _read_manifest(store)
    objects: dict[str, dict[str, Any]] = dict(previous["objects"])
    aliases: dict[str, str] = dict(previous["aliases"])
    written, skipped, changed = [], [], []
    copies = [Artifact(versioned_key(a.key, a.sha256), a.body, a.content_type, IMMUTABLE_CACHE) for a in plan.latest]
    for art in [*plan.immutable, *copies]:
        known = objects.get(art.key)
        if known and known == _entry(art):  # listed by the previous manifest, which is valid: already there
            skipped.append(art.key)
            continue
        if known:
            changed.append(art.key)
        store.put(art)
        written.append(art.key)
        objects[art.key] = _entry(art)
    # Latest names last, each after everything it links to; the dashboard after the series it shows.
    for art, copy in zip(plan.latest, copies):
        store.put(art)
        written.append(art.key)
        aliases[art.key] = copy.key
    current = set(aliases.values())
    retired = sorted(k for k in previous["aliases"].values() if k not in current)
    for k in retired:  # still valid for readers of the previous manifest; deleted by the next publish
        objects.pop(k, None)
    manifest = {
        "format": MANIFEST_FORMAT,
        "generated_at": generated,
        "profile": profile,
        "synthetic": synthetic,
        "objects": dict(sorted(objects.items())),
        "aliases": dict(sorted(aliases.items())),
        "retired": retired,
    }
    unchanged = all(manifest.get(k) == previous.get(k) for k in ("format", "generated_at", "profile", "synthetic",
                                                                  "objects", "aliases"))
    if unchanged:
        return PublishReport(previous, written, skipped, [], changed, False)
    store.put(Artifact.of(MANIFEST_KEY, _json(manifest), MANIFEST_CACHE))
    deleted = []
    for k in previous["retired"]:
        if k not in objects and k not in current and is_versioned(k):
            store.delete(k)
            deleted.append(k)
    return PublishReport(manifest, written, skipped, deleted, changed, True)
