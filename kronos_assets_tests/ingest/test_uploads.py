"""A user's candle file dropped into the uploads folder runs through the same graph as a configured symbol."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import polars as pl

from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.partitions import UPLOADS, bar_key, uploads_partitions_name
from kronos_assets.defs.resources import build_resources
from kronos_assets.market.synthetic import SyntheticMarket
from kronos_assets_tests.helpers import small_settings

UTC = timezone.utc


def _write_upload(folder, name="my-coin_1h.csv", days=5):
    start = datetime(2025, 3, 1, tzinfo=UTC)
    df = SyntheticMarket(seed=99).fetch(
        "MY/COIN", "1h", start, start + timedelta(days=days), datetime(2026, 1, 1, tzinfo=UTC)
    )
    folder.mkdir(parents=True, exist_ok=True)
    df.select(
        pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("timestamp"), "open", "high", "low", "close", "volume"
    ).write_csv(folder / name)
    return df


def _tick(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("uploaded_candles")
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def())
    return sensor.evaluate_tick(ctx)


def test_an_uploaded_file_becomes_a_market_and_is_forecast(tmp_path, monkeypatch):
    settings = small_settings(tmp_path)
    resources = build_resources(settings)
    defs = build_definitions(settings, resources)
    instance = dg.DagsterInstance.ephemeral()
    source = _write_upload(settings.uploads_dir)

    first = _tick(defs, instance)  # the first look: the file may still be being written
    assert not first.run_requests and "my-coin_1h: waiting until its size and modification time" in first.skip_message
    result = _tick(defs, instance, first.cursor)
    assert len(result.run_requests) == 1
    req = result.run_requests[0]
    assert req.job_name == "candles_uploads_1h"
    assert req.tags["kronos/symbol"] == "my-coin_1h" and req.tags["kronos/bar"] == "2025-03-05-23:00"
    (add,) = result.dynamic_partitions_requests
    assert add.partitions_def_name == uploads_partitions_name("1h") and list(add.partition_keys) == ["my-coin_1h"]
    # Nothing new on the next tick: the cursor remembers the file.
    assert not _tick(defs, instance, result.cursor).run_requests

    instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
    assert defs.resolve_job_def("candles_uploads_1h").execute_in_process(instance=instance, tags=req.tags).success
    stored = (
        resources["warehouse"]
        .get()
        .query("SELECT ts, close FROM clean_candles WHERE symbol = 'my-coin_1h' ORDER BY ts")
    )
    assert stored.height == source.height and stored["close"].to_list() == source["close"].to_list()

    last_bar = datetime(2025, 3, 5, 23, tzinfo=UTC)
    ok = defs.resolve_job_def("forecast_uploads_1h").execute_in_process(
        instance=instance, partition_key=str(bar_key("my-coin_1h", last_bar, UPLOADS))
    )
    assert ok.success
    fc = (
        resources["warehouse"]
        .get()
        .query("SELECT model, origin FROM forecasts WHERE symbol = 'my-coin_1h' ORDER BY model")
    )
    assert fc["model"].to_list() == ["random_walk", "random_walk_vol"]
    assert (fc["origin"] == last_bar + timedelta(hours=1)).all()


def test_a_bad_file_is_reported_and_nothing_runs(tmp_path):
    settings = small_settings(tmp_path)
    defs = build_definitions(settings, build_resources(settings))
    settings.uploads_dir.mkdir(parents=True)
    (settings.uploads_dir / "broken.csv").write_text(
        "timestamp,open,high,low,close\n2025-01-01T00:00:00Z,1,0.5,0.9,1\n2025-01-01T01:00:00Z,1,2,0.9,1\n"
    )
    instance = dg.DagsterInstance.ephemeral()
    result = _tick(defs, instance, _tick(defs, instance).cursor)
    assert not result.run_requests
    assert "broken.csv" in result.skip_message and "high" in result.skip_message
