"""Forecast requests for bars: each sees only bars closed at or before its origin, at most the history window;
bars that cannot be forecast come back with the reason. The forecasts asset reads the candles as an AssetDep."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl

from kronos_assets.configuration.settings import TimeframeSettings
from kronos_assets.forecasting.interface import request_seed
from kronos_assets.forecasting.requests import MIN_HISTORY, build_requests, history_span

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
H = timedelta(hours=1)
TF = TimeframeSettings("1h", T0.date(), history_bars=50, horizon=4)


def frame(n: int, drop: tuple[int, ...] = ()) -> pl.DataFrame:
    rows = [i for i in range(n) if i not in drop]
    return pl.DataFrame({"ts": [T0 + i * H for i in rows], "close": [100.0 + i for i in rows]})


def test_history_ends_at_the_bar_holds_at_most_the_window_and_the_future_follows_the_origin() -> None:
    candles = frame(200)
    bars = [T0 + 120 * H, T0 + 199 * H]
    reqs, skipped = build_requests(candles, "BTC/USDT", TF, bars, "kronos-mini", 7)
    assert skipped == {}
    for req, bar in zip(reqs, bars):
        assert req.history["ts"][-1] == bar and req.history.height == TF.history_bars
        assert req.origin == bar + H and req.future_ts == [bar + H * (i + 1) for i in range(TF.horizon)]
        assert req.seed == request_seed(7, "BTC/USDT", "1h", bar + H, "kronos-mini")
    # the bars after a request's bar never reach it
    assert reqs[0].history["close"][-1] == 100.0 + 120


def test_a_missing_bar_and_a_short_history_are_skipped_with_the_reason() -> None:
    candles = frame(200, drop=(150,))
    short = T0 + (MIN_HISTORY - 2) * H
    reqs, skipped = build_requests(candles, "BTC/USDT", TF, [short, T0 + 150 * H, T0 + 151 * H], "m", 0)
    assert [r.origin for r in reqs] == [T0 + 152 * H]
    assert skipped[short] == f"only {MIN_HISTORY - 1} bars of history (< {MIN_HISTORY})"
    assert "is not in clean candles" in skipped[T0 + 150 * H] and str(T0 + 149 * H) in skipped[T0 + 150 * H]


def test_history_span_covers_every_requests_window_and_nothing_after_the_last_bar() -> None:
    bars = [T0 + 100 * H, T0 + 130 * H]
    start, end = history_span(TF, bars)
    assert (start, end) == (T0 + 50 * H, T0 + 131 * H)
    candles = frame(300).filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    reqs, skipped = build_requests(candles, "X", TF, bars, "m", 0)
    full, _ = build_requests(frame(300), "X", TF, bars, "m", 0)
    assert not skipped and [r.history.equals(f.history) for r, f in zip(reqs, full)] == [True, True]


def test_the_forecasts_asset_reads_candles_as_a_dependency_over_the_history_window() -> None:
    import dagster as dg

    from kronos_assets.configuration.settings import load_settings
    from kronos_assets.defs.forecast import build_forecasts
    from kronos_assets.defs.ingest import clean_candles_key

    settings = load_settings()
    tf = settings.timeframes[0]
    asset = build_forecasts(settings, tf)
    key = clean_candles_key(tf.name)
    assert key in asset.dependency_keys and "clean" not in asset.keys_by_input_name  # a dep, no Nothing input
    mapping = asset.get_partition_mapping(key)
    assert isinstance(mapping, dg.MultiPartitionMapping)
    assert mapping.downstream_mappings_by_upstream_dimension["day"].partition_mapping.start_offset == -tf.history_bars
