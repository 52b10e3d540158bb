from datetime import datetime, timezone

import dagster as dg

from kronos_assets.defs.automation import BAR_TAG, SYMBOL_TAG
from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.resources import build_resources
from kronos_assets_tests.helpers import small_settings

UTC = timezone.utc


def _defs(tmp_path, **profile):
    settings = small_settings(tmp_path, **profile)
    return build_definitions(settings, build_resources(settings))


def _requests(defs, name, when):
    schedule = defs.resolve_schedule_def(name)
    with dg.build_schedule_context(scheduled_execution_time=when, repository_def=defs.get_repository_def()) as ctx:
        return list(schedule.evaluate_tick(ctx).run_requests or [])


def test_hourly_schedule_requests_the_newest_day_per_symbol(tmp_path):
    defs = _defs(tmp_path)
    schedule = defs.resolve_schedule_def("candles_1h_schedule")
    assert schedule.cron_schedule == "5 * * * *" and schedule.execution_timezone == "UTC"
    reqs = _requests(defs, "candles_1h_schedule", datetime(2025, 3, 10, 6, 5, tzinfo=UTC))
    assert [r.partition_key for r in reqs] == ["2025-03-10|BTC-USDT", "2025-03-10|ETH-USDT"]
    assert all(r.tags[BAR_TAG] == "2025-03-10-05:00" for r in reqs)
    assert [r.job_name for r in reqs] in ([None, None], ["candles_1h", "candles_1h"])


def test_first_tick_of_a_day_refreshes_the_day_that_just_ended(tmp_path):
    reqs = _requests(_defs(tmp_path), "candles_1h_schedule", datetime(2025, 3, 11, 0, 5, tzinfo=UTC))
    assert [r.partition_key for r in reqs] == ["2025-03-10|BTC-USDT", "2025-03-10|ETH-USDT"]
    assert reqs[0].tags[BAR_TAG] == "2025-03-10-23:00"


def test_each_timeframe_has_its_own_cadence(tmp_path):
    defs = _defs(tmp_path, timeframes=["1h", "4h"])
    assert defs.resolve_schedule_def("candles_4h_schedule").cron_schedule == "5 */4 * * *"
    reqs = _requests(defs, "candles_4h_schedule", datetime(2025, 3, 10, 8, 5, tzinfo=UTC))
    assert {r.tags[BAR_TAG] for r in reqs} == {"2025-03-10-04:00"}


def test_sensor_forecasts_the_bar_of_a_successful_scheduled_candles_run(tmp_path):
    defs = _defs(tmp_path)
    sensor = defs.resolve_sensor_def("forecast_1h_after_candles")
    instance = dg.DagsterInstance.ephemeral()
    run = instance.create_run_for_job(
        defs.resolve_job_def("candles_1h"), tags={BAR_TAG: "2025-03-10-05:00", SYMBOL_TAG: "ETH-USDT"}
    )
    ctx = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_instance=instance, dagster_run=run,
        dagster_event=dg.DagsterEvent(event_type_value="PIPELINE_SUCCESS", job_name="candles_1h"),
    )
    req = sensor(ctx)
    assert isinstance(req, dg.RunRequest)
    assert req.partition_key == "2025-03-10-05:00|ETH-USDT"
    manual = instance.create_run_for_job(defs.resolve_job_def("candles_1h"))
    ctx = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_instance=instance, dagster_run=manual,
        dagster_event=dg.DagsterEvent(event_type_value="PIPELINE_SUCCESS", job_name="candles_1h"),
    )
    assert isinstance(sensor(ctx), dg.SkipReason)


def test_backfill_policies_put_many_partitions_in_one_run(tmp_path):
    defs = _defs(tmp_path)
    for key, n in (("raw_candles", 31), ("forecasts", 168), ("evaluations", 168)):
        policy = defs.resolve_assets_def(dg.AssetKey(["1h", key])).backfill_policy
        assert policy.max_partitions_per_run == n, key


def test_partition_counts_stay_under_dagsters_recommendation(tmp_path):
    from kronos_assets.settings import load_settings

    for profile in ("demo", "live"):
        settings = load_settings(profile, home=tmp_path)
        defs = build_definitions(settings, build_resources(settings))
        for asset in defs.assets:
            if asset.partitions_def is not None and "uploads" not in asset.key.to_user_string():  # dynamic
                assert asset.partitions_def.get_num_partitions() < 100_000, asset.key
