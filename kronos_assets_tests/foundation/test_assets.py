"""Asset-level tests: each stage on known partitions, on an ephemeral instance and a temporary warehouse."""

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import numpy as np
import polars as pl
import pytest

from kronos_assets.cli.main_job import RANGE_END, RANGE_START
from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.partitions import bar_key, day_key
from kronos_assets.defs.resources import build_resources
from kronos_assets.metrics import score_paths
from kronos_assets_tests.helpers import published_snapshot, small_settings

UTC = timezone.utc
H = 6  # horizon of the small test config
HOUR = timedelta(hours=1)


class Env:
    def __init__(self, tmp_path):
        self.settings = small_settings(tmp_path)
        self.resources = build_resources(self.settings)
        self.defs = build_definitions(self.settings, self.resources)
        self.instance = dg.DagsterInstance.ephemeral()
        self.wh = self.resources["warehouse"].get()

    def run(self, job: str, start, end=None, raise_on_error=True):
        tags = {RANGE_START: str(start), RANGE_END: str(end or start)}
        return self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, tags=tags, raise_on_error=raise_on_error
        )

    def candles(self, symbol, first_day, last_day):
        return self.run("candles_1h", day_key(symbol, first_day), day_key(symbol, last_day))

    def table(self, name, order="1, 2, 3, 4"):
        return self.wh.query(f"SELECT * FROM {name} ORDER BY {order}")


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


D = datetime(2025, 3, 10, tzinfo=UTC)


def test_raw_and_clean_candles_for_one_day(env):
    env.candles("BTC/USDT", D, D)
    raw = env.table("raw_candles", "ts")
    clean = env.table("clean_candles", "ts")
    expected = env.resources["market"].get().fetch("BTC/USDT", "1h", D, D + timedelta(days=1), datetime.now(UTC))
    assert raw.height == clean.height == 24
    assert raw["ts"].to_list() == expected["ts"].to_list()
    assert np.allclose(raw["close"].to_numpy(), expected["close"].to_numpy())
    assert clean["log_return"][0] is None and clean["log_return"].null_count() == 1  # no earlier bar stored
    assert np.allclose(clean["log_return"][1:].to_numpy(), np.diff(np.log(raw["close"].to_numpy())))
    assert (clean["bars_missing_before"] == 0).all()


def test_backfill_range_is_one_run_and_rematerialising_changes_nothing(env):
    result = env.candles("ETH/USDT", D, D + timedelta(days=4))
    assert result.success
    mats = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert len({(e.asset_key, e.partition) for e in mats}) == 2 * 5  # raw + clean for 5 days, in one run
    first = env.table("clean_candles", "ts")
    env.candles("ETH/USDT", D + timedelta(days=2), D + timedelta(days=2))
    assert env.table("clean_candles", "ts").equals(first)
    assert first.height == 5 * 24 and first["log_return"].null_count() == 1


def _prepare_forecasts(env, symbol, first_bar, last_bar):
    env.candles(symbol, first_bar - timedelta(days=4), last_bar + (H + 1) * HOUR)
    return env.run("forecast_1h", bar_key(symbol, first_bar), bar_key(symbol, last_bar))


def test_forecast_stores_full_paths_summaries_and_provenance(env):
    k = D + 12 * HOUR
    env.candles("BTC/USDT", D - timedelta(days=3), D)
    env.run("forecast_1h", bar_key("BTC/USDT", k))
    heads = env.table("forecasts")
    assert heads["model"].to_list() == ["random_walk", "random_walk_vol"]
    assert (heads["origin"] == k + HOUR).all() and (heads["data_end"] == k).all()
    assert (heads["data_start"] == k - 63 * HOUR).all()  # exactly history_bars bars
    paths = env.table("forecast_paths")
    assert paths.height == 2 * 30 and all(len(c) == H for c in paths["close"].to_list())
    steps = env.table("forecast_steps")
    q = steps.select("q05", "q10", "q25", "q50", "q75", "q90", "q95").to_numpy()
    assert steps.height == 2 * H and (np.diff(q, axis=1) >= 0).all()
    prov = json.loads(heads["provenance"][1])
    assert prov["model"] == "random_walk_vol"
    assert json.loads(heads["sampling"][1])["seed"] == env.settings.sampling.seed
    # The random walk's paths are flat at the last close.
    rw = paths.filter(pl.col("model") == "random_walk")
    assert np.allclose(np.array(rw["close"].to_list()), heads["last_close"][0])


def test_forecast_sees_no_candle_after_its_origin(env):
    k = D + 12 * HOUR
    env.candles("BTC/USDT", D - timedelta(days=3), D + timedelta(days=1))
    env.run("forecast_1h", bar_key("BTC/USDT", k))
    before = (env.table("forecasts"), env.table("forecast_paths", "1, 2, 3, 4, 5"))
    # Corrupt every candle after the forecast's last bar, then forecast again.
    with env.wh.connect() as con:
        n = con.execute(
            "UPDATE clean_candles SET close = close * 10, volume = volume * 10 WHERE ts > ?", [k]
        ).fetchone()
    assert n[0] > 0
    env.run("forecast_1h", bar_key("BTC/USDT", k))
    after = (env.table("forecasts"), env.table("forecast_paths", "1, 2, 3, 4, 5"))
    assert before[0].equals(after[0]) and before[1].equals(after[1])


def test_same_inputs_and_seed_give_the_same_forecast_in_a_backfill_and_alone(env):
    k = D + 12 * HOUR
    _prepare_forecasts(env, "ETH/USDT", k - 5 * HOUR, k)
    in_range = env.wh.query("SELECT * FROM forecast_paths WHERE origin = ? ORDER BY model, path", [k + HOUR])
    env.run("forecast_1h", bar_key("ETH/USDT", k))
    alone = env.wh.query("SELECT * FROM forecast_paths WHERE origin = ? ORDER BY model, path", [k + HOUR])
    assert in_range.height == 60 and in_range.equals(alone)


def test_evaluation_scores_realised_forecasts(env):
    f = D + 12 * HOUR  # forecast bar; origin f + 1h; horizon bars f+1h .. f+6h
    k = f + H * HOUR  # evaluation partition: the last horizon bar
    _prepare_forecasts(env, "BTC/USDT", f, f)
    env.run("forecast_1h", bar_key("BTC/USDT", k))  # runs the evaluation of bar k too
    ev = env.wh.query("SELECT * FROM evaluations ORDER BY model, step")
    assert ev.height == 2 * H and (ev["origin"] == f + HOUR).all() and (ev["scored_bar"] == k).all()
    assert ev["brier_vol_amp"].null_count() == 2 * (H - 1)
    paths = env.wh.query(
        "SELECT close FROM forecast_paths WHERE model = 'random_walk_vol' AND origin = ? ORDER BY path", [f + HOUR]
    )
    realised = env.wh.query("SELECT close FROM clean_candles WHERE ts > ? AND ts <= ? ORDER BY ts", [f, k])["close"]
    last = env.wh.query("SELECT close FROM clean_candles WHERE ts = ?", [f])["close"][0]
    head = env.wh.query("SELECT p_vol_amp, recent_vol FROM forecasts WHERE model = 'random_walk_vol'")
    expect = score_paths(
        np.array(paths["close"].to_list()),
        realised.to_numpy(),
        last,
        p_vol_amp=head["p_vol_amp"][0],
        recent_vol=head["recent_vol"][0],
    )
    got = ev.filter(pl.col("model") == "random_walk_vol")
    assert np.allclose(got["crps"].to_numpy(), [r["crps"] for r in expect])
    assert got["brier_vol_amp"][-1] == pytest.approx(expect[-1]["brier_vol_amp"])
    # A flat random walk's CRPS is its absolute log error.
    rw = ev.filter(pl.col("model") == "random_walk")
    assert np.allclose(rw["crps"].to_numpy(), np.abs(np.log(realised.to_numpy() / last)))


def test_evaluation_waits_for_its_horizon(env):
    f = D + 12 * HOUR
    env.candles("BTC/USDT", D - timedelta(days=3), D)  # candles only up to the end of D
    env.run("forecast_1h", bar_key("BTC/USDT", f))
    k = D + timedelta(days=1) + 2 * HOUR  # a bar whose candle is not in the warehouse
    result = env.defs.resolve_job_def("forecast_1h").execute_in_process(
        instance=env.instance,
        partition_key=str(bar_key("BTC/USDT", k)),
        raise_on_error=False,
        asset_selection=[dg.AssetKey(["1h", "evaluations"])],
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "waits until every bar of its horizon has closed" in str(failure.event_specific_data.error)
    assert env.table("evaluations").height == 0


def test_publish_writes_series_dashboard_and_manifest_last(env):
    f = D + 12 * HOUR
    _prepare_forecasts(env, "BTC/USDT", f - 10 * HOUR, f)
    root = env.settings.publish_dir
    latest = published_snapshot(root)
    assert latest["origin"] == (f + HOUR).isoformat() and latest["synthetic"] is True
    assert set(latest["forecasts"]) == {"random_walk", "random_walk_vol"}
    assert len(list((root / "series/BTC-USDT/1h/history").glob("*.json"))) == 11
    index = (root / "index.html").read_text()
    assert "SYNTHETIC MARKET" in index and "BTC/USDT" in index
    manifest = json.loads((root / "manifest.json").read_text())
    import hashlib

    for key, meta in manifest["objects"].items():
        assert hashlib.sha256((root / key).read_bytes()).hexdigest() == meta["sha256"], key
    assert (root / "manifest.json").stat().st_mtime_ns >= max(
        (root / k).stat().st_mtime_ns for k in manifest["objects"]
    )
    # Re-publishing the same partitions changes no byte.
    snapshot = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    env.run("forecast_1h", bar_key("BTC/USDT", f - 10 * HOUR), bar_key("BTC/USDT", f))
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == snapshot
