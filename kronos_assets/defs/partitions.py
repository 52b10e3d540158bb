"""Partitions: symbol x day for candles, symbol x bar for forecasts, evaluations and publishing."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable

import dagster as dg

from kronos_assets.configuration.settings import Settings, TimeframeSettings, symbol_from_key, symbol_key

BAR_FMT = "%Y-%m-%d-%H:%M"
# Run tags that make one run cover a range of partitions (what a backfill policy does).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
DAY_FMT = "%Y-%m-%d"
ONE_DAY = timedelta(days=1)  # a day partition's span: a run over days covers [first day, last day + 1)
# A run tag "K@<bar>" that keeps every K-th bar of a run's range, counted from <bar> (the real-data study's
# --stride): Dagster launches a scattered selection as one run per partition, so a strided backfill is launched as
# contiguous ranges that forecast only their strided bars.
ORIGIN_STRIDE = "kronos/origin_stride"


@dataclass(frozen=True)
class Family:
    """A set of markets that runs through the same graph: the configured symbols, or the users' uploaded files."""

    name: str
    suffix: str  # in asset (after the timeframe prefix), job and schedule names
    market_resource: str  # resource that serves its candles

    def asset_key(self, stage: str, timeframe: str) -> dg.AssetKey:
        """A timeframe's assets share its key prefix: 1h/raw_candles, 1h/raw_candles_uploads."""
        return dg.AssetKey([timeframe, f"{stage}{self.suffix}"])

    def symbol(self, partition_key: str) -> str:
        """The market a partition key stands for: BTC-USDT -> BTC/USDT; uploaded markets keep their name."""
        return symbol_from_key(partition_key) if self is MARKETS else partition_key

    def partition_key(self, symbol: str) -> str:
        return symbol_key(symbol) if self is MARKETS else symbol


MARKETS = Family("markets", "", "market")
UPLOADS = Family("uploads", "_uploads", "uploads")


def uploads_partitions_name(timeframe: str) -> str:
    return f"uploaded_markets_{timeframe}"


def symbols_partitions(settings: Settings, tf: TimeframeSettings, family: Family = MARKETS) -> dg.PartitionsDefinition:
    if family is UPLOADS:
        return dg.DynamicPartitionsDefinition(name=uploads_partitions_name(tf.name))
    return dg.StaticPartitionsDefinition([symbol_key(s) for s in settings.symbols])


def day_partitions(settings: Settings, tf: TimeframeSettings, family: Family = MARKETS) -> dg.MultiPartitionsDefinition:
    """Candles: one partition per symbol and UTC day; the current day exists and is refreshed through the day."""
    return dg.MultiPartitionsDefinition(
        {
            "symbol": symbols_partitions(settings, tf, family),
            "day": dg.DailyPartitionsDefinition(start_date=tf.start.isoformat(), end_offset=1, timezone="UTC"),
        }
    )


def bar_partitions(settings: Settings, tf: TimeframeSettings, family: Family = MARKETS) -> dg.MultiPartitionsDefinition:
    """One partition per symbol and closed bar. Bar key k is the bar opening at k; its forecast origin is k + 1 bar."""
    return dg.MultiPartitionsDefinition(
        {
            "symbol": symbols_partitions(settings, tf, family),
            "bar": dg.TimeWindowPartitionsDefinition(
                cron_schedule=tf.bar.boundaries_cron,
                start=datetime(tf.start.year, tf.start.month, tf.start.day),
                fmt=BAR_FMT,
                timezone="UTC",
            ),
        }
    )


def parse_time(key: str, fmt: str) -> datetime:
    return datetime.strptime(key, fmt).replace(tzinfo=timezone.utc)


def times_by_symbol(
    keys: Iterable[dg.MultiPartitionKey | str], dim: str, fmt: str, family: Family = MARKETS
) -> dict[str, list[datetime]]:
    """Group a run's partition keys by market (ccxt form for symbols), with the times of the other dimension sorted."""
    out: dict[str, list[datetime]] = defaultdict(list)
    for key in keys:
        if not isinstance(key, dg.MultiPartitionKey):
            dims = dict(zip(sorted([dim, "symbol"]), str(key).split("|")))
        else:
            dims = key.keys_by_dimension
        out[family.symbol(dims["symbol"])].append(parse_time(dims[dim], fmt))
    return {s: sorted(v) for s, v in sorted(out.items())}


def stride_tag(stride: int, anchor: datetime) -> dict[str, str]:
    return {ORIGIN_STRIDE: f"{stride}@{anchor.strftime(BAR_FMT)}"} if stride > 1 else {}


def on_stride(tags: dict[str, str], bars: list[datetime], step_seconds: int) -> list[datetime]:
    """The bars a run with an ORIGIN_STRIDE tag keeps (all of them without one)."""
    value = tags.get(ORIGIN_STRIDE)
    if not value:
        return bars
    k, _, anchor = value.partition("@")
    try:
        stride, origin = int(k), parse_time(anchor, BAR_FMT)
    except ValueError:
        raise ValueError(f"run tag {ORIGIN_STRIDE}={value!r} is not <stride>@<{BAR_FMT}>") from None
    if stride < 1:
        raise ValueError(f"run tag {ORIGIN_STRIDE}={value!r}: the stride must be at least 1")
    return [b for b in bars if (b - origin).total_seconds() // step_seconds % stride == 0]


def bar_key(symbol: str, bar: datetime, family: Family = MARKETS) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"symbol": family.partition_key(symbol), "bar": bar.strftime(BAR_FMT)})


def day_key(symbol: str, day: datetime, family: Family = MARKETS) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"symbol": family.partition_key(symbol), "day": day.strftime(DAY_FMT)})
