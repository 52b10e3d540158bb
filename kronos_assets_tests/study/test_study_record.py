"""A small strided real-data study, run through the graph on the shipped replay data: its published numbers
(study.json) recompute from the warehouse rows, its page and the dashboard's link are there, and the demo's own
home is untouched."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from kronos_assets.cli.study import main as study_main
from kronos_assets.cli.study import run_study
from kronos_assets.configuration.settings import load_settings
from kronos_assets.evaluation.study_record import StudyWindow
from kronos_assets.warehouse import Warehouse

# Main-job runs in subprocesses or Dagster instances: handed out first (conftest), so the suite's tail is short.
pytestmark = pytest.mark.slow

UTC = timezone.utc
WINDOW = StudyWindow(datetime(2024, 7, 1, tzinfo=UTC), datetime(2024, 7, 3, tzinfo=UTC), stride=12)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    demo = load_settings("demo", home=home)
    btc = replace(demo, symbols=("BTC/USDT",), replay_files=tuple(f for f in demo.replay_files if f[0] == "BTC/USDT"))
    result = run_study(btc, WINDOW, log=lambda _m: None)
    return demo, result


def test_numbers_recompute_from_the_warehouse(study):
    demo, result = study
    home = demo.home / "study"
    published = json.loads((home / "publish" / "study.json").read_text())
    wh = Warehouse(str(home / "warehouse.duckdb"))
    ev = wh.query(
        "SELECT e.model, e.origin, e.crps, e.covered_80, e.brier_up, e.abs_error, e.realised, f.last_close "
        "FROM evaluations e JOIN forecasts f USING (symbol, timeframe, origin, model) "
        "WHERE e.symbol = 'BTC/USDT' AND e.step = e.horizon ORDER BY e.model, e.origin"
    )
    entry = published["symbols"]["BTC/USDT"]
    assert published["stride"] == 12 and published["origins_per_symbol"] == 4
    assert set(entry["overall"]) == set(demo.forecasters)  # every model kind, the demo's Kronos included
    rw_vol = ev.filter(pl.col("model") == "random_walk_vol")["crps"].to_numpy()
    garch = ev.filter(pl.col("model") == "garch")["crps"].to_numpy()
    for model in demo.forecasters:
        rows = ev.filter(pl.col("model") == model)
        assert rows.height == 4  # each strided origin forecast and scored once
        v = entry["overall"][model]
        assert v["n"] == 4 and v["crps"] == pytest.approx(rows["crps"].mean())
        if model != "random_walk_vol":
            assert v["crps_vs_rw_vol"]["relative"] == pytest.approx(rows["crps"].mean() / rw_vol.mean() - 1)
        if model != "garch":
            assert v["crps_vs_garch"]["relative"] == pytest.approx(rows["crps"].mean() / garch.mean() - 1)
        if model != "random_walk":
            last = (rows["realised"] - rows["last_close"]).abs() / rows["last_close"]
            assert v["point_error"]["model"] == pytest.approx((rows["abs_error"] / rows["last_close"]).mean())
            assert v["point_error"]["reference"] == pytest.approx(last.mean())
            assert v["p_up"]["model"] == pytest.approx(rows["brier_up"].mean())
        assert entry["calibration"][model]["coverage_80"] == pytest.approx(rows["covered_80"].mean())
        assert v["sentence"].startswith(f"{model} (4 forecasts)")


def test_strategy_recomputes_from_paths_and_candles(study):
    demo, result = study
    wh = Warehouse(str(demo.home / "study" / "warehouse.duckdb"))
    strategy = json.loads((demo.home / "study" / "publish" / "study.json").read_text())["symbols"]["BTC/USDT"][
        "strategy"
    ]
    closes = wh.query("SELECT ts, close FROM clean_candles WHERE symbol = 'BTC/USDT' ORDER BY ts")
    close = dict(zip(closes["ts"].to_list(), closes["close"].to_list()))
    bars = [WINDOW.first_origin + timedelta(hours=i) for i in range(48)]
    r = np.array([close[b] / close[b - timedelta(hours=1)] - 1 for b in bars])
    hold = strategy["buy_and_hold"]
    entry_cost = np.r_[0.001, np.zeros(47)]  # buy-and-hold pays 10 bp once, on entry
    assert hold["total_return"] == pytest.approx(np.prod(1 + r - entry_cost) - 1)
    paths = wh.query(
        "SELECT p.model, p.origin, p.close, f.last_close FROM forecast_paths p JOIN forecasts f "
        "USING (symbol, timeframe, origin, model) WHERE p.symbol = 'BTC/USDT' ORDER BY p.model, p.origin, p.path"
    )
    for model in demo.forecasters:
        pos = np.zeros(48)
        for (origin,), grp in paths.filter(pl.col("model") == model).group_by("origin", maintain_order=True):
            c = np.array(grp["close"].to_list())
            c = np.hstack([np.full((c.shape[0], 1), grp["last_close"][0]), c])
            up = (c[:, 1:13] > c[:, :12]).mean(axis=0)  # each of the 12 bars until the next strided origin
            i = int((origin - WINDOW.first_origin) / timedelta(hours=1))
            pos[i : i + 12] = up > 0.5
        net = pos * r - 0.001 * np.abs(np.diff(pos, prepend=0.0))
        s = strategy[model]
        assert s["position_changes"] == int(np.abs(np.diff(pos, prepend=0.0)).sum())
        assert s["total_return"] == pytest.approx(np.prod(1 + net) - 1)
        assert s["bars_with_a_forecast"] == 48


def test_page_json_and_dashboard_link(study):
    demo, result = study
    publish = demo.home / "study" / "publish"
    page = (publish / "study.html").read_text()
    assert "Real-data study" in page and "long/flat" in page and "buy-and-hold" in page
    assert 'href="study.html"' in (publish / "index.html").read_text()
    assert not (demo.home / "demo").exists()  # the demo's record is never touched


def test_a_stride_that_does_not_divide_the_horizon_is_refused(tmp_path, capsys):
    demo = load_settings("demo", home=tmp_path)
    assert study_main(demo, stride=5, months=1) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("study failed: --stride 5 must divide")


def test_a_market_that_is_not_a_replay_is_refused(tmp_path, capsys):
    assert study_main(load_settings("synthetic", home=tmp_path)) == 2
    assert "does not replay real candles" in capsys.readouterr().err


def test_the_stride_tag_keeps_every_kth_bar_from_its_anchor_and_refuses_a_malformed_value():
    from kronos_assets.defs.partitions import ORIGIN_STRIDE, on_stride, stride_tag

    anchor = datetime(2024, 6, 30, 23, tzinfo=UTC)
    bars = [anchor + timedelta(hours=i) for i in range(-5, 30)]
    kept = on_stride(stride_tag(12, anchor), bars, 3600)
    assert kept == [anchor, anchor + timedelta(hours=12), anchor + timedelta(hours=24)]
    assert on_stride({}, bars, 3600) == bars and stride_tag(1, anchor) == {}
    with pytest.raises(ValueError, match="kronos/origin_stride='x@y' is not"):
        on_stride({ORIGIN_STRIDE: "x@y"}, bars, 3600)


def test_a_second_study_on_the_same_home_refuses_at_once_naming_the_lock(tmp_path, capsys):
    import fcntl

    demo = load_settings("demo", home=tmp_path)
    lock = tmp_path / "study" / "study.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as held:
        held.write("4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert study_main(demo, stride=24, months=1) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("study failed: another study is running in") and "pid 4242" in err
    assert not (tmp_path / "study" / "warehouse.duckdb").exists()  # refused before anything was written
