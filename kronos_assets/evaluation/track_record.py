"""The track record of a timeframe: scoreboards, verdicts (who wins, by how much, and whether the difference is
significant), the reliability of P(up) and the PIT histogram. SQL in dbt_free_sql/ does the aggregation; the
Diebold-Mariano tests need a t distribution, so they are computed here from the losses the SQL selects.

A verdict compares a model, on the same origins, with the references the metric registry declares
(``metrics.registry.Verdict``; ``measures`` and ``loss_pairs_sql`` derive from it), today three:

* CRPS against the random walk with volatility (the baseline a probabilistic forecast has to beat);
* the absolute error of its median against that of the last price (what the plain random walk forecasts);
* the Brier score of its P(up) against a coin flip (0.25).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import polars as pl

from kronos_assets.metrics import MIN_INDEPENDENT_HORIZONS, TooFewHorizons, TooPersistent, diebold_mariano

# COIN_FLIP_BRIER: the registry's, read from here too (study_record)
from kronos_assets.metrics.registry import (
    COIN_FLIP_BRIER,
    CONFIDENCE_BANDS,
    NA_COLUMNS,
    Metric,
    board_sql,
    confidence_table,
    judged,
    metrics,
    skill_sql,
)
from kronos_assets.metrics.registry import (
    loss_pairs_sql as _loss_pairs_sql,
)
from kronos_assets.warehouse import Warehouse, json_rows, read_sql
from kronos_assets.warehouse.score_sums import BINS, FINAL, MONTHS, SUMS, board_select, sums_select, ts_literal

BOARD_WINDOWS = {"7d": 7, "30d": 30, "90d": 90, "all": None}  # scoreboard.sql's windows
# The verdicts' window only: a DM test's variance estimate needs every loss of its window, so an all-time test
# would read every stored score each tick (the scoreboard's all-time means and skills come from the running sums).
DM_WINDOWS = {"30d": 30}
VERDICT_WINDOW = "30d"  # what the dashboard, latest.json and scoreboard.json say in words
SIGNIFICANCE = 0.05
# The scoreboard columns a one-table summary shows (the track record asset's metadata, the backtest benchmark).
HEADLINE_COLUMNS = (
    "symbol",
    "model",
    "n_forecasts",
    "mae",
    "mape",
    "direction_hit_rate",
    "crps",
    "coverage_80",
    "brier_up",
    "crps_skill_vs_rw_vol",
)


def measures() -> list[tuple[str, str, str | float, str]]:
    """(measure, model's loss column, reference's loss column or a constant, reference's name) of each metric the
    registry tests in a verdict, in their order (read at call time: a test may register one more)."""
    return [(v.measure, v.loss, v.reference, v.reference_name) for m in judged() if (v := m.verdict)]


def loss_pairs_sql() -> str:
    """loss_pairs.sql with the registry's losses and references in its slots (the verdicts' input)."""
    return _loss_pairs_sql(read_sql("loss_pairs.sql"))


def scoreboard_sql() -> str:
    """scoreboard.sql with the metric registry's aggregate and skill columns in its slots: the scoreboard over
    every stored score (a series' snapshot as of its origin; ``scoreboard`` gives the same rows from the sums)."""
    return (
        read_sql("scoreboard.sql")
        .replace("/* registry: aggregates */", board_sql())
        .replace("/* registry: skills */", skill_sql())
    )


def scoreboard(wh: Any, timeframe: str, as_of: datetime) -> list[dict[str, Any]]:
    """scoreboard.sql's rows from the running aggregates (``warehouse.score_sums``), at a cost that does not grow
    with history: a window of origins after ``as_of`` - days is the whole UTC days after that instant's day, summed
    from ``score_sums``, plus the scores of the rest of that day read from the evaluations (one day's rows); all
    time is the monthly rollups (``score_months``)."""
    parts = []
    for name, days in BOARD_WINDOWS.items():
        if days is None:
            parts.append(f"SELECT '{name}' AS window_name, * FROM {MONTHS} WHERE timeframe = $timeframe")
            continue
        cut = as_of - timedelta(days=days)
        day = cut.astimezone(timezone.utc).date()
        end = datetime.combine(day, datetime.min.time(), timezone.utc) + timedelta(days=1)
        parts.append(
            f"SELECT '{name}' AS window_name, * FROM {SUMS} WHERE timeframe = $timeframe "
            f"AND day > DATE '{day.isoformat()}'"
        )
        rest = f"e.timeframe = $timeframe AND e.origin > {ts_literal(cut)} AND e.origin < {ts_literal(end)}"
        parts.append(f"SELECT '{name}' AS window_name, * FROM ({sums_select(rest)})")
    return json_rows(wh.query(board_select("\nUNION ALL BY NAME\n".join(parts)), {"timeframe": timeframe}))


def reliability(wh: Any, timeframe: str) -> list[dict[str, Any]]:
    """reliability.sql's rows (P(up) in tenths at the horizon's last step, all time) from ``score_bins``."""
    return json_rows(
        wh.query(
            "SELECT symbol, timeframe, model, bin, round(bin / 10.0, 1) AS lower, round(bin / 10.0 + 0.1, 1) AS upper, "
            "CAST(sum(n) AS BIGINT) AS n, sum(p_sum) / sum(n) AS mean_forecast, "
            "sum(up_n) / sum(n) AS observed_frequency "
            f"FROM {BINS} WHERE timeframe = ? AND kind = 'p_up' GROUP BY ALL ORDER BY symbol, timeframe, model, bin",
            [timeframe],
        )
    )


def pit_histogram(wh: Any, timeframe: str) -> list[dict[str, Any]]:
    """pit_histogram.sql's rows (PIT at the horizon's last step, ten bins, all time) from ``score_bins``."""
    return json_rows(
        wh.query(
            f"SELECT symbol, timeframe, model, bin, CAST(sum(n) AS BIGINT) AS n FROM {BINS} "
            "WHERE timeframe = ? AND kind = 'pit' GROUP BY ALL ORDER BY symbol, timeframe, model, bin",
            [timeframe],
        )
    )


def confidence_sums(wh: Any, timeframe: str) -> list[dict[str, Any]]:
    """``confidence_tables``' rows over all time from ``score_bins`` (each band's forecasts, calls and hits)."""
    out = []
    for m in (m for m in metrics() if m.aggregate == "by_confidence"):
        df = wh.query(
            f"SELECT symbol, model, bin, CAST(sum(n) AS BIGINT) AS n, CAST(sum(point_n) AS BIGINT) AS point,"
            f" CAST(sum(calls) AS BIGINT) AS calls, sum(hits) AS hits FROM {BINS} WHERE timeframe = ? "
            "AND kind = ? GROUP BY ALL ORDER BY symbol, model, bin",
            [timeframe, m.name],
        )
        for (symbol, model), grp in df.group_by(["symbol", "model"], maintain_order=True):
            if grp["point"].sum() == grp["n"].sum():  # a point forecast: no P(up)
                continue
            got = {r["bin"]: r for r in grp.iter_rows(named=True)}
            for i, band in enumerate(CONFIDENCE_BANDS):
                r = got.get(i, {"n": 0, "calls": 0, "hits": None})
                out.append(
                    {
                        "symbol": symbol,
                        "timeframe": timeframe,
                        "model": model,
                        "metric": m.name,
                        "band": band,
                        "n": r["n"],
                        "calls": r["calls"],
                        "hit_rate": r["hits"] / r["calls"] if r["calls"] else None,
                    }
                )
    return out


def confidence_tables(
    wh: Any, timeframe: str, scored_before: datetime | None = None, symbols: list[str] | None = None
) -> list[dict[str, Any]]:
    """Direction accuracy by confidence (``metrics.registry.confidence_table``) at the horizon's last step, per
    symbol and model of every registered metric aggregated by confidence (``p_up_hit``), over the forecasts scored
    before ``scored_before`` (None: all); point forecasts (no P(up)) left out."""
    out = []
    for m in (m for m in metrics() if m.aggregate == "by_confidence"):
        df = wh.query(
            f"SELECT symbol, model, p_up, {m.name}, width_90 FROM {FINAL} WHERE timeframe = ? "
            "AND (CAST(? AS TIMESTAMPTZ) IS NULL OR scored_bar < ?) "
            "AND (CAST(? AS VARCHAR[]) IS NULL OR list_contains(CAST(? AS VARCHAR[]), symbol)) "
            "ORDER BY symbol, model, origin",
            [timeframe, scored_before, scored_before, symbols, symbols],
        )
        for (symbol, model), grp in df.group_by(["symbol", "model"], maintain_order=True):
            if (grp["width_90"] == 0).all():
                continue
            rows = grp.select("p_up", m.name).to_dicts()
            out += [
                {"symbol": symbol, "timeframe": timeframe, "model": model, "metric": m.name} | b
                for b in confidence_table(rows, m.name)
            ]
    return out


def newest_scored_origin(wh: Warehouse, timeframe: str) -> datetime | None:
    """From the running sums (kept with the scores): no scan of every evaluation."""
    return wh.query(f"SELECT max(last_origin) AS t FROM {SUMS} WHERE timeframe = ?", [timeframe])["t"][0]


def window_floor(wh: Any, timeframe: str, days: int | None) -> datetime | None:
    """An origin no ``days`` window of ``verdicts`` (all forecasts scored) reaches back to: the oldest series'
    newest scored origin less the days, from the sums (None: all time, or nothing scored)."""
    if days is None:
        return None
    newest = wh.query(
        f"SELECT min(t) AS t FROM (SELECT max(last_origin) AS t FROM {SUMS} WHERE timeframe = ? "
        "AND step = horizon GROUP BY symbol)",
        [timeframe],
    )["t"][0]
    return None if newest is None else newest - timedelta(days=days)


def compare_losses(grp: pl.DataFrame, loss: str, reference: str | float, horizon: int) -> dict[str, Any] | None:
    """Mean losses of the model and the reference on the rows both have, and the DM test of their difference."""
    if isinstance(reference, str):
        grp = grp.filter(pl.col(reference).is_not_null())
        ref = grp[reference].to_numpy()
    else:
        ref = np.full(grp.height, reference)
    if grp.height == 0:
        return None
    own = grp[loss].to_numpy()
    out: dict[str, Any] = {"n": grp.height, "model": float(own.mean()), "reference": float(ref.mean())}
    out["relative"] = out["model"] / out["reference"] - 1 if out["reference"] > 0 else None
    try:
        test = diebold_mariano(own, ref, horizon)
    except TooFewHorizons as exc:  # TooPersistent too: a drift as slow as the window gives no verdict
        return out | {
            "n_independent": grp.height // horizon,
            "statistic": None,
            "p_value": None,
            "df": None,
            "significant": False,
            "winner": None,
            "verdict": "too persistent to judge" if isinstance(exc, TooPersistent) else "too few independent horizons",
            "why": str(exc),
        }
    significant = test.p_value < SIGNIFICANCE
    winner = "model" if test.statistic < 0 else "reference" if test.statistic > 0 else None
    return out | {
        "n_independent": test.n_independent,
        "statistic": test.statistic,
        "p_value": test.p_value,
        "df": test.df,
        "significant": significant,
        "winner": winner,
        "verdict": ("better than" if winner == "model" else "worse than") + " the reference"
        if significant
        else "no significant difference",
    }


def verdicts(
    wh: Any,
    timeframe: str,
    days: int | None = 30,
    scored_before: datetime | None = None,
    symbols: list[str] | None = None,
    floor: datetime | None = None,
) -> list[dict[str, Any]]:
    """One verdict per symbol and model over the ``days`` window (None: all time) of origins ending at the newest
    forecast scored before ``scored_before`` (None: all), each with its plain-words ``sentence``. ``floor``: an
    origin the window does not reach back to (``window_floor``): only the scores after it are read."""
    after = "" if floor is None else f"AND origin > {ts_literal(floor)}"
    pairs = wh.query(
        loss_pairs_sql().replace("/* window floor */", after),
        {"timeframe": timeframe, "days": days, "scored_before": scored_before},
    )
    if pairs.is_empty():  # nothing scored (or, in verify, nothing re-scored): no verdict to give
        return []
    if symbols is not None:
        pairs = pairs.filter(pl.col("symbol").is_in(symbols))
    out = []
    for (symbol, model), grp in pairs.group_by(["symbol", "model"], maintain_order=True):
        horizon = int(grp["horizon"][0])
        row: dict[str, Any] = {
            "symbol": symbol,
            "timeframe": timeframe,
            "model": model,
            "horizon": horizon,
            "window_days": days,
            "n": grp.height,
            "n_independent": grp.height // horizon,
            "min_independent": MIN_INDEPENDENT_HORIZONS,
            "first_origin": grp["origin"][0].isoformat(),
            "last_origin": grp["origin"][-1].isoformat(),
        }
        for m in judged():
            v = m.verdict
            assert v is not None
            measure, loss, reference = v.measure, v.loss, v.reference
            if model == v.model or _not_applicable(m, grp):
                row[measure] = None
            elif isinstance(reference, str) and grp[loss].equals(grp[reference]):
                row[measure] = None  # its forecast is the reference itself (the random walk's median)
            else:
                row[measure] = compare_losses(grp, loss, reference, horizon)
                if row[measure] is not None:
                    row[measure]["reference_name"] = v.reference_name
        row["sentence"] = verdict_sentence(row)
        out.append(row)
    return out


def _not_applicable(m: Metric, grp: pl.DataFrame) -> bool:
    """A metric that does not apply to this model (``Metric.applies``): a probabilistic one to a point forecast
    (no P(up): it says nothing about the odds), a directional one to a model that never forecasts a move."""
    if m.applies not in NA_COLUMNS:
        return False
    return bool(grp[NA_COLUMNS[m.applies][0]].all())


def crps_standing(rows: list[dict[str, Any]], model: str) -> dict[str, str]:
    """Per symbol, where ``model`` stands on CRPS against the random walk with volatility in these verdict rows:
    "worse" only when the Diebold-Mariano test says so, never on a point estimate alone."""
    out = {}
    for v in rows:
        crps = v.get("crps") if v["model"] == model else None
        if crps is None:
            continue
        if crps["significant"]:
            out[v["symbol"]] = "worse" if crps["winner"] == "reference" else "better"
        else:
            out[v["symbol"]] = crps["verdict"]  # "no significant difference" or "too few independent horizons"
    return out


def _significance(c: dict[str, Any]) -> str:
    if c["p_value"] is None:  # the DM test withheld its verdict (TooPersistent)
        return "no verdict: the difference drifts too slowly for this many independent horizons to tell it from noise"
    return f"significant, p = {c['p_value']:.2g}" if c["significant"] else f"within noise, p = {c['p_value']:.2f}"


def covered_days(v: dict[str, Any]) -> float | None:
    """The days a verdict's scored forecasts span when that is short of its window (by more than a day); None
    when they fill it, or for an all-time verdict."""
    days = v["window_days"]
    if not days:
        return None
    first, last = (datetime.fromisoformat(v[k]) for k in ("first_origin", "last_origin"))
    covered = (last - first).total_seconds() / 86400
    return covered if covered < days - 1 else None


def _window(v: dict[str, Any]) -> str:
    """The window in words, saying how many days the scored forecasts actually cover when that is fewer."""
    days = v["window_days"]
    if not days:
        return "all time"
    covered = covered_days(v)
    if covered is not None:
        return f"the {covered:.1f} days of forecasts scored so far (of a {days}-day window)"
    return f"the last {days} days"


_OWN_PHRASES = ("crps", "point_error", "p_up")  # the measures verdict_sentence words its own way


def verdict_sentence(v: dict[str, Any]) -> str:
    """Who wins on CRPS, point error and P(up), by how much, over which window, and whether it is significant."""
    model, h = v["model"], v["horizon"]
    span = f"{v['first_origin'][:16].replace('T', ' ')} – {v['last_origin'][:16].replace('T', ' ')} UTC"
    window = _window(v)
    if v["n_independent"] < v["min_independent"]:
        k = v["n_independent"]
        return (
            f"Too few independent horizons for a verdict on {model}: its {v['n']} scored forecasts ({span}) "
            f"span {k} non-overlapping {h}-bar horizon{'' if k == 1 else 's'}; a verdict needs "
            f"{v['min_independent']}, about {v['min_independent'] * h - v['n']} more scored forecasts "
            "(one per bar)."
        )
    parts = []
    crps = v.get("crps")
    if crps and crps["relative"] is not None:
        side = "better" if crps["relative"] < 0 else "worse"
        parts.append(
            f"{model} was {100 * abs(crps['relative']):.1f} % {side} than the {crps['reference_name']} "
            f"on CRPS ({_significance(crps)})"
        )
    else:
        parts.append(f"{model} is itself the CRPS reference")
    point = v.get("point_error")
    if point and point["relative"] is not None:
        side = "closer to the outcome" if point["relative"] < 0 else "further off"
        parts.append(
            f"its median was {100 * abs(point['relative']):.1f} % {side} than the last price ({_significance(point)})"
        )
    p_up = v.get("p_up")
    if p_up is None:
        parts.append("it makes no P(up) forecast (n/a)")
    else:
        side = "better" if p_up["model"] < COIN_FLIP_BRIER else "worse"
        parts.append(
            f"its P(up) did {side} than a coin flip (Brier {p_up['model']:.3f} vs 0.250; {_significance(p_up)})"
        )
    for m in judged():  # a measure registered after these three: said the same way for each
        verdict = m.verdict
        assert verdict is not None
        c = v.get(verdict.measure) if verdict.measure not in _OWN_PHRASES else None
        if c and c["relative"] is not None:
            side = "better" if c["relative"] < 0 else "worse"
            parts.append(
                f"on {verdict.label or m.description} it was {100 * abs(c['relative']):.1f} % {side} than "
                f"the reference ({c['reference_name']}; {_significance(c)})"
            )
    head = f"Over {window} ({v['n']} forecasts, {span}, ≈{v['n_independent']} independent {h}-bar horizons), "
    return head + ", ".join(parts[:-1]) + ", and " + parts[-1] + "."


def dm_table(rows: list[dict[str, Any]], window_name: str) -> list[dict[str, Any]]:
    """The verdicts as one flat row per comparison (for tables and the benchmarks)."""
    return [
        {
            "symbol": v["symbol"],
            "timeframe": v["timeframe"],
            "model": v["model"],
            "window_name": window_name,
            "measure": m,
            "reference": c["reference_name"],
            "n": c["n"],
            "n_independent": c["n_independent"],
            "statistic": c["statistic"],
            "p_value": c["p_value"],
            "verdict": c["verdict"],
        }
        for v in rows
        for m, *_ in measures()
        if (c := v.get(m))
    ]


def track_record(wh: Warehouse, timeframe: str, as_of: datetime | None = None) -> dict[str, Any]:
    """Everything the scoreboard shows for one timeframe (uploaded markets included: this is the private view
    in Dagster), as JSON-ready rows."""
    as_of = as_of or wh.query(f"SELECT max(last_origin) AS t FROM {SUMS} WHERE timeframe = ?", [timeframe])["t"][0]
    if as_of is None:
        return {
            "timeframe": timeframe,
            "as_of": None,
            "scoreboard": [],
            "verdicts": [],
            "dm_tests": [],
            "reliability": [],
            "pit_histogram": [],
            "direction_by_confidence": [],
        }
    by_window = {
        w: verdicts(wh, timeframe, days, floor=window_floor(wh, timeframe, days)) for w, days in DM_WINDOWS.items()
    }
    return {
        "timeframe": timeframe,
        "as_of": as_of.isoformat(),
        "scoreboard": scoreboard(wh, timeframe, as_of),
        "verdicts": by_window[VERDICT_WINDOW],
        "dm_tests": [row for w, rows in by_window.items() for row in dm_table(rows, w)],
        "reliability": reliability(wh, timeframe),
        "pit_histogram": pit_histogram(wh, timeframe),
        "direction_by_confidence": confidence_sums(wh, timeframe),
    }
