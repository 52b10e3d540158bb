"""Plotly figures of a series: recent candles, the forecast fan (median and 50/80/90 % bands), past forecasts."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

BANDS = ((0.05, 0.95, "90 %", 0.12), (0.1, 0.9, "80 %", 0.2), (0.25, 0.75, "50 %", 0.3))


def fan_chart(snapshot: dict[str, Any]) -> go.Figure:
    candles = snapshot["candles"]
    primary = snapshot["forecasts"][snapshot["primary_model"]]
    steps = primary["steps"]
    ts = [s["ts"] for s in steps]
    fig = go.Figure()
    fig.add_trace(
        go.Candlestick(
            x=[c["ts"] for c in candles],
            open=[c["open"] for c in candles],
            high=[c["high"] for c in candles],
            low=[c["low"] for c in candles],
            close=[c["close"] for c in candles],
            name="history",
            increasing_line_color="#26a69a",
            decreasing_line_color="#ef5350",
        )
    )
    anchor_ts, anchor = candles[-1]["ts"], candles[-1]["close"]
    for lo, hi, label, alpha in BANDS:
        lo_key, hi_key = f"q{round(lo * 100):02d}", f"q{round(hi * 100):02d}"
        fig.add_trace(
            go.Scatter(
                x=[anchor_ts, *ts, *reversed(ts), anchor_ts],
                y=[anchor, *[s[hi_key] for s in steps], *[s[lo_key] for s in reversed(steps)], anchor],
                fill="toself",
                fillcolor=f"rgba(255,152,0,{alpha})",
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
            line={"color": "#e65100", "width": 2},
            name=f"median ({snapshot['primary_model']})",
        )
    )
    past = snapshot.get("past", [])
    if past:
        fig.add_trace(
            go.Scatter(
                x=[p["ts"] for p in past],
                y=[p["median"] for p in past],
                mode="markers",
                marker={"color": "#7e57c2", "size": 5, "symbol": "diamond"},
                name=f"past forecasts (+{primary['horizon']} bars)",
                customdata=[[p["origin"], p["realised"]] for p in past],
                hovertemplate="forecast from %{customdata[0]}<br>median %{y:.4g}<br>realised %{customdata[1]:.4g}",
            )
        )
    title = f"{snapshot['symbol']} {snapshot['timeframe']}"
    if snapshot.get("synthetic"):
        title += " — SYNTHETIC demo market"
    fig.update_layout(
        title=title,
        xaxis_rangeslider_visible=False,
        margin={"l": 40, "r": 10, "t": 40, "b": 30},
        legend={"orientation": "h", "y": -0.15},
        template="plotly_white",
        height=420,
    )
    return fig
