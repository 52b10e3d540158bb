"""Running aggregates of the scores, so that the track record costs the same with a year of history as with a day.

``score_sums`` holds, per symbol, timeframe, model, horizon step and UTC day of the forecast origin, the counts and
sums the scoreboard needs: for every registered metric with a mean-type aggregate (``registry.on_board``) its sum
and count of values, the counts behind the n/a rules, the expected-coverage sums, and the paired sums against the
random walk with volatility behind the skill columns; ``score_months`` the same rolled up to calendar months (the
all-time window). Their columns come from the registry, so a new mean metric appears here without another edit
(its migration rebuilds the tables, ``rebuilder``). ``score_bins`` holds per month, at the horizon's last step,
the PIT histogram's counts, the reliability bins of P(up) and the direction-by-confidence bands (one ``kind``
each). ``final_scores`` holds, per forecast whose last step is scored, that step's evaluation row, whether the
close ended above the last one (``up``) and its 80 % band's hits pooled over the path (coverage_path.sql; NULL
until every step is scored): what the per-series track record, the direction-by-confidence tables and the
coverage test read, one row per forecast instead of scanning every step's score.

The scoring step re-aggregates the days whose scores it replaced in the same transaction as the scores
(``refresh``), so a kill -9 never leaves the two apart. Plain SQL over a DuckDB connection: no Dagster.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any

from kronos_assets.metrics.registry import CONFIDENT_DOWN, CONFIDENT_UP, NA_WHEN, Metric, metrics, on_board
from kronos_assets.warehouse.sql import read_sql

SUMS, MONTHS, BINS, FINAL = "score_sums", "score_months", "score_bins", "final_scores"
FINAL_SINCE = 7  # the schema version that added final_scores
BASELINE = "random_walk_vol"  # the skill columns' reference (track_record.BASELINE)
NOMINALS = (50, 80, 90)  # expected_coverage_* of the scoreboard
_MONTH_OF_DAY = "CAST(date_trunc('month', day) AS DATE)"
_NA_COUNT = {"probabilistic": "n_point", "directional": "n_flat"}  # rows meeting registry.NA_WHEN


def _board(upto: int | None) -> list[Metric]:
    return [m for m in on_board() if upto is None or m.since <= upto]


def _skilled(upto: int | None = None) -> list[str]:
    return [m.name for m in metrics() if m.skill and (upto is None or m.since <= upto)]


def columns(upto: int | None = None) -> list[tuple[str, str]]:
    """The aggregate table's columns after its keys, from the registry: its metrics up to schema version ``upto``
    (None: all; a migration builds the table as its version has it, before later metrics' columns exist)."""
    cols = [
        ("horizon", "INTEGER"),
        ("n", "BIGINT"),
        ("first_origin", "TIMESTAMPTZ"),
        ("last_origin", "TIMESTAMPTZ"),
        *((f"expected_{c}", "DOUBLE") for c in NOMINALS),
        *((c, "BIGINT") for c in _NA_COUNT.values()),
        ("pair_n", "BIGINT"),
        *((f"pair_{c}", "BIGINT") for c in _NA_COUNT.values()),
    ]
    for m in _board(upto):
        cols += [(f"s_{m.name}", "DOUBLE"), (f"c_{m.name}", "BIGINT")]
    for name in _skilled(upto):
        cols += [
            (f"pm_{name}", "DOUBLE"),
            (f"pmc_{name}", "BIGINT"),
            (f"pb_{name}", "DOUBLE"),
            (f"pbc_{name}", "BIGINT"),
        ]
    return cols


def create(con: Any, upto: int | None = None) -> None:
    """The three tables, empty (a new warehouse; ``rebuilder`` fills them)."""
    cols = ", ".join(f"{c} {t}" for c, t in columns(upto))
    for table, period in ((SUMS, "day"), (MONTHS, "month")):
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (symbol VARCHAR NOT NULL, timeframe VARCHAR NOT NULL, "
            f"model VARCHAR NOT NULL, step INTEGER NOT NULL, {period} DATE NOT NULL, {cols})"
        )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {BINS} (symbol VARCHAR NOT NULL, timeframe VARCHAR NOT NULL, "
        "model VARCHAR NOT NULL, month DATE NOT NULL, kind VARCHAR NOT NULL, bin INTEGER NOT NULL, "
        "n BIGINT, point_n BIGINT, p_sum DOUBLE, up_n BIGINT, calls BIGINT, hits DOUBLE)"
    )
    if upto is None or upto >= FINAL_SINCE:
        con.execute(f"CREATE TABLE IF NOT EXISTS {FINAL} AS {finals_select('FALSE')}")


def finals_select(where: str) -> str:
    """``final_scores``' rows for the evaluations matching ``where`` (on ``e``): its columns are the evaluations'
    (a metric's migration makes the table again, ``rebuilder``) and three more."""
    hits = read_sql("coverage_path.sql").replace("/* where */", where)
    return f"""SELECT e.*, CAST(e.realised > f.last_close AS INTEGER) AS up, h.hit_80, h.expected_80
FROM evaluations e JOIN forecasts f USING (symbol, timeframe, origin, model)
LEFT JOIN ({hits}) h USING (symbol, timeframe, model, origin)
WHERE e.step = e.horizon AND {where}"""


def months_select(where: str, upto: int | None = None) -> str:
    """``score_sums`` rows matching ``where`` rolled up to calendar months (``score_months``: the all-time
    window sums a dozen rows a year per key instead of 365)."""
    combine = {"horizon": "any_value", "first_origin": "min", "last_origin": "max"}
    cols = ", ".join(f"{combine.get(c, 'sum')}({c}) AS {c}" for c, _ in columns(upto))
    return (
        f"SELECT symbol, timeframe, model, step, {_MONTH_OF_DAY} AS month, {cols} "
        f"FROM {SUMS} WHERE {where} GROUP BY ALL"
    )


def ts_literal(t: datetime) -> str:
    """A timestamp literal: a constant DuckDB can prune row groups on (a bound parameter it does not)."""
    return f"TIMESTAMPTZ '{t.astimezone(timezone.utc).isoformat()}'"


def sums_select(where: str, upto: int | None = None) -> str:
    """The per-day sums of the evaluations matching ``where`` (on ``e``, joined to their forecasts as the
    scoreboard joins them), in ``score_sums``' column order (``columns(upto)``)."""
    na = {c: NA_WHEN[k] for k, c in _NA_COUNT.items()}
    paired = "b.origin IS NOT NULL"
    out = [
        "any_value(e.horizon)",
        "count(*)",
        "min(e.origin)",
        "max(e.origin)",
        *(f"sum({c / 100} * (e.n_paths - 1) / (e.n_paths + 1))" for c in NOMINALS),
        *(f"count(*) FILTER (WHERE e.{cond})" for cond in na.values()),
        f"count(*) FILTER (WHERE {paired})",
        *(f"count(*) FILTER (WHERE {paired} AND e.{cond})" for cond in na.values()),
    ]
    for m in _board(upto):
        out += [f"sum(e.{m.name})", f"count(e.{m.name})"]
    for name in _skilled(upto):
        out += [
            f"sum(e.{name}) FILTER (WHERE {paired})",
            f"count(e.{name}) FILTER (WHERE {paired})",
            f"sum(b.{name})",
            f"count(b.{name})",
        ]
    select = ",\n    ".join(f"{expr} AS {c}" for expr, (c, _) in zip(out, columns(upto), strict=True))
    skilled = "".join(f", {n}" for n in _skilled(upto))
    return f"""WITH e AS (
    SELECT e.*, f.n_paths, f.last_close, CAST(timezone('UTC', e.origin) AS DATE) AS day
    FROM evaluations e JOIN forecasts f USING (symbol, timeframe, origin, model)
    WHERE {where}
), b AS (SELECT symbol, timeframe, step, origin{skilled} FROM e WHERE model = '{BASELINE}')
SELECT e.symbol, e.timeframe, e.model, e.step, e.day,
    {select}
FROM e LEFT JOIN b ON b.symbol = e.symbol AND b.timeframe = e.timeframe AND b.step = e.step AND b.origin = e.origin
GROUP BY e.symbol, e.timeframe, e.model, e.step, e.day"""


def bins_select(where: str, upto: int | None = None) -> str:
    """The per-month bins (PIT, reliability of P(up), direction by confidence) of the evaluations matching
    ``where``, in ``score_bins``' column order (score_bins.sql, with the registry's by-confidence metrics)."""
    confidence = "\nUNION ALL\n".join(
        f"SELECT symbol, timeframe, model, month, '{m.name}' AS kind, "
        f"CASE WHEN p_up > {CONFIDENT_UP} THEN 0 WHEN p_up < {CONFIDENT_DOWN} THEN 1 ELSE 2 END AS bin, "
        f"count(*), count(*) FILTER (WHERE width_90 = 0), NULL, NULL, "
        f"count({m.name}) FILTER (WHERE isfinite({m.name})), sum({m.name}) FILTER (WHERE isfinite({m.name})) "
        "FROM e GROUP BY ALL"
        for m in metrics()
        if m.aggregate == "by_confidence" and (upto is None or m.since <= upto)
    )
    return (
        read_sql("score_bins.sql")
        .replace("/* where */", where)
        .replace("/* registry: by confidence */", ("UNION ALL\n" + confidence) if confidence else "")
    )


def _origins_on(
    symbol: str,
    timeframe: str,
    periods: Sequence[date],
    length: str,
    on: str = "e.",
) -> tuple[str, list[Any]]:
    """A filter on ``e`` (``on``: the columns' prefix) for one series' origins in the UTC ``periods`` (days or
    months, their first days), with a constant origin range DuckDB prunes on."""
    last = max(periods)
    end = (
        last + timedelta(days=1) if length == "day" else date(last.year + last.month // 12, last.month % 12 + 1, 1)
    )  # the first day of the next month
    lo, hi = (datetime.combine(d, datetime.min.time(), timezone.utc) for d in (min(periods), end))
    where = (
        f"{on}symbol = ? AND {on}timeframe = ? AND {on}origin >= {ts_literal(lo)} AND {on}origin < "
        f"{ts_literal(hi)} AND CAST(date_trunc('{length}', timezone('UTC', {on}origin)) AS DATE) "
        "IN (SELECT unnest(?::DATE[]))"
    )
    return where, [symbol, timeframe, sorted(periods)]


def origin_days(origins: Sequence[datetime]) -> list[date]:
    return sorted({o.astimezone(timezone.utc).date() for o in origins})


def refresh(con: Any, symbol: str, timeframe: str, days: Sequence[date]) -> None:
    """Re-aggregates one series' ``days`` (UTC days of forecast origins) from the stored scores, and their months;
    call it inside the transaction that changed them."""
    if not days:
        return
    months = sorted({d.replace(day=1) for d in days})
    by_day, day_params = _origins_on(symbol, timeframe, days, "day")
    by_month, month_params = _origins_on(symbol, timeframe, months, "month")
    keyed = "symbol = ? AND timeframe = ? AND {} IN (SELECT unnest(?::DATE[]))"
    con.execute(f"DELETE FROM {SUMS} WHERE {keyed.format('day')}", day_params)
    con.execute(f"INSERT INTO {SUMS} {sums_select(by_day)}", day_params)
    con.execute(f"DELETE FROM {MONTHS} WHERE {keyed.format('month')}", month_params)
    con.execute(f"INSERT INTO {MONTHS} {months_select(keyed.format(_MONTH_OF_DAY))}", month_params)
    con.execute(f"DELETE FROM {BINS} WHERE {keyed.format('month')}", month_params)
    con.execute(f"INSERT INTO {BINS} {bins_select(by_month)}", month_params)
    con.execute(f"DELETE FROM {FINAL} WHERE {_origins_on(symbol, timeframe, days, 'day', on='')[0]}", day_params)
    # finals_select filters twice (its pooled-hits subquery, then the last steps): the day's parameters twice
    con.execute(f"INSERT INTO {FINAL} {finals_select(by_day)} ORDER BY origin", day_params * 2)


def rebuilder(version: int | None) -> Callable[[Any], None]:
    """A migration's work: both tables made again from every stored score, as schema ``version`` has them (its
    metrics' columns); inside the migration's transaction."""

    def rebuild(con: Any) -> None:
        for table in (SUMS, MONTHS, BINS):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        create(con, version)
        con.execute(f"INSERT INTO {SUMS} {sums_select('TRUE', version)} ORDER BY day")
        con.execute(f"INSERT INTO {MONTHS} {months_select('TRUE', version)} ORDER BY month")
        con.execute(f"INSERT INTO {BINS} {bins_select('TRUE', version)} ORDER BY month")
        if version is None or version >= FINAL_SINCE:  # with the evaluations' columns of that version
            rebuild_finals(con)

    return rebuild


def rebuild_finals(con: Any) -> None:
    """Schema version 7's migration: ``final_scores`` made from every stored score (inside its transaction)."""
    con.execute(f"DROP TABLE IF EXISTS {FINAL}")
    con.execute(f"CREATE TABLE {FINAL} AS {finals_select('TRUE')} ORDER BY origin")


def board_select(parts: str) -> str:
    """The scoreboard's rows (scoreboard.sql's columns, in its order) from ``parts``: ``score_sums`` rows with a
    ``window_name``, summed per symbol, timeframe, model, window and step."""

    def na(applies: str, pair: bool = False) -> str:
        count = ("pair_" if pair else "") + _NA_COUNT[applies]
        return f"sum({count}) = sum({'pair_n' if pair else 'n'})"

    cols = []
    for m in on_board():
        agg = f"sum(s_{m.name}) / nullif(sum(c_{m.name}), 0)"
        agg = f"sqrt({agg})" if m.aggregate == "root_mean" else agg
        if m.applies in _NA_COUNT:
            agg = f"CASE WHEN {na(m.applies)} THEN NULL ELSE {agg} END"
        cols.append(f"{agg} AS {m.board}")
    cols += [
        f"CASE WHEN {na('probabilistic')} THEN NULL ELSE sum(expected_{c}) / sum(n) END AS expected_coverage_{c}"
        for c in NOMINALS
    ]
    for m in (m for m in metrics() if m.skill):
        own, ref = (f"sum({p}_{m.name}) / nullif(sum({p}c_{m.name}), 0)" for p in ("pm", "pb"))
        off = "sum(pair_n) = 0" + (f" OR {na(m.applies, pair=True)}" if m.applies in _NA_COUNT else "")
        cols.append(f"CASE WHEN {off} THEN NULL ELSE 1 - ({own}) / nullif({ref}, 0) END AS {m.skill}")
    body = ",\n    ".join(cols)
    return f"""WITH parts AS ({parts})
SELECT symbol, timeframe, model, window_name, step, any_value(horizon) AS horizon,
    CAST(sum(n) AS BIGINT) AS n_forecasts, min(first_origin) AS first_origin, max(last_origin) AS last_origin,
    {body}
FROM parts
GROUP BY symbol, timeframe, model, window_name, step
ORDER BY symbol, timeframe, model, window_name, step"""
