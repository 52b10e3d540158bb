"""Charts of a series: recent candles, the forecast fan (median and 50/80/90 % bands), past forecasts.

Two renderings of the same chart: an interactive Plotly figure (chart.html and the dashboard) and a PNG for
places that cannot run JavaScript (previews, e-mail, chat). The PNG is drawn with matplotlib's Agg renderer
rather than Plotly's kaleido: kaleido needs a Chrome at publish time (downloaded from the internet, or a system
package on every machine that publishes), while Agg is a pip wheel, works offline, is fast, and gives the same
bytes for the same data and library versions (it embeds no timestamp), so re-publishing changes nothing.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import plotly.graph_objects as go

from kronos_assets.publishing.contract import SeriesSnapshot, TrackRecord

BANDS = ((0.05, 0.95, "90 %", 0.12), (0.1, 0.9, "80 %", 0.2), (0.25, 0.75, "50 %", 0.3))
UP, DOWN, FAN, MEDIAN, PAST = "#26a69a", "#ef5350", "255,152,0", "#e65100", "#5e35b1"
PHONE_BARS = 36


def _band_keys(lo: float, hi: float) -> tuple[str, str]:
    return f"q{round(lo * 100):02d}", f"q{round(hi * 100):02d}"


def chart_title(snapshot: SeriesSnapshot, mark_synthetic: bool = True) -> str:
    when = snapshot["origin"][:16].replace("T", " ")
    title = f"{snapshot['symbol']} {snapshot['timeframe']} · forecast at {when} UTC"
    if mark_synthetic and snapshot.get("synthetic"):
        title += " · SYNTHETIC demo market"
    elif mark_synthetic and snapshot.get("replay"):
        title += f" · REPLAY of real {snapshot['replay']} candles"
    return title


def plot_time(ts: str) -> str:
    """A UTC timestamp as plotly reads it, without the seconds and offset it ignores (a third fewer bytes a
    point): '2026-02-25T02:00:00+00:00' -> '2026-02-25 02:00'."""
    return ts[:16].replace("T", " ") if ts.endswith(("+00:00", "Z")) and ts[16:19] in (":00", "") else ts


def fan_chart(snapshot: SeriesSnapshot) -> go.Figure:
    candles = snapshot["candles"]
    primary = snapshot["forecasts"][snapshot["primary_model"]]
    steps = primary["steps"]
    ts = [plot_time(s["ts"]) for s in steps]
    fig = go.Figure()
    fig.add_trace(
        go.Candlestick(
            x=[plot_time(c["ts"]) for c in candles],
            open=[c["open"] for c in candles],
            high=[c["high"] for c in candles],
            low=[c["low"] for c in candles],
            close=[c["close"] for c in candles],
            name="history",
            increasing_line_color=UP,
            decreasing_line_color=DOWN,
        )
    )
    actual = snapshot.get("actual", [])  # candles after the origin (an ad-hoc forecast's held-out tail), hollow
    if actual:
        fig.add_trace(
            go.Candlestick(
                x=[plot_time(c["ts"]) for c in actual],
                open=[c["open"] for c in actual],
                high=[c["high"] for c in actual],
                low=[c["low"] for c in actual],
                close=[c["close"] for c in actual],
                name="held out (what happened)",
                increasing={"line": {"color": UP}, "fillcolor": "rgba(0,0,0,0)"},
                decreasing={"line": {"color": DOWN}, "fillcolor": "rgba(0,0,0,0)"},
            )
        )
    if candles:
        anchor_ts, anchor = plot_time(candles[-1]["ts"]), candles[-1]["close"]
    else:
        anchor_ts, anchor = plot_time(snapshot["last_bar"]), primary["last_close"]
    for lo, hi, label, alpha in BANDS:
        lo_key, hi_key = _band_keys(lo, hi)
        fig.add_trace(
            go.Scatter(
                x=[anchor_ts, *ts, *reversed(ts), anchor_ts],
                y=[anchor, *[s[hi_key] for s in steps], *[s[lo_key] for s in reversed(steps)], anchor],
                mode="lines",
                fill="toself",
                fillcolor=f"rgba({FAN},{alpha})",
                line={"width": 0},
                name=f"{label} band",
                hoverinfo="skip",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[anchor_ts, *ts],
            y=[anchor, *[s["q50"] for s in steps]],
            mode="lines",
            line={"color": MEDIAN, "width": 2},
            name=f"median ({snapshot['primary_model']})",
            customdata=[[None, None], *[[s["q10"], s["q90"]] for s in steps]],
            hovertemplate=(
                "%{x}<br>median %{y:,.6~g}<br>80 %: %{customdata[0]:,.6~g} – %{customdata[1]:,.6~g}<extra></extra>"
            ),
        )
    )
    past = snapshot.get("past", [])
    if past:
        fig.add_trace(
            go.Scatter(
                x=[plot_time(p["ts"]) for p in past],
                y=[p["median"] for p in past],
                mode="markers",
                marker={"color": PAST, "size": 6, "symbol": "diamond-open"},
                name=f"past forecasts (+{primary['horizon']} bars) vs what happened",
                customdata=[[p["origin"], p["realised"], 100 * (p["median"] / p["realised"] - 1)] for p in past],
                hovertemplate=(
                    "forecast from %{customdata[0]}<br>median %{y:,.6~g}<br>realised %{customdata[1]:,.6~g}"
                    "<br>error %{customdata[2]:+.2f} %<extra></extra>"
                ),
            )
        )
    fig.add_vline(x=plot_time(snapshot["origin"]), line={"color": "#9e9e9e", "width": 1, "dash": "dot"})
    # A narrow screen shows only the last PHONE_BARS candles and the forecast (the dashboard's script reads this).
    recent = candles[-PHONE_BARS:]
    if recent and steps:
        lows = [c["low"] for c in recent] + [s["q05"] for s in steps]
        highs = [c["high"] for c in recent] + [s["q95"] for s in steps]
        pad = 0.05 * (max(highs) - min(lows) or abs(max(highs)) or 1.0)
        fig.update_layout(
            meta={
                "phone_xrange": [plot_time(recent[0]["ts"]), ts[-1]],
                "phone_yrange": [min(lows) - pad, max(highs) + pad],
            }
        )
    fig.update_layout(
        title={"text": chart_title(snapshot), "font": {"size": 14}},
        xaxis_rangeslider_visible=False,
        margin={"l": 50, "r": 10, "t": 40, "b": 30},
        legend={"orientation": "h", "y": -0.12, "font": {"size": 11}},
        template="plotly_white",
        hovermode="closest",
        height=420,
        yaxis={"title": {"text": snapshot["symbol"].split("/")[-1]}, "tickformat": ",.6~g"},
    )
    return fig


def _t(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=None)  # all times are UTC; matplotlib wants naive here


def fan_chart_png(snapshot: SeriesSnapshot, width_px: int = 1000, height_px: int = 480) -> bytes:
    """The fan chart as a PNG, drawn with matplotlib (Agg): same elements as the interactive chart."""
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import StrMethodFormatter

    dpi = 100
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    candles = snapshot["candles"]
    primary = snapshot["forecasts"][snapshot["primary_model"]]
    steps = primary["steps"]
    bar_days = snapshot.get("bar_seconds", 3600) / 86400
    # "actual": candles after the origin (an ad-hoc forecast's held-out tail), drawn hollow over the fan
    for drawn, hollow in ((candles, False), (snapshot.get("actual", []), True)):
        label = {"label": "held out (what happened)"} if hollow else {}  # named once in the legend
        for rising, color in ((True, UP), (False, DOWN)):  # one collection per colour: wicks, then bodies
            group = [c for c in drawn if (c["close"] >= c["open"]) == rising]
            if not group:
                continue
            xs = [mdates.date2num(_t(c["ts"])) + bar_days / 2 for c in group]
            over = {"zorder": 3} if hollow else {}
            body = (
                {"color": "none", "edgecolor": color, "linewidth": 0.8} if hollow else {"color": color, "linewidth": 0}
            )
            ax.vlines(xs, [c["low"] for c in group], [c["high"] for c in group], color=color, linewidth=0.8, **over)
            ax.bar(
                xs,
                [max(abs(c["close"] - c["open"]), 1e-12) for c in group],
                width=bar_days * 0.7,
                bottom=[min(c["open"], c["close"]) for c in group],
                **body,
                **over,
                **label,
            )
            label = {}
    if candles:
        anchor_x, anchor = mdates.date2num(_t(candles[-1]["ts"])) + bar_days / 2, candles[-1]["close"]
    else:
        anchor_x, anchor = mdates.date2num(_t(snapshot["last_bar"])) + bar_days / 2, primary["last_close"]
    xs = [anchor_x, *[mdates.date2num(_t(s["ts"])) + bar_days / 2 for s in steps]]
    for lo, hi, label, alpha in BANDS:
        lo_key, hi_key = _band_keys(lo, hi)
        ax.fill_between(
            xs,
            [anchor, *[s[lo_key] for s in steps]],
            [anchor, *[s[hi_key] for s in steps]],
            color=tuple(int(v) / 255 for v in FAN.split(",")),
            alpha=alpha + 0.05,
            linewidth=0,
            label=f"{label} band",
        )
    ax.plot(
        xs,
        [anchor, *[s["q50"] for s in steps]],
        color=MEDIAN,
        linewidth=2,
        label=f"median ({snapshot['primary_model']})",
    )
    past = snapshot.get("past", [])
    if past:
        ax.scatter(
            [mdates.date2num(_t(p["ts"])) + bar_days / 2 for p in past],
            [p["median"] for p in past],
            marker="D",
            s=14,
            facecolors="none",
            edgecolors=PAST,
            linewidths=1,
            label=f"past forecasts (+{primary['horizon']} bars)",
        )
    ax.axvline(mdates.date2num(_t(snapshot["origin"])), color="#9e9e9e", linewidth=1, linestyle=":")
    ax.set_title(chart_title(snapshot, mark_synthetic=False), fontsize=11, loc="left", pad=18)
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.6g}"))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=9))
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.grid(True, color="#eeeeee", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, frameon=False, ncol=5)
    if snapshot.get("synthetic"):
        fig.text(
            0.995,
            0.995,
            "SYNTHETIC MARKET — demo, not real prices",
            ha="right",
            va="top",
            fontsize=9,
            color="#b71c1c",
            weight="bold",
        )
    elif snapshot.get("replay"):
        fig.text(
            0.995,
            0.995,
            f"REPLAY of real {snapshot['replay']} candles — not live",
            ha="right",
            va="top",
            fontsize=9,
            color="#b71c1c",
            weight="bold",
        )
    fig.subplots_adjust(left=0.08, right=0.985, bottom=0.17, top=0.9)  # fixed margins: one draw, not two
    return palette_png(fig)


# A chart of a few flat colours and their anti-aliased edges: a palette keeps it sharp (64: 2 KB less than 128,
# no visible change).
PNG_COLOURS = 64


def palette_png(fig: Any) -> bytes:
    """A matplotlib figure (Agg canvas) as an 8-bit palette PNG: under half the bytes of an RGBA one, looks the
    same. Deterministic (median-cut palette, no dithering, no timestamp): the same chart gives the same bytes."""
    from PIL import Image

    fig.canvas.draw()
    rgb = Image.frombuffer("RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba()).convert("RGB")
    buf = io.BytesIO()
    rgb.quantize(PNG_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        buf, format="png", optimize=True
    )
    return buf.getvalue()


def _small_layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 13}},
        margin={"l": 50, "r": 10, "t": 36, "b": 40},
        template="plotly_white",
        height=280,
        meta={"height": 280},  # the dashboard's drawChart keeps this height on every screen
        showlegend=False,
        xaxis={"title": {"text": x_title}},
        yaxis={"title": {"text": y_title}},
    )
    return fig


def reliability_chart(track_record: TrackRecord) -> go.Figure:
    """Reliability of P(up): per probability bin, the share of forecasts that did go up against the mean P(up)
    said, labelled with the bin's count; a calibrated forecaster lies on the diagonal."""
    bins = [b for b in track_record.get("calibration", []) if b["n"]]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            line={"color": "#9e9e9e", "dash": "dot"},
            name="calibrated",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[b["mean_p_up"] for b in bins],
            y=[b["up_rate"] for b in bins],
            mode="markers+lines+text",
            marker={"color": MEDIAN, "size": [8 + min(b["n"], 200) ** 0.5 for b in bins]},
            line={"color": MEDIAN, "width": 1},
            text=[f"n={b['n']}" for b in bins],
            textposition="top center",
            textfont={"size": 10},
            name="observed",
            customdata=[[f"{100 * b['from']:.0f}–{100 * b['to']:.0f} %", b["n"]] for b in bins],
            hovertemplate="P(up) %{customdata[0]}: said %{x:.0%}, rose %{y:.0%} of %{customdata[1]}<extra></extra>",
        )
    )
    n = sum(b["n"] for b in bins)
    fig = _small_layout(fig, f"Reliability of P(up) ({n} forecasts)", "P(up) forecast", "share that rose")
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(range=[-0.05, 1.1], tickformat=".0%")
    return fig


def pit_chart(track_record: TrackRecord) -> go.Figure:
    """PIT histogram at the horizon: flat for a calibrated forecaster, U-shaped when its bands are too narrow,
    hump-shaped when too wide; the dotted line is the flat count."""
    counts = track_record.get("pit_histogram") or []
    k = len(counts) or 1
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=[(i + 0.5) / k for i in range(len(counts))],
            y=counts,
            width=0.9 / k,
            marker={"color": "rgba(94,53,177,0.7)"},
            name="PIT",
            hovertemplate="PIT %{x:.2f}: %{y} forecasts<extra></extra>",
        )
    )
    total = sum(counts)
    if total:
        fig.add_hline(y=total / k, line={"color": "#9e9e9e", "dash": "dot"})
    fig = _small_layout(
        fig, f"PIT histogram ({total} forecasts)", "where the outcome fell among the paths", "forecasts"
    )
    fig.update_xaxes(range=[0, 1])
    return fig
