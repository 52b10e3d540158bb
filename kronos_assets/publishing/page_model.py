"""What the dashboard shows, as data: one view per series (cards, charts, links, scoreboard) built from its
snapshot and scoreboard rows. The words come from ``sentences``, the markup from the templates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kronos_assets.publishing.contract import ScoreboardRow, SeriesSnapshot, TrackRecord
from kronos_assets.publishing.figures import figures_src, script_text, series_id
from kronos_assets.publishing.keys import paths_key, series_keys
from kronos_assets.publishing.sentences import (
    CONFIDENCE_HEADER,
    CONFIDENCE_TIP,
    confidence_cells,
    dm_word,
    not_yet,
    p_up_note,
    pct,
    price,
    score_cells,
    score_columns,
    utc_minute,
    verdict_sentence,
    verdict_span,
    vol_note,
)
from kronos_assets.publishing.snapshots import MIN_INDEPENDENT

POINT_NOTE = "n/a: a point forecast gives no probability"


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    note: str = ""
    muted: bool = False  # a number not yet worth reading: greyed out
    title: str = ""  # tooltip


@dataclass(frozen=True)
class Chart:
    id: str  # the element the figure is drawn into
    figure: str  # its name in the series' figures file (publishing.figures): fan, reliability or pit


@dataclass(frozen=True)
class ScoreRow:
    cells: list[str]
    early: bool  # fewer than MIN_INDEPENDENT independent horizons: greyed out


@dataclass(frozen=True)
class SeriesView:
    index: int  # position on the page; the first one's scoreboard is open
    symbol: str
    timeframe: str
    origin: str
    primary_model: str
    bar_seconds: int
    horizon: int
    verdict: str
    verdict_pending: bool
    cards: list[Card]
    chart: Chart
    figures_src: str  # the series' figures file (versioned copy), relative to the site root
    figures_id: str  # JSON text: the series' name in KRONOS_FIGURES
    links: list[tuple[str, str]]  # (text, href relative to the site root)
    calibration: list[Chart]
    score_header: list[tuple[str, str]]  # (header, tooltip)
    score_rows: list[ScoreRow]
    confidence_header: tuple[str, ...] = CONFIDENCE_HEADER
    confidence_tip: str = CONFIDENCE_TIP
    confidence_rows: list[list[str]] = ()  # direction accuracy by confidence, one row per model

    @property
    def origin_text(self) -> str:
        return utc_minute(self.origin)


def skill_card(snap: SeriesSnapshot) -> Card:
    """CRPS skill against the random walk with volatility over the verdict's window, with the DM test's word."""
    verdict = snap.get("verdict") or {}
    label = f"Skill vs random walk with volatility (CRPS, {verdict_span(snap.get('verdict'))})"
    if not verdict:
        return Card(label, "not yet scored", "no forecast scored yet", muted=True)
    c = verdict.get("crps")
    if c is None:
        return Card(label, "–", "the model is itself this baseline", muted=True)
    if c["p_value"] is None or c["relative"] is None:
        return Card(label, "not yet scored", not_yet({}, c["n"], c["n_independent"]), muted=True)
    return Card(
        label,
        f"{-100 * c['relative']:+.1f} %",
        f"{dm_word(c)}; Diebold–Mariano test over ≈{c['n_independent']} independent horizons",
        title="1 − CRPS(model) / CRPS(baseline) on the origins both scored; positive is better",
    )


def forecast_cards(snap: SeriesSnapshot) -> list[Card]:
    primary = snap["forecasts"][snap["primary_model"]]
    tr = snap.get("track_record") or {}
    last, end, h = primary["last_close"], primary["steps"][-1], primary["horizon"]
    point = primary["p_up"] is None  # a point forecast: no probability to show (null in the JSON too)
    p_note = POINT_NOTE if point else p_up_note(primary["p_up"], tr)[0]
    return [
        Card("Last price", price(last), f"close of the {utc_minute(snap['last_bar'])} UTC bar"),
        Card(
            f"P(up) in {h} bars",
            "n/a" if point else pct(primary["p_up"]),
            p_note,
            muted=point,
            title="share of sample paths closing above the last price at the horizon",
        ),
        Card(
            f"P(volatility amplification), {h} bars",
            "n/a" if primary["p_vol_amp"] is None else pct(primary["p_vol_amp"]),
            POINT_NOTE if primary["p_vol_amp"] is None else vol_note(tr),
            title=f"share of sample paths more volatile over the next {h} bars than the last {h} bars were",
        ),
        Card(
            f"Expected move in {h} bars (median)",
            f"{100 * (end['q50'] / last - 1):+.2f} %",
            f"80 % range {100 * (end['q10'] / last - 1):+.2f} % … {100 * (end['q90'] / last - 1):+.2f} %",
        ),
        skill_card(snap),
    ]


def independent_approx(row: ScoreboardRow, horizon: int, bar_seconds: int) -> int:
    """About how many non-overlapping horizons a scoreboard row's forecasts span."""
    if not row.get("n_forecasts") or not row.get("first_origin"):
        return 0
    span = (datetime.fromisoformat(row["last_origin"]) - datetime.fromisoformat(row["first_origin"])).total_seconds()
    return min(int(row["n_forecasts"]), int(span // (horizon * bar_seconds)) + 1)


def score_rows(board: list[ScoreboardRow], horizon: int, bar_seconds: int) -> list[ScoreRow]:
    rows = []
    for r in board:
        k = independent_approx(r, horizon, bar_seconds)
        rows.append(ScoreRow(score_cells(r, k), k < MIN_INDEPENDENT))
    return rows


def confidence_rows(tr: TrackRecord) -> list[list[str]]:
    """The direction-by-confidence table of every model of the series (track record's ``direction_by_confidence``,
    as known at the origin)."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for b in tr.get("direction_by_confidence") or []:
        by_model.setdefault(b["model"], []).append(b)
    return [confidence_cells(model, bands) for model, bands in by_model.items()]


def series_view(snap: SeriesSnapshot, board: list[ScoreboardRow], index: int) -> SeriesView:
    primary = snap["forecasts"][snap["primary_model"]]
    tr = snap.get("track_record") or {}
    h, bar_seconds = primary["horizon"], snap.get("bar_seconds", 3600)
    verdict, pending = verdict_sentence(snap)
    keys = series_keys(snap["symbol"], snap["timeframe"])
    paths = paths_key(snap["symbol"], snap["timeframe"], snap["origin"])
    links = [
        ("interactive chart", keys["chart.html"]),
        ("PNG", keys["chart.png"]),
        ("latest JSON", keys["latest.json"]),
        ("sample paths (Parquet)", paths),
        ("scoreboard JSON", keys["scoreboard.json"]),
    ]
    small = ("reliability", "pit") if tr.get("n") else ()  # as publishing.figures.series_figures draws them
    return SeriesView(
        index=index,
        symbol=snap["symbol"],
        timeframe=snap["timeframe"],
        origin=snap["origin"],
        primary_model=snap["primary_model"],
        bar_seconds=bar_seconds,
        horizon=h,
        verdict=verdict,
        verdict_pending=pending,
        cards=forecast_cards(snap),
        chart=Chart(f"chart-{index}", "fan"),
        figures_src=figures_src(snap),
        figures_id=script_text(series_id(snap)),
        links=links,
        calibration=[Chart(f"chart-{index}-{name}", name) for name in small],
        score_header=[(label, tip) for _, label, _, tip in score_columns()],
        score_rows=score_rows(board, h, bar_seconds),
        confidence_rows=confidence_rows(tr),
    )
