"""The real-data checkpoint (issue 24 item 2): run `real-1h` of configs/training.yaml trains only on bars before
2024-07-01, reads its candles from the shared folder by a relative path, and the checkpoint it produced ships in
kronos_assets/checkpoints/real-1h as the demo profile's Kronos: loadable with safetensors, small, and forecasting
finite prices on real candles. Its held-out quality is checked by benchmarks/bench_checkpoint_real.py, not here."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from kronos_assets.configuration.settings import REPO_ROOT, load_settings
from kronos_assets.forecasting.interface import CLOSE, ForecastRequest, Sampling
from kronos_assets.kronos.hub import load_checkpoint
from kronos_assets.training.config import load_training_config
from kronos_assets.training.data import SHARED_PREFIX, WindowSet, resolve_data_file, series_from_frame
from kronos_assets_tests.conftest import SHARED_CANDLES, real_candles
from kronos_assets_tests.training.conftest import gbm_candles

REAL = REPO_ROOT / "kronos_assets" / "checkpoints" / "real-1h"
CUTOFF = datetime(2024, 7, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def real_run():
    return load_training_config(REPO_ROOT / "configs" / "training.yaml")["real-1h"]


def test_real_run_trains_strictly_before_the_cutoff_on_shared_files(real_run) -> None:
    d = real_run.data
    assert d.source == "csv" and d.timeframe == "1h" and d.lookback == 480 and d.horizon == 24
    assert set(d.symbols) == {"BTC/USDT", "ETH/USDT", "BNB/USDT", "SOL/USDT", "XRP/USDT"}
    assert d.train_end == CUTOFF and d.heldout_start >= CUTOFF
    for sym, path in d.files.items():  # relative to the shared folder, never a machine's absolute path
        assert path.startswith(SHARED_PREFIX) and "_1h_" in path and sym.split("/")[0] in path, path
    assert real_run.output == REAL


def test_training_windows_end_before_train_end() -> None:
    # Bars every hour across the cutoff: no training window may hold a bar opening at or after it.
    frame = gbm_candles(700, 0, start=CUTOFF - timedelta(hours=600))
    series = [series_from_frame("A/USDT", frame, "1h")]
    ws = WindowSet(series, 480, 24, end=CUTOFF)
    last_bars = [ws.window(i)[2][-1] for i in range(len(ws))]
    cutoff = np.datetime64(CUTOFF.replace(tzinfo=None), "us")
    assert max(last_bars) == cutoff - np.timedelta64(1, "h")  # the last window ends on the bar before it
    assert len(ws) == 600 - 504 + 1


def test_shared_prefix_resolves_to_the_env_folder_or_beside_the_repository(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KRONOS_SHARED_DIR", str(tmp_path))
    assert resolve_data_file(SHARED_PREFIX + "data/x.csv", REPO_ROOT) == tmp_path / "data" / "x.csv"
    monkeypatch.delenv("KRONOS_SHARED_DIR")
    assert resolve_data_file(SHARED_PREFIX + "data/x.csv", REPO_ROOT) == REPO_ROOT.parent / "shared" / "data" / "x.csv"
    assert resolve_data_file("configs/x.csv", REPO_ROOT) == REPO_ROOT / "configs" / "x.csv"


def test_real_run_windows_on_the_real_files_never_touch_the_cutoff(real_run, monkeypatch) -> None:
    from kronos_assets.training.data import cut
    from kronos_assets.training.run import load_frames

    if not SHARED_CANDLES.is_dir():
        pytest.skip(f"real candles {SHARED_CANDLES} are absent (set KRONOS_SHARED_DIR to the shared folder)")
    monkeypatch.setenv("KRONOS_SHARED_DIR", str(SHARED_CANDLES.parent.parent))
    d = real_run.data
    frames = load_frames(real_run)
    series = [series_from_frame(s, cut(frames[s], d.train_start, d.heldout_end), d.timeframe) for s in d.symbols]
    ws = WindowSet(series, d.lookback, d.horizon, start=d.train_start, end=d.train_end)
    assert set(ws.counts()) == set(d.symbols)
    cutoff = np.datetime64(CUTOFF.replace(tzinfo=None), "us")
    last = max(series[int(k)].ts[int(s0) + ws.length - 1] for k, s0 in ws.index)
    assert last < cutoff and last >= cutoff - np.timedelta64(2, "D")  # trains right up to the cutoff, not past


def test_shipped_checkpoint_loads_with_safetensors_and_is_small(real_run) -> None:
    if not (REAL / "model" / "model.safetensors").is_file():
        pytest.fail(f"{REAL} is missing; regenerate it with `.venv/bin/kronos-train real-1h`")
    total = 0
    for part in ("model", "tokenizer"):
        f = REAL / part / "model.safetensors"
        with safe_open(str(f), framework="pt") as st:
            assert all(np.isfinite(st.get_tensor(k).numpy()).all() for k in st.keys())
        total += f.stat().st_size
    assert total <= 5 * 10**6
    assert load_checkpoint(REAL / "model").module.config == real_run.scratch_model
    assert load_checkpoint(REAL / "tokenizer").module.config == real_run.scratch_tokenizer
    card = (REAL / "MODEL_CARD.md").read_text()
    assert "kronos-train real-1h" in card and "bench_checkpoint_real" in card and (REAL / "training.json").is_file()


def test_demo_profile_forecasts_with_the_real_checkpoint() -> None:
    settings = load_settings("demo")
    key = settings.primary_model
    assert Path(settings.models[key].local_dir).resolve() == REAL


def test_shipped_checkpoint_forecasts_finite_prices_on_real_candles() -> None:
    from kronos_assets.forecasting.kronos_forecaster import KronosForecaster

    frame = real_candles("binance_BTCUSDT_1h_20210601_20260620.csv.gz")
    history = frame.filter(frame["ts"] < datetime(2025, 3, 1, tzinfo=timezone.utc)).tail(480)
    origin = history["ts"][-1] + timedelta(hours=1)
    future = [origin + timedelta(hours=h) for h in range(4)]
    fc = KronosForecaster(REAL / "model", REAL / "tokenizer", device="cpu", max_context=512)
    req = ForecastRequest("BTC/USDT", "1h", origin, history, future, 7)
    paths = np.asarray(fc.forecast_batch([req], Sampling(n_paths=4, horizon=4, seed=7))[0])
    assert paths.shape[:2] == (4, 4) and np.isfinite(paths).all()
    last = float(history["close"][-1])
    assert (paths[..., CLOSE] > 0.5 * last).all() and (paths[..., CLOSE] < 2 * last).all()
