from datetime import datetime, timezone

import dagster as dg

from kronos_assets.defs.automation import BAR_TAG, SYMBOL_TAG
from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.resources import build_resources
from kronos_assets_tests.helpers import small_settings

UTC = timezone.utc
CHAIN = ("forecasts", "evaluations", "published")  # one bar's steps, in one run


def _defs(tmp_path, **profile):
    settings = small_settings(tmp_path, **profile)
    return build_definitions(settings, build_resources(settings))


def _condition(defs, name, tf="1h"):
    return defs.get_repository_def().asset_graph.get(dg.AssetKey([tf, name])).automation_condition


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


def _replay_defs(tmp_path):
    from kronos_assets.market.replay_data import DATA_DIR

    files = {
        "BTC/USDT": {"1h": str(DATA_DIR / "binance_BTCUSDT_1h_20240101_20260620.csv.gz")},
        "ETH/USDT": {"1h": str(DATA_DIR / "binance_ETHUSDT_1h_20240101_20260331.csv.gz")},
    }
    return _defs(tmp_path, market="replay", replay={"files": files})


def test_replay_sensor_forecasts_the_bar_of_a_successful_scheduled_candles_run(tmp_path):
    """A replay market's newest bar is the replay clock's, not Dagster's newest partition: the sensor stays."""
    defs = _replay_defs(tmp_path)
    assert all(_condition(defs, name) is None for name in CHAIN)
    sensor = defs.resolve_sensor_def("forecast_1h_after_candles")
    instance = dg.DagsterInstance.ephemeral()
    run = instance.create_run_for_job(
        defs.resolve_job_def("candles_1h"), tags={BAR_TAG: "2025-03-10-05:00", SYMBOL_TAG: "ETH-USDT"}
    )
    ctx = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=dg.DagsterEvent(event_type_value="PIPELINE_SUCCESS", job_name="candles_1h"),
    )
    req = sensor(ctx)
    assert isinstance(req, dg.RunRequest)
    assert req.partition_key == "2025-03-10-05:00|ETH-USDT"
    manual = instance.create_run_for_job(defs.resolve_job_def("candles_1h"))
    ctx = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=manual,
        dagster_event=dg.DagsterEvent(event_type_value="PIPELINE_SUCCESS", job_name="candles_1h"),
    )
    assert isinstance(sensor(ctx), dg.SkipReason)


# -- the forecast -> evaluation -> publish chain as automation conditions (a market on Dagster's clock) ---------
class _Ticks:
    """dg.evaluate_automation_conditions tick after tick, its cursor carried, as the automation sensor does."""

    def __init__(self, defs: dg.Definitions):
        self.defs, self.instance, self.cursor = defs, dg.DagsterInstance.ephemeral(), None

    def candles_updated(self, symbol: str, day: str, asset: str = "clean_candles") -> None:
        self.instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=dg.AssetKey(["1h", asset]), partition=f"{day}|{symbol}")
        )

    def tick(self, when: datetime) -> dict[str, set[str]]:
        """What the tick requests: asset key -> partition keys, for the assets the chain's sensors target (the
        track record's eager condition is left to the default automation sensor, stopped unless turned on)."""
        keys = self.defs.get_repository_def().asset_graph.get_all_asset_keys()
        targeted = dg.AssetSelection.assets(*(k for k in keys if k.path[-1] != "track_record"))
        result = dg.evaluate_automation_conditions(
            self.defs, self.instance, asset_selection=targeted, evaluation_time=when, cursor=self.cursor
        )
        self.cursor = result.cursor
        return {
            k.to_user_string(): set(result.get_requested_partitions(k)) for k in keys if result.get_num_requested(k)
        }


def _chain(partition: str, tf: str = "1h") -> dict[str, set[str]]:
    """The forecast, evaluation and publish steps of one bar: what one run of the sensor carries."""
    return {f"{tf}/{name}": {partition} for name in CHAIN}


def test_the_newest_bar_is_forecast_scored_and_published_in_one_run_per_series_after_its_candles(tmp_path):
    defs = _defs(tmp_path)
    sensor = defs.resolve_sensor_def("forecast_1h_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING  # as the candles schedule
    assert "forecast_1h_after_candles" not in {s.name for s in defs.get_repository_def().sensor_defs}
    ticks = _Ticks(defs)
    assert ticks.tick(datetime(2025, 3, 10, 6, 1, tzinfo=UTC)) == {}  # top of the hour: nothing before candles
    ticks.candles_updated("BTC-USDT", "2025-03-10")  # the 06:05 tick's candles run for BTC finished
    assert ticks.tick(datetime(2025, 3, 10, 6, 6, tzinfo=UTC)) == _chain("2025-03-10-05:00|BTC-USDT")
    assert ticks.tick(datetime(2025, 3, 10, 6, 7, tzinfo=UTC)) == {}  # once per update: no duplicate run
    ticks.candles_updated("ETH-USDT", "2025-03-10")
    assert ticks.tick(datetime(2025, 3, 10, 6, 8, tzinfo=UTC)) == _chain("2025-03-10-05:00|ETH-USDT")
    # the first tick of a day: the schedule refreshed the day that just ended; its last bar is the newest
    ticks.candles_updated("BTC-USDT", "2025-03-10")
    assert ticks.tick(datetime(2025, 3, 11, 0, 6, tzinfo=UTC)) == _chain("2025-03-10-23:00|BTC-USDT")


def test_backfills_and_raw_candles_request_nothing_new(tmp_path):
    ticks = _Ticks(_defs(tmp_path))
    assert ticks.tick(datetime(2025, 3, 10, 6, 1, tzinfo=UTC)) == {}
    ticks.candles_updated("BTC-USDT", "2025-02-01")  # a backfill of old days: no newest bar reads them
    for bar in ("2025-02-01-05:00", "2025-02-01-06:00"):  # a backtest over past bars
        ticks.instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=dg.AssetKey(["1h", "forecasts"]), partition=f"{bar}|BTC-USDT")
        )
    ticks.candles_updated("BTC-USDT", "2025-03-10", asset="raw_candles")  # clean candles not there yet
    assert ticks.tick(datetime(2025, 3, 10, 6, 6, tzinfo=UTC)) == {}


def test_the_four_hour_chain_follows_its_own_bars(tmp_path):
    ticks = _Ticks(_defs(tmp_path, timeframes=["1h", "4h"]))
    ticks.tick(datetime(2025, 3, 10, 8, 1, tzinfo=UTC))
    ticks.instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=dg.AssetKey(["4h", "clean_candles"]), partition="2025-03-10|ETH-USDT")
    )
    assert ticks.tick(datetime(2025, 3, 10, 8, 6, tzinfo=UTC)) == _chain("2025-03-10-04:00|ETH-USDT", "4h")


def test_uploaded_markets_keep_their_sensor(tmp_path):
    defs = _defs(tmp_path)
    assert isinstance(defs.resolve_sensor_def("forecast_uploads_1h_after_candles"), dg.RunStatusSensorDefinition)
    assert _condition(defs, "forecasts_uploads") is None


def test_backfill_policies_put_many_partitions_in_one_run(tmp_path):
    defs = _defs(tmp_path)
    for key, n in (("raw_candles", 31), ("forecasts", 168), ("evaluations", 168)):
        policy = defs.resolve_assets_def(dg.AssetKey(["1h", key])).backfill_policy
        assert policy.max_partitions_per_run == n, key


def test_partition_counts_stay_under_dagsters_recommendation(tmp_path):
    from kronos_assets.configuration.settings import load_settings

    for profile in ("demo", "live"):
        settings = load_settings(profile, home=tmp_path)
        defs = build_definitions(settings, build_resources(settings))
        for asset in defs.assets:
            if asset.partitions_def is not None and "uploads" not in asset.key.to_user_string():  # dynamic
                assert asset.partitions_def.get_num_partitions() < 100_000, asset.key
