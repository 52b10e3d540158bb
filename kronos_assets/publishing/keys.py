"""Where each published object lives (keys inside the local folder or the bucket):

    series/<SYMBOL>/<tf>/latest.json                newest state, track record, links     (latest: short cache)
    series/<SYMBOL>/<tf>/chart.html                 interactive chart                     (latest)
    series/<SYMBOL>/<tf>/chart.png                  the same chart as a PNG               (latest)
    series/<SYMBOL>/<tf>/scoreboard.json            scoreboard rows of the series         (latest)
    series/<SYMBOL>/<tf>/figures.js                 the series' Plotly figures, for both pages (latest)
    series/<SYMBOL>/<tf>/history/<origin>.json      one file per forecast origin          (immutable: long cache)
    series/<SYMBOL>/<tf>/paths/<origin>.parquet     every model's sample paths, per origin (immutable)
    scoreboard.json                                 track record of every series          (latest)
    index.html                                      the dashboard                         (latest)
    assets/plotly-<version>.min.js                  plotly.js, served beside the page     (immutable)
    assets/plotly-templates-<sha16>.js              the charts' Plotly template, shared   (immutable)
    assets/dashboard-<sha16>.css, draw_chart-<sha16>.js, freshness-<sha16>.js
                                                    the dashboard's styles and scripts    (immutable)
    chain/<seq>.json                                one hash-chained record per publication (immutable)
    index/<n>.json                                  older entries of the manifest, in parts (immutable)
    manifest.json                                   what is published, written last       (no-cache)

Every "latest" file also exists as a versioned copy beside it, named by its content (``latest.<sha16>.json``,
``index.<sha16>.html``...), which never changes once written.
"""

from __future__ import annotations

import re

import plotly

from kronos_assets.publishing.store import check_key

MANIFEST_KEY = "manifest.json"
PLOTLY_JS_KEY = f"assets/plotly-{plotly.__version__}.min.js"
_VERSIONED_RE = re.compile(r"\.([0-9a-f]{16})(\.[a-z]+)$")


def series_prefix(symbol: str, timeframe: str) -> str:
    return check_key(f"series/{symbol.replace('/', '-')}/{timeframe}")


def series_keys(symbol: str, timeframe: str) -> dict[str, str]:
    prefix = series_prefix(symbol, timeframe)
    return {
        name: f"{prefix}/{name}" for name in ("latest.json", "chart.html", "chart.png", "scoreboard.json", "figures.js")
    }


def origin_slug(origin: str) -> str:
    return origin.replace(":", "-").replace("+00-00", "Z")


def versioned_key(key: str, sha256: str) -> str:
    """latest.json -> latest.<first 16 hex of sha256>.json, in the same folder (relative links keep working)."""
    stem, dot, ext = key.rpartition(".")
    return f"{stem}.{sha256[:16]}.{ext}" if dot else f"{key}.{sha256[:16]}"


def is_versioned(key: str) -> bool:
    return bool(_VERSIONED_RE.search(key))


def version_of(key: str) -> str | None:
    """The 16 hex digits of sha256 a versioned copy's name carries (None: not a versioned name)."""
    m = _VERSIONED_RE.search(key)
    return m.group(1) if m else None


def is_immutable(key: str) -> bool:
    """History, paths, plotly.js, the chain records and the versioned copies: written once, never changed, listed in
    the manifest (the index parts are immutable too, but they list the others rather than being listed)."""
    return "/history/" in key or "/paths/" in key or key.startswith(("assets/", "chain/")) or is_versioned(key)


def history_key(symbol: str, timeframe: str, origin: str) -> str:
    return f"{series_prefix(symbol, timeframe)}/history/{origin_slug(origin)}.json"


def paths_key(symbol: str, timeframe: str, origin: str) -> str:
    return f"{series_prefix(symbol, timeframe)}/paths/{origin_slug(origin)}.parquet"
