"""The ad-hoc job's chart: the dashboard's fan chart of an ad-hoc snapshot (forecasting.adhoc.adhoc_snapshot),
with the held-out candles (``actual``) drawn hollow over the forecast."""

from __future__ import annotations

import plotly.graph_objects as go

from kronos_assets.publishing.charts import fan_chart
from kronos_assets.publishing.contract import SeriesSnapshot


def adhoc_chart(snapshot: SeriesSnapshot) -> go.Figure:
    fig = fan_chart(snapshot)
    fig.update_layout(title={"text": fig.layout.title.text + " · ad hoc, scored on the held-out tail"})
    return fig
