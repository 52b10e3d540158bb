"""Forecast sanity checks, the track-record asset and its warning, freshness policies, run-failure alerts."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from kronos_assets.defs.partitions import bar_key
from kronos_assets.orchestration.alerts import post_webhook
from kronos_assets_tests.foundation.test_assets import HOUR, D, Env, _prepare_forecasts


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def _checks(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_forecast_sanity_check_passes_then_blocks_a_corrupt_forecast(env):
    result = _prepare_forecasts(env, "BTC/USDT", D + 10 * HOUR, D + 12 * HOUR)
    assert _checks(result)["forecasts_sane"].passed
    with env.wh.connect() as con:
        con.execute("UPDATE forecast_paths SET close = list_transform(close, x -> -x) WHERE path = 3")
    sanity = dg.define_asset_job(
        "sanity",
        selection=dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(["1h", "forecasts"]), "forecasts_sane")),
    )
    defs = dg.Definitions.merge(env.defs, dg.Definitions(jobs=[sanity]))
    check_only = defs.resolve_job_def("sanity").execute_in_process(instance=env.instance, raise_on_error=False)
    ev = _checks(check_only)["forecasts_sane"]
    assert not ev.passed and "non-positive" in json.dumps(ev.metadata["problems"].value)


def test_track_record_asset_reports_scores_and_warns_when_worse_than_baseline(env):
    f = D + 12 * HOUR
    _prepare_forecasts(env, "BTC/USDT", f - 40 * HOUR, f + 6 * HOUR)
    job = dg.define_asset_job("record", selection=[dg.AssetKey(["1h", "track_record"])])
    defs = dg.Definitions.merge(env.defs, dg.Definitions(jobs=[job]))
    result = defs.resolve_job_def("record").execute_in_process(instance=env.instance)
    (mat,) = result.get_asset_materialization_events()
    meta = mat.materialization.metadata
    assert "random_walk_vol" in meta["scoreboard_all_time"].value
    assert "| BTC/USDT | random_walk | 30d | 41 |" in meta["diebold_mariano"].value  # 41 realised pairs, tested
    assert "crps_skill_30d/BTC/USDT/random_walk" in meta
    check = _checks(result)["primary_model_not_worse_than_baseline_30d"]
    assert check.passed  # the primary model here is the baseline itself: skill 0, never worse than itself


def test_watched_assets_carry_freshness_policies(env):
    for key in (dg.AssetKey(["1h", stage]) for stage in ("clean_candles", "forecasts", "published")):
        spec = env.defs.resolve_assets_def(key).specs_by_key[key]
        assert spec.freshness_policy is not None and spec.freshness_policy.fail_window.to_timedelta() > timedelta(
            hours=3
        )
    raw = dg.AssetKey(["1h", "raw_candles"])
    assert env.defs.resolve_assets_def(raw).specs_by_key[raw].freshness_policy is None


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_failed_run_is_recorded_and_posted_to_the_webhook(env, monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hooks/secret-token"
    monkeypatch.setenv("KRONOS_ALERT_WEBHOOK", url)
    try:
        # A forecast with no candles stored fails.
        failed = env.defs.resolve_job_def("forecast_1h").execute_in_process(
            instance=env.instance, partition_key=str(bar_key("BTC/USDT", D)), raise_on_error=False
        )
        assert not failed.success
        sensor = env.defs.resolve_sensor_def("alert_on_run_failure")
        ctx = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=env.instance,
            dagster_run=failed.dagster_run,
            dagster_event=failed.get_run_failure_event(),
        ).for_run_failure()
        sensor(ctx)
    finally:
        server.shutdown()
    (posted,) = _Hook.received
    assert posted["alert"]["run_id"] == failed.run_id and "forecast_1h" in posted["text"]
    line = json.loads((env.settings.profile_home / "alerts.jsonl").read_text().splitlines()[-1])
    assert line["run_id"] == failed.run_id and "no forecast could be made" in line["cause"]


def test_webhook_failure_is_reported_without_the_address():
    with pytest.raises(RuntimeError) as err:
        post_webhook({"summary": "x"}, url="http://127.0.0.1:9/secret-token", attempts=1, timeout_s=1)
    assert "secret-token" not in str(err.value) and "127.0.0.1" in str(err.value)
