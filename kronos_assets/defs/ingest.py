"""Ingest: raw candles from the market source, clean candles with features (SQL in DuckDB + polars), checks."""

from datetime import datetime, timezone
from typing import Any

import dagster as dg

from kronos_assets.configuration.settings import Settings, TimeframeSettings
from kronos_assets.defs.clock import run_now
from kronos_assets.defs.metadata import md_table
from kronos_assets.defs.partitions import DAY_FMT, MARKETS, ONE_DAY, Family, day_partitions, times_by_symbol
from kronos_assets.market.rules import NEGATIVE_VOLUME_SQL, OHLC_INVALID_SQL, freshness
from kronos_assets.market.schema import validate_candles
from kronos_assets.market.source import CandleSource
from kronos_assets.market.store import CANDLE_WHERE, ingest_window
from kronos_assets.market.timeframes import contiguous
from kronos_assets.warehouse import WRITE_POOL, Warehouse, read_sql


def raw_candles_key(tf: str, family: Family = MARKETS) -> dg.AssetKey:
    return family.asset_key("raw_candles", tf)


def clean_candles_key(tf: str, family: Family = MARKETS) -> dg.AssetKey:
    return family.asset_key("clean_candles", tf)


def _source_description(settings: Settings, family: Family) -> str:
    if family is not MARKETS:
        return "users' candle files dropped into the uploads folder (one dynamic partition per file)"
    if settings.replay:
        return "a replay of real candle files, up to the replay clock"
    return "the synthetic market" if settings.synthetic else "ccxt, with the exchange fallback chain"


def build_ingest(settings: Settings, tf: TimeframeSettings, family: Family = MARKETS) -> tuple[list, list]:
    partitions = day_partitions(settings, tf, family)
    policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=31)

    @dg.asset(
        key=raw_candles_key(tf.name, family),
        partitions_def=partitions,
        backfill_policy=policy,
        required_resource_keys={family.market_resource, "warehouse"},
        group_name="ingest",
        kinds={"duckdb", "polars"},
        pool=WRITE_POOL,
        owners=["team:data"],
        description=(
            f"Closed {tf.name} candles per market and UTC day as the source served them "
            f"({_source_description(settings, family)}). "
            "The bar still forming is never stored. A re-run merges by open time: a bar that came back replaces "
            "its stored copy, a stored bar that did not come back stays; bars still missing are in the metadata."
        ),
    )
    def raw_candles(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        market: CandleSource = getattr(context.resources, family.market_resource)
        warehouse: Warehouse = context.resources.warehouse
        # The run's time (its kronos/now tag, or the replay clock): no bar that closes after it is fetched.
        now = run_now(context.run.tags, market)
        fetched, missing, exchanges, reports, windows = 0, 0, set(), {}, {}
        for symbol, start, end in _day_spans(context, family):
            # Fetch first, then merge by open time in one transaction: a failed fetch stores nothing, and a
            # stored closed bar the answer lacks stays (reported below as missing if it never existed).
            stored = ingest_window(market, warehouse, symbol, tf.name, start, end, now)
            report = getattr(market, "fetch_report", lambda: None)()
            label = f"{symbol} {start:%Y-%m-%d}"
            if report is not None:  # live sources say which exchange served what, and which bars are missing
                reports[label] = report.to_metadata()
                exchanges |= set(report.exchanges_used)
            windows[label] = stored.to_metadata()
            fetched += stored.fetched
            missing += stored.missing_bars
            context.log.info(
                f"{symbol} {tf.name} {start:%Y-%m-%d}..{end:%Y-%m-%d}: {stored.fetched} candles fetched, "
                f"{stored.stored_before} -> {stored.stored_after} stored, {stored.missing_bars} missing"
            )
        return dg.MaterializeResult(
            metadata={
                "rows": fetched,
                "missing_bars": missing,
                "windows": dg.MetadataValue.json(windows),
                "exchanges": ", ".join(sorted(exchanges)) or ("none" if reports else market.name),
                "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "as_of": now.isoformat(timespec="seconds"),
                **({"fetch_reports": dg.MetadataValue.json(reports)} if reports else {}),
            }
        )

    @dg.asset(
        key=clean_candles_key(tf.name, family),
        deps=[raw_candles_key(tf.name, family)],
        partitions_def=partitions,
        backfill_policy=policy,
        group_name="ingest",
        kinds={"duckdb", "sql", "polars"},
        pool=WRITE_POOL,
        owners=["team:data"],
        description=(
            f"Validated {tf.name} candles with features (log return, log range, 24-bar realised volatility, volume "
            "z-score, bars missing before each bar), computed by dbt_free_sql/clean_candles.sql in DuckDB."
        ),
    )
    def clean_candles(
        context: dg.AssetExecutionContext, warehouse: dg.ResourceParam[Warehouse]
    ) -> dg.MaterializeResult:
        sql = read_sql("clean_candles.sql")
        bar = tf.bar.delta
        total, gaps, dropped = 0, 0, 0
        for symbol, start, end in _day_spans(context, family):
            params = {
                "symbol": symbol,
                "timeframe": tf.name,
                "start": start,
                "end": end,
                # 24-bar windows of log returns need 25 earlier bars to match a longer run's values exactly
                "lookback": start - 25 * bar,
                "bar_seconds": tf.bar.seconds,
            }
            clean = warehouse.query(sql, params)
            raw_n = warehouse.query(
                f"SELECT count(*) AS n FROM raw_candles WHERE {CANDLE_WHERE}", [symbol, tf.name, start, end]
            )["n"][0]
            dropped += raw_n - clean.height
            # polars re-checks what the SQL produced before it is stored: the schema contract of every candle frame.
            validate_candles(
                clean.select("ts", "open", "high", "low", "close", "volume", "amount", "exchange"),
                f"clean_candles {symbol} {tf.name}",
            )
            warehouse.replace("clean_candles", clean, CANDLE_WHERE, [symbol, tf.name, start, end])
            total += clean.height
            gaps += int((clean["bars_missing_before"] > 0).sum()) if clean.height else 0
        return dg.MaterializeResult(metadata={"rows": total, "gaps": gaps, "invalid_rows_dropped": int(dropped)})

    checks = build_candle_checks(settings, tf, family)
    return [raw_candles, clean_candles], checks


def build_candle_checks(settings: Settings, tf: TimeframeSettings, family: Family = MARKETS) -> list:
    raw_key, clean_key = raw_candles_key(tf.name, family), clean_candles_key(tf.name, family)
    bar_s = tf.bar.seconds
    # Configured symbols and uploaded markets share the tables; each family's checks look at its own markets.
    scope = f"symbol {'IN' if family is MARKETS else 'NOT IN'} (SELECT unnest(?::VARCHAR[]))"
    symbols = list(settings.symbols)

    def in_scope(warehouse: Warehouse, sql: str, *params: Any) -> Any:
        """``sql`` with {where} standing for this timeframe's bars of this family's markets."""
        return warehouse.query(sql.format(where=f"timeframe = ? AND {scope}"), [*params, tf.name, symbols])

    @dg.asset_check(
        asset=raw_key,
        name="ohlc_consistent",
        blocking=True,
        description="Every stored bar has positive prices, high >= max(open, close), low <= min(open, close).",
    )
    def ohlc_consistent(warehouse: dg.ResourceParam[Warehouse]) -> dg.AssetCheckResult:
        bad = in_scope(
            warehouse,
            "SELECT symbol, ts FROM raw_candles WHERE {where} "
            f"AND ({OHLC_INVALID_SQL} OR {NEGATIVE_VOLUME_SQL}) ORDER BY ts LIMIT 20",
        )
        return dg.AssetCheckResult(
            passed=bad.height == 0,
            metadata={"bad_rows": bad.height, "examples": dg.MetadataValue.md(md_table(bad)) if bad.height else "none"},
        )

    @dg.asset_check(
        asset=raw_key, name="no_duplicate_bars", blocking=True, description="No (symbol, bar) is stored twice."
    )
    def no_duplicates(warehouse: dg.ResourceParam[Warehouse]) -> dg.AssetCheckResult:
        dup = in_scope(
            warehouse,
            "SELECT symbol, ts, count(*) AS n FROM raw_candles WHERE {where} GROUP BY ALL HAVING n > 1 LIMIT 20",
        )
        return dg.AssetCheckResult(passed=dup.height == 0, metadata={"duplicates": dup.height})

    def check_now(context: dg.AssetCheckExecutionContext) -> datetime:
        """The run's time (market clock or kronos/now tag): what 'by now' and 'fresh' are measured against."""
        return run_now(context.run.tags, getattr(context.resources, family.market_resource))

    @dg.asset_check(
        asset=raw_key,
        name="stored_days_complete",
        required_resource_keys={family.market_resource, "warehouse"},
        description="Every stored day holds the bars that should exist by now (between the market's first "
        "bar and the last closed one; for uploads, the file's last bar); warns naming the days short.",
    )
    def stored_days_complete(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        warehouse: Warehouse = context.resources.warehouse
        now = check_now(context)
        days = in_scope(
            warehouse,
            "WITH d AS (SELECT symbol, date_trunc('day', ts) AS day, count(*) AS stored, min(ts) AS lo, max(ts) AS hi "
            "FROM raw_candles WHERE {where} GROUP BY symbol, day) "
            "SELECT symbol, day, stored, min(lo) OVER w AS first, max(hi) OVER w AS last FROM d "
            "WINDOW w AS (PARTITION BY symbol)",
        )
        short = []
        closed_end = (now.timestamp() // bar_s) * bar_s  # open time of the bar still forming
        for r in days.iter_rows(named=True):
            day = r["day"].timestamp()
            lo = max(day, r["first"].timestamp())
            hi = min(day + 86400, closed_end if family is MARKETS else r["last"].timestamp() + bar_s)
            expected = max(0, int(-(-(hi - lo) // bar_s)))
            if r["stored"] < expected:
                short.append(
                    {
                        "symbol": r["symbol"],
                        "day": f"{r['day']:%Y-%m-%d}",
                        "stored": r["stored"],
                        "expected": expected,
                        "missing": expected - r["stored"],
                    }
                )
        short.sort(key=lambda x: (x["day"], x["symbol"]), reverse=True)
        return dg.AssetCheckResult(
            passed=not short,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "days_short": len(short),
                "missing_bars": sum(x["missing"] for x in short),
                "days": dg.MetadataValue.md(md_table(short[:50])) if short else "none",
            },
        )

    @dg.asset_check(
        asset=clean_key,
        name="gaps_reported",
        description="Lists the ranges of missing bars (never filled); warns when there are any.",
    )
    def gaps(warehouse: dg.ResourceParam[Warehouse]) -> dg.AssetCheckResult:
        found = in_scope(
            warehouse,
            "SELECT symbol, ts - to_seconds(CAST(bars_missing_before + 1 AS BIGINT) * ?) + to_seconds(?) AS gap_start, "
            "ts AS gap_end, bars_missing_before AS bars FROM clean_candles "
            "WHERE {where} AND bars_missing_before > 0 ORDER BY ts DESC LIMIT 50",
            bar_s,
            bar_s,
        )
        return dg.AssetCheckResult(
            passed=found.height == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"gaps": found.height, "ranges": dg.MetadataValue.md(md_table(found)) if found.height else "none"},
        )

    @dg.asset_check(
        asset=clean_key,
        name="fresh",
        required_resource_keys={family.market_resource, "warehouse"},
        description="The newest clean bar of every symbol is fresh by market.rules (closed at most two "
        "bars plus the schedule's slack ago).",
    )
    def fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        warehouse: Warehouse = context.resources.warehouse
        now = check_now(context)
        newest = in_scope(
            warehouse,
            "SELECT symbol, max(ts) AS newest FROM clean_candles WHERE {where} GROUP BY symbol ORDER BY symbol",
        )
        step = tf.bar.delta
        ages = {r["symbol"]: now - (r["newest"] + step) for r in newest.iter_rows(named=True)}  # since it closed
        lag = {s: age / step for s, age in ages.items()}
        stale = {s for s, age in ages.items() if freshness(age, step) != "OK"}
        missing = sorted(set(settings.symbols) - set(lag)) if family is MARKETS else []
        return dg.AssetCheckResult(
            passed=not stale and not missing,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "bars_behind": dg.MetadataValue.json({s: round(v, 1) for s, v in lag.items()}),
                "symbols_without_candles": ", ".join(missing) or "none",
            },
        )

    return [ohlc_consistent, no_duplicates, stored_days_complete, gaps, fresh]


def _day_spans(context: dg.AssetExecutionContext, family: Family) -> list[tuple[str, datetime, datetime]]:
    """The run's partitions as (symbol, start, end) windows of consecutive days."""
    return [
        (symbol, start, end)
        for symbol, days in times_by_symbol(context.partition_keys, "day", DAY_FMT, family).items()
        for start, end in contiguous(days, ONE_DAY)
    ]
