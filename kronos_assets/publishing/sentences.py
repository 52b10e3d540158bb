"""What the dashboard says, as plain text: number formats, the notes under each card, the scoreboard's cells and
the banner. Markup is the templates' job (templates/, escaped there), so nothing here is HTML."""

from __future__ import annotations

from typing import Any

from kronos_assets.evaluation.track_record import DM_WINDOWS, VERDICT_WINDOW, covered_days
from kronos_assets.metrics.registry import CONFIDENCE_BANDS, metrics
from kronos_assets.publishing.contract import SeriesSnapshot
from kronos_assets.publishing.snapshots import MIN_BIN, MIN_INDEPENDENT

DEMO_BANNER = "SYNTHETIC MARKET — demo profile: these prices are generated, not real."
REPLAY_BANNER = (
    "REPLAY of real {exchange} spot candles — demo profile: the market as of {as_of} UTC, replayed from "
    "files, not live prices."
)


def market_banner(snapshot: SeriesSnapshot, as_of: str | None = None) -> str | None:
    """The banner a series (or the dashboard, ``as_of`` its newest origin) carries: synthetic or replayed prices;
    None for a live market."""
    if snapshot.get("synthetic"):
        return DEMO_BANNER
    if snapshot.get("replay"):  # the exchange whose candles are replayed
        when = (as_of or snapshot["origin"])[:16].replace("T", " ")
        return REPLAY_BANNER.format(exchange=snapshot["replay"], as_of=when)
    return None


def score_columns() -> tuple[tuple[str, str, str | None, str], ...]:
    """The scoreboard table's columns (column, header, format, header tooltip): the model, how many forecasts,
    every registered metric with a dashboard column (``metrics.registry``, in its column order), the skill."""
    shown = sorted((m for m in metrics() if m.column and m.board), key=lambda m: m.column.position)
    return (
        ("model", "model", None, ""),
        ("n_forecasts", "scored", None, "forecasts scored, and about how many non-overlapping horizons they cover"),
        *((m.board, m.column.header, m.column.format, m.column.tip) for m in shown),
        (
            "crps_skill_vs_rw_vol",
            "skill vs RW+vol",
            "signed_pct",
            "1 - CRPS / CRPS of the random walk with volatility on the same origins (positive is better)",
        ),
    )


def na_columns() -> tuple[str, ...]:
    """The table's columns that are NULL where the model does not forecast what they score (shown as n/a)."""
    return tuple(m.board for m in metrics() if m.board and m.column and m.applies != "all")


SCORE_COLUMNS = score_columns()  # as registered at import
NA_COLUMNS = na_columns()
BASELINE = "random_walk_vol"  # the model the skill column compares with


def pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:+.1f} %" if signed else f"{100 * x:.1f} %"


def price(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:,.2f}"
    return f"{x:.4g}"


def utc_minute(iso: str) -> str:
    """'2025-03-10T12:00:00+00:00' -> '2025-03-10 12:00' (the caller appends 'UTC')."""
    return iso[:16].replace("T", " ")


def not_yet(tr: dict[str, Any], n: int | None = None, k: int | None = None) -> str:
    n = tr.get("n", 0) if n is None else n
    k = tr.get("n_independent", 0) if k is None else k
    if n == 0:
        return "no forecast scored yet"
    return (
        f"{n} scored ≈ {k} independent horizon{'s' if k != 1 else ''}; "
        f"needs {tr.get('min_independent', MIN_INDEPENDENT)}"
    )


def p_up_note(p: float, tr: dict[str, Any]) -> tuple[str, bool]:
    """The note under P(up): how often the model was right at this level, or why that is not known yet
    (then muted: True)."""
    if not tr.get("enough"):
        return "calibration not yet scored: " + not_yet(tr), True
    parts = []
    for b in tr.get("calibration", []):
        if b["from"] <= p < b["to"] or (b["to"] == 1.0 and p == 1.0):
            if b["n"] >= MIN_BIN:
                parts.append(
                    f"when it said {100 * b['from']:.0f}–{100 * b['to']:.0f} %, it rose "
                    f"{100 * b['up_rate']:.0f} % of {b['n']} times"
                )
            else:
                parts.append(f"only {b['n']} past forecasts in the {100 * b['from']:.0f}–{100 * b['to']:.0f} % range")
    parts.append(f"Brier {tr['brier_up']:.3f} (coin flip 0.250)")
    return "; ".join(parts), False


def vol_note(tr: dict[str, Any]) -> str:
    if tr.get("enough") and tr.get("brier_vol_amp") is not None:
        return f"Brier {tr['brier_vol_amp']:.3f} over {tr['n']} scored"
    return "not yet scored: " + not_yet(tr)


def dm_word(crps: dict[str, Any]) -> str:
    """The Diebold-Mariano test's word on a scored CRPS comparison."""
    if crps["significant"]:
        side = {"model": "better than", "reference": "worse than"}[crps["winner"]]
        return f"{side} the baseline (significant, p = {crps['p_value']:.2g})"
    return f"within noise of the baseline (p = {crps['p_value']:.2f})"


def verdict_sentence(snap: SeriesSnapshot) -> tuple[str, bool]:
    """The sentence that opens a series, and whether the verdict is still pending."""
    verdict = snap.get("verdict")
    if verdict is None:
        h = snap["forecasts"][snap["primary_model"]]["horizon"]
        return (
            f"No forecast of {snap['primary_model']} scored yet: a forecast is scored once its {h} bars have passed."
        ), True
    return verdict["sentence"], verdict["n_independent"] < verdict["min_independent"]


def coverage_judgement(row: dict[str, Any]) -> str:
    """' · too narrow (71.2 % over the path)' / ' · too wide (…)' when the 80 % band's hits at every step of every
    forecast, pooled (step s weighs 1/s^2), differ from a calibrated band's at 5 % (kronos_assets.metrics.coverage,
    attached by snapshots.scoreboard as coverage_80_flag and coverage_80_path); '' when within noise."""
    flag, pooled = row.get("coverage_80_flag"), row.get("coverage_80_path")
    if flag is None:
        return ""
    return f" · {flag}" + ("" if pooled is None else f" ({pct(pooled)} over the path)")


def score_cells(row: dict[str, Any], k: int) -> list[str]:
    """One scoreboard row as the text of its cells; ``k`` the independent horizons the row covers (numbers that
    need a record are withheld below MIN_INDEPENDENT)."""
    early = k < MIN_INDEPENDENT
    cells = []
    na = na_columns()
    for col, _, kind, _ in score_columns():
        v = row.get(col)
        if col in na and v is None:
            txt = "n/a"
        elif col == "model":
            txt = str(v) + (" · too few to judge" if early else "")
        elif col == "n_forecasts":
            txt = f"{v} (≈{k} indep.)"
        elif col == "crps_skill_vs_rw_vol" and (early or row.get("model") == BASELINE):
            txt = "–" if row.get("model") == BASELINE else "not yet scored"
        elif v is None:
            txt = "–"
        elif kind == "pct":
            txt = pct(v)
        elif kind == "coverage":
            expected = row.get("expected_coverage_80")
            txt = pct(v) + (f" ({pct(expected)})" if expected is not None else " (n/a)")
            txt += "" if early or expected is None else coverage_judgement(row)
        elif kind == "percent_units":
            txt = f"{v:.2f} %"
        elif kind == "signed_pct":
            txt = pct(v, signed=True)
        elif kind == "num":
            txt = f"{v:.4g}"
        else:
            txt = str(v)
        cells.append(txt)
    return cells


def verdict_span(verdict: dict[str, Any] | None) -> str:
    """The span a verdict's numbers cover, for a card's label: 'last 30 days', or the days of forecasts scored so
    far when they do not fill the window yet."""
    days = (verdict or {}).get("window_days", DM_WINDOWS[VERDICT_WINDOW])
    if not days:
        return "all time"
    if not verdict:
        return f"{days}-day window, nothing scored yet"
    covered = covered_days(verdict)
    return f"last {days} days" if covered is None else f"{covered:.1f} days scored so far, of a {days}-day window"


CONFIDENCE_HEADER = ("model", *(f"{b.replace('p_up', 'P(up)').replace(' to ', '–')}" for b in CONFIDENCE_BANDS))
CONFIDENCE_TIP = (
    "how often the direction P(up) pointed to (up above 50 %, down below) was right, by how confident "
    "it was, at the horizon's last bar: hit rate and the number of calls"
)


def confidence_cells(model: str, bands: list[dict[str, Any]]) -> list[str]:
    """One model's row of the direction-by-confidence table: per band the hit rate of its calls and how many, or
    only the count while it is below MIN_BIN."""
    cells = [model]
    for b in bands:
        calls = b["calls"]
        if calls == 0:
            cells.append("–")
        elif calls < MIN_BIN:
            cells.append(f"only {calls} call{'s' if calls != 1 else ''}")
        else:
            cells.append(f"{pct(b['hit_rate'])} of {calls}")
    return cells
