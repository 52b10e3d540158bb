"""The HTML pages: the dashboard and each series' chart page, rendered from the Jinja2 templates in templates/
with autoescaping on (every value a template prints is HTML-escaped unless it is markup made here)."""

from __future__ import annotations

import hashlib
import posixpath
from functools import lru_cache

import jinja2
from markupsafe import Markup

from kronos_assets.market.rules import FRESH_WARN_BARS, FRESHNESS_SLACK
from kronos_assets.publishing.contract import ScoreboardRow, SeriesSnapshot
from kronos_assets.publishing.figures import figures_src, script_text, series_id, templates_key
from kronos_assets.publishing.keys import PLOTLY_JS_KEY, series_prefix
from kronos_assets.publishing.page_model import SeriesView, series_view
from kronos_assets.publishing.sentences import DEMO_BANNER, market_banner, utc_minute
from kronos_assets.publishing.snapshots import MIN_INDEPENDENT


def script_json(encoded: str) -> Markup:
    """JSON text made safe inside a <script> element: '</' could end the element early."""
    if not isinstance(encoded, str):
        raise TypeError(f"script_json takes JSON text, not {type(encoded).__name__}")
    return Markup(encoded.replace("</", "<\\/"))


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("kronos_assets.publishing", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a misspelt name is an error, never an empty string on the page
)
TEMPLATES.filters["script_json"] = script_json


# The dashboard's own stylesheet and scripts, served beside it as assets named by their content: written once per
# release and cached for good, where inline they were 4 KB of every tick's index.html.
DASHBOARD_ASSETS = {"css": "dashboard.css", "js": "draw_chart.js", "freshness_js": "freshness.js"}


@lru_cache(maxsize=1)
def dashboard_assets() -> dict[str, tuple[str, bytes]]:
    """name -> (key under assets/, bytes) of each of DASHBOARD_ASSETS."""
    out = {}
    for name, file in DASHBOARD_ASSETS.items():
        body = TEMPLATES.loader.get_source(TEMPLATES, file)[0].encode()
        stem, ext = file.rsplit(".", 1)
        out[name] = (f"assets/{stem}-{hashlib.sha256(body).hexdigest()[:16]}.{ext}", body)
    return out


def dashboard_html(
    snapshots: list[SeriesSnapshot], scoreboard: list[ScoreboardRow], generated_at: str, synthetic: bool
) -> str:
    """index.html: a section per snapshot, in their order, each with its series' rows of ``scoreboard``."""
    views: list[SeriesView] = []
    for i, snap in enumerate(snapshots):
        board = [r for r in scoreboard if r["symbol"] == snap["symbol"] and r["timeframe"] == snap["timeframe"]]
        views.append(series_view(snap, board, i))
    return TEMPLATES.get_template("dashboard.html.j2").render(
        series=views,
        generated_at=generated_at,
        generated_text=utc_minute(generated_at),
        synthetic=synthetic,
        # synthetic, or the replay's exchange and as-of (the newest origin shown)
        demo_banner=DEMO_BANNER
        if synthetic
        else next((market_banner(s, generated_at) for s in snapshots if s.get("replay")), None),
        plotly_js=PLOTLY_JS_KEY,
        templates_js=templates_key(),
        assets={name: key for name, (key, _) in dashboard_assets().items()},
        min_independent=MIN_INDEPENDENT,
        stale_bars=FRESH_WARN_BARS,
        slack_seconds=int(FRESHNESS_SLACK.total_seconds()),
    )


def chart_page(snapshot: SeriesSnapshot) -> bytes:
    """A series' interactive chart: the fan chart of its figures file (publishing.figures), drawn by plotly.js
    from the site's assets, with a title and the banner."""
    depth = series_prefix(snapshot["symbol"], snapshot["timeframe"]).count("/") + 1
    return (
        TEMPLATES.get_template("chart_page.html.j2")
        .render(
            symbol=snapshot["symbol"],
            timeframe=snapshot["timeframe"],
            banner=market_banner(snapshot),
            up="../" * depth,
            plotly_js=PLOTLY_JS_KEY,
            templates_js=templates_key(),
            figures_src=posixpath.basename(figures_src(snapshot)),
            figures_id=script_text(series_id(snapshot)),
        )
        .encode()
    )
