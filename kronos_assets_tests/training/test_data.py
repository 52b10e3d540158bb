"""Training windows: normalisation over the lookback only (no leakage), gaps, ranges, seeded batches."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from kronos_assets.kronos.inputs import prepare_series
from kronos_assets.training.data import TrainingDataError, WindowSet, normalise_window, series_from_frame

from .conftest import gbm_candles, tiny_windows


def test_normalisation_stats_depend_on_the_lookback_only() -> None:
    s = series_from_frame("A/USDT", gbm_candles(200), "1h")
    raw = s.features[50:82].copy()
    a, mean_a, std_a = normalise_window(raw, 24)
    changed = raw.copy()
    changed[24:] *= np.float32(7.0)  # a crash, a volume spike: anything in the horizon
    changed[-1, 4] = 1e9
    b, mean_b, std_b = normalise_window(changed, 24)
    assert np.array_equal(mean_a, mean_b) and np.array_equal(std_a, std_b)
    assert np.array_equal(a[:24], b[:24])
    assert not np.array_equal(a[24:], b[24:])
    # ... and they are the statistics of exactly those lookback rows
    assert np.allclose(mean_a, raw[:24].mean(axis=0), rtol=1e-5)
    assert np.allclose(std_a, raw[:24].std(axis=0), rtol=1e-4)


def test_window_rows_of_the_lookback_do_not_see_the_horizon() -> None:
    frame = gbm_candles(200)
    ws = WindowSet([series_from_frame("A/USDT", frame, "1h")], 24, 8)
    x, _, ts = ws.window(10)
    s0 = int(ws.index[10, 1])
    spiked = frame.with_columns(
        pl.when(pl.int_range(pl.len()) >= s0 + 24).then(pl.col("close") * 3).otherwise(pl.col("close")).alias("close")
    )
    ws2 = WindowSet([series_from_frame("A/USDT", spiked, "1h")], 24, 8)
    x2, _, _ = ws2.window(10)
    assert np.array_equal(x[:24], x2[:24])
    assert not np.array_equal(x[24:], x2[24:])


def test_window_normalisation_equals_the_predictors() -> None:
    """A training window's lookback is normalised exactly as a forecast's history is at inference."""
    frame = gbm_candles(100)
    ws = WindowSet([series_from_frame("A/USDT", frame, "1h")], 40, 6)
    x, stamps, _ = ws.window(0)
    prep = prepare_series(frame.head(40), frame["ts"].slice(40, 6).to_list())
    assert np.array_equal(x[:40], prep.x)
    assert np.array_equal(stamps[:40], prep.x_stamp)


def test_windows_never_span_a_gap_and_stay_in_range() -> None:
    frame = gbm_candles(300)
    gapped = pl.concat([frame.slice(0, 100), frame.slice(110, 190)])
    s = series_from_frame("A/USDT", gapped, "1h")
    ws = WindowSet([s], 20, 5)
    for k in range(len(ws)):
        _, _, ts = ws.window(k)
        assert (np.diff(ts) == np.timedelta64(3600, "s")).all()
    assert len(ws) == (100 - 25 + 1) + (190 - 25 + 1)
    start = datetime(2024, 1, 3, tzinfo=timezone.utc)
    end = start + timedelta(days=4)
    ranged = WindowSet([s], 20, 5, start=start, end=end)
    for k in range(len(ranged)):
        _, _, ts = ranged.window(k)
        assert ts[0] >= np.datetime64(start.replace(tzinfo=None)) and ts[-1] < np.datetime64(end.replace(tzinfo=None))


def test_batches_depend_only_on_seed_stream_and_step() -> None:
    ws = tiny_windows()
    a = ws.batch_indices(5, 1, 7, 8)
    assert np.array_equal(a, ws.batch_indices(5, 1, 7, 8))
    assert not np.array_equal(a, ws.batch_indices(5, 1, 8, 8))
    assert not np.array_equal(a, ws.batch_indices(5, 2, 7, 8))
    b = ws.draw(5, 1, 7, 8)
    assert b.x.shape == (8, 32, 6) and b.stamp.shape == (8, 32, 5)
    assert float(b.x.abs().max()) <= 5.0


def test_no_window_is_an_error_naming_the_series() -> None:
    s = series_from_frame("A/USDT", gbm_candles(50), "1h")
    with pytest.raises(TrainingDataError, match="A/USDT"):
        WindowSet([s], 40, 20)


def test_a_bad_candle_file_names_the_file_and_row_and_the_library_needs_no_cli(tmp_path) -> None:
    import ast
    from pathlib import Path

    from kronos_assets.training import data as data_module
    from kronos_assets.training.data import frames_from_csv

    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close\n2024-01-01T00:00:00Z,1,2,0.5,1.5\n2024-01-01T01:00:00Z,1,0.5,2,1\n")
    with pytest.raises(TrainingDataError, match=r"bad\.csv: row 2 .*high is below low"):
        frames_from_csv({"A/USDT": bad})
    # The training library reads files through the market library, not through a command-line module.
    tree = ast.parse(Path(data_module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.endswith(".cli") for m in imported)
