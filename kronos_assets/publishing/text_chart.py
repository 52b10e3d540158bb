"""The fan chart as monospace text, for places that show text but no image: Dagster's run page.

The run page (Dagster 1.13) renders a run's log rows and a materialisation's text and table metadata as they
are, in a monospace, whitespace-preserving cell at most 200 px high; markdown (and so an embedded PNG) and JSON
sit behind "[Show Markdown]" / "[Show JSON]". So the ad-hoc job logs this chart as one row of text: the last
history closes, the 50 % and 80 % bands and the median of the forecast, and the candles held out, one column per
bar, on ``rows`` price levels.
"""

from __future__ import annotations

from kronos_assets.publishing.charts import chart_title
from kronos_assets.publishing.contract import SeriesSnapshot

HISTORY, HELD_OUT, MEDIAN, BAND_50, BAND_80, ORIGIN = "·", "o", "━", "▒", "░", "┊"
LEGEND = f"{HISTORY} history  {BAND_80} 80 % band  {BAND_50} 50 % band  {MEDIAN} median  {HELD_OUT} held out"
LABEL_WIDTH = 10


def _price(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:,.2f}" if abs(x) >= 1 else f"{x:.4g}"


def fan_text(snapshot: SeriesSnapshot, rows: int = 8, history_bars: int = 48) -> str:
    """The title, ``rows`` lines of chart with price labels, the time axis and the legend."""
    history = [c["close"] for c in snapshot["candles"][-history_bars:]]
    steps = snapshot["forecasts"][snapshot["primary_model"]]["steps"]
    actual = [c["close"] for c in snapshot.get("actual", [])][: len(steps)]
    values = [*history, *actual, *(s[q] for s in steps for q in ("q10", "q50", "q90"))]
    lo, hi = min(values), max(values)
    span = (hi - lo) or abs(hi) or 1.0

    def row(v: float) -> int:  # 0 is the top line
        return round((hi - v) / span * (rows - 1))

    n = len(history)
    grid = [[" "] * (n + len(steps)) for _ in range(rows)]
    for i, v in enumerate(history):
        grid[row(v)][i] = HISTORY
    for j, s in enumerate(steps):
        col = n + j
        for glyph, a, b in ((BAND_80, "q10", "q90"), (BAND_50, "q25", "q75")):
            for r in range(row(s[b]), row(s[a]) + 1):
                grid[r][col] = glyph
        grid[row(s["q50"])][col] = MEDIAN
    for j, v in enumerate(actual):
        grid[row(v)][n + j] = HELD_OUT
    for r in range(rows):
        if grid[r][n] == " ":
            grid[r][n] = ORIGIN
    labels = {0: _price(hi), rows - 1: _price(lo)}
    lines = [f"{labels.get(r, ''):>{LABEL_WIDTH - 1}} {''.join(g)}" for r, g in enumerate(grid)]
    when = [snapshot["candles"][-n]["ts"], steps[0]["ts"], steps[-1]["ts"]]
    first, origin, last = (t[5:16].replace("T", " ") for t in when)  # 'MM-DD HH:MM', 11 characters
    axis = " " * LABEL_WIDTH + (first if n > len(first) else "").ljust(n) + origin
    if len(steps) > 2 * len(last):
        axis = axis.ljust(LABEL_WIDTH + n + len(steps) - len(last)) + last
    title = f"{chart_title(snapshot)} · {snapshot['primary_model']}"
    return "\n".join([title, *lines, axis, " " * LABEL_WIDTH + LEGEND])
