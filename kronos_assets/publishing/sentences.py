"""What the dashboard says, as plain text: number formats, the notes under each card, the scoreboard's cells and
the banner. Markup is the templates' job (templates/, escaped there), so nothing here is HTML."""

from __future__ import annotations

from typing import Any

from kronos_assets.publishing.snapshots import MIN_BIN, MIN_INDEPENDENT

DEMO_BANNER = "SYNTHETIC MARKET — demo profile: these prices are generated, not real."
REPLAY_BANNER = ("REPLAY of real {exchange} spot candles — demo profile: the market as of {as_of} UTC, replayed from "
                 "files, not live prices.")


def market_banner(snapshot: dict[str, Any], as_of: str | None = None) -> str | None:
    """The banner a series (or the dashboard, ``as_of`` its newest origin) carries: synthetic or replayed prices;
    None for a live market."""
    if snapshot.get("synthetic"):
        return DEMO_BANNER
    if snapshot.get("replay"):  # the exchange whose candles are replayed
        when = (as_of or snapshot["origin"])[:16].replace("T", " ")
        return REPLAY_BANNER.format(exchange=snapshot["replay"], as_of=when)
    return None

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
     "'too wide' when the hits at every step of the path (step s weighing 1/s^2, as overlapping forecasts share "
     "less of their early steps) differ from that at 5 % significance, allowing for the overlap"),
    ("brier_up", "Brier P(up)", "num",
     "Brier score of P(up): 0 is perfect, 0.25 a coin flip (n/a: a point forecast gives no probability)"),
    ("crps_skill_vs_rw_vol", "skill vs RW+vol", "signed_pct",
     "1 - CRPS / CRPS of the random walk with volatility on the same origins (positive is better)"),
)
NA_COLUMNS = ("direction_hit_rate", "brier_up")  # NULL there: the model does not forecast it
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
    return (f"{n} scored ≈ {k} independent horizon{'s' if k != 1 else ''}; "
            f"needs {tr.get('min_independent', MIN_INDEPENDENT)}")


def p_up_note(p: float, tr: dict[str, Any]) -> tuple[str, bool]:
    """The note under P(up): how often the model was right at this level, or why that is not known yet
    (then muted: True)."""
    if not tr.get("enough"):
        return "calibration not yet scored: " + not_yet(tr), True
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


def verdict_sentence(snap: dict[str, Any]) -> tuple[str, bool]:
    """The sentence that opens a series, and whether the verdict is still pending."""
    verdict = snap.get("verdict")
    if verdict is None:
        h = snap["forecasts"][snap["primary_model"]]["horizon"]
        return (f"No forecast of {snap['primary_model']} scored yet: a forecast is scored once its {h} bars "
                "have passed."), True
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
    for col, _, kind, _ in SCORE_COLUMNS:
        v = row.get(col)
        if col in NA_COLUMNS and v is None:
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
