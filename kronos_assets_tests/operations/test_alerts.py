"""Alerts: once per failed run however it was launched, the cause in one line, a webhook that hangs or fails
costs a bounded time and is retried later without duplicates."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from kronos_assets.defs.factory import build_definitions, candles_job_name
from kronos_assets.defs.partitions import day_key
from kronos_assets.defs.resources import build_resources
from kronos_assets.orchestration.alerts import POSTED_FILE, deliver_pending, pending_alerts, recorded_alerts
from kronos_assets.orchestration.failures import alert_failed_runs
from kronos_assets.orchestration.local_instance import instance_for
from kronos_assets_tests.helpers import small_settings


class Webhook:
    """A loopback webhook whose behaviour the test switches: ok, fail (HTTP 500) or hang."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.refused: set[str] = set()  # run ids answered with HTTP 400 whatever the mode (a payload it rejects)
        self.posts: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hook.mode == "hang":
                    time.sleep(20)
                    return
                if hook.mode == "fail" or body["alert"].get("run_id") in hook.refused:
                    self.send_response(400 if hook.mode != "fail" else 500)
                    self.end_headers()
                    return
                hook.posts.append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/secret-token"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def hook(monkeypatch):
    w = Webhook()
    monkeypatch.setenv("KRONOS_ALERT_WEBHOOK", w.url)
    yield w
    w.close()


class DownMarket:
    name = "down"

    def fetch(self, *args, **kwargs):
        raise RuntimeError("binance, okx, bybit unreachable after 4 tries each (simulated)")


def _failed_run(tmp_path: Path):
    settings = small_settings(tmp_path)
    instance = instance_for(settings)
    defs = build_definitions(settings, {**build_resources(settings), "market": DownMarket()})
    day = day_key("BTC/USDT", datetime(2026, 11, 20, tzinfo=timezone.utc))
    result = defs.resolve_job_def(candles_job_name("1h")).execute_in_process(
        instance=instance, partition_key=day, raise_on_error=False
    )
    assert not result.success
    return settings, instance, defs, result


def _sensor(defs, instance, result) -> None:
    sensor = defs.resolve_sensor_def("alert_on_run_failure")
    ctx = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    sensor(ctx)


def test_a_failed_run_is_alerted_once_with_its_cause_however_reported(tmp_path, hook):
    settings, instance, defs, result = _failed_run(tmp_path)
    try:
        folder = settings.profile_home
        alert_failed_runs(instance, [result.run_id], folder, settings.profile)  # what `kronos-assets run` does
        _sensor(defs, instance, result)  # the daemon's sensor sees the same run
        _sensor(defs, instance, result)  # a tick evaluated again after a timeout
    finally:
        instance.dispose()
    (alert,) = recorded_alerts(folder)
    assert alert["run_id"] == result.run_id and alert["profile"] == "demo"
    assert alert["cause"] == (
        "1h__raw_candles: RuntimeError: binance, okx, bybit unreachable after 4 tries each (simulated)"
    )
    assert "\n" not in alert["cause"]
    assert len(hook.posts) == 1 and hook.posts[0]["alert"]["run_id"] == result.run_id
    assert "unreachable" in hook.posts[0]["text"] and pending_alerts(folder) == []


def test_a_hanging_webhook_costs_seconds_and_is_retried_once_it_answers(tmp_path, hook):
    settings, instance, defs, result = _failed_run(tmp_path)
    folder = settings.profile_home
    try:
        hook.mode = "hang"
        t0 = time.monotonic()
        _sensor(defs, instance, result)
        assert time.monotonic() - t0 < 6  # the POST deadline (3 s), not the webhook's 20 s
        assert [a["run_id"] for a in pending_alerts(folder)] == [result.run_id]

        hook.mode = "fail"
        recover = defs.resolve_sensor_def("recover_dead_runs_and_deliver_alerts")
        skip = recover(dg.build_sensor_context(instance=instance))
        assert "1 pending" in skip.skip_message and "secret-token" not in skip.skip_message
        assert hook.posts == []

        hook.mode = "ok"
        recover(dg.build_sensor_context(instance=instance))
        recover(dg.build_sensor_context(instance=instance))  # nothing pending: nothing posted again
        _sensor(defs, instance, result)
    finally:
        instance.dispose()
    assert [p["alert"]["run_id"] for p in hook.posts] == [result.run_id]
    assert len(recorded_alerts(folder)) == 1
    assert len((folder / POSTED_FILE).read_text().splitlines()) == 1


def test_a_round_of_deliveries_has_one_deadline_for_all_alerts(tmp_path, hook):
    from kronos_assets.orchestration.alerts import record_alert

    for i in range(5):
        record_alert(tmp_path, {"run_id": f"run-{i}", "summary": "x"})
    hook.mode = "hang"
    t0 = time.monotonic()
    outcome = deliver_pending(tmp_path, deadline_s=2.0, timeout_s=1.0)
    assert time.monotonic() - t0 < 4 and "5 pending" in outcome
    hook.mode = "ok"
    assert "5 posted" in deliver_pending(tmp_path)
    assert sorted(p["alert"]["run_id"] for p in hook.posts) == [f"run-{i}" for i in range(5)]


def test_a_round_tries_every_pending_alert_when_one_is_refused(tmp_path, hook):
    """The webhook rejects the oldest alert: the others are still delivered in the same round, it stays pending."""
    from kronos_assets.orchestration.alerts import record_alert

    for i in range(4):
        record_alert(tmp_path, {"run_id": f"run-{i}", "summary": "x"})
    hook.refused = {"run-0"}
    outcome = deliver_pending(tmp_path)
    assert sorted(p["alert"]["run_id"] for p in hook.posts) == ["run-1", "run-2", "run-3"], outcome
    assert "3 posted, 1 pending" in outcome and "HTTPError" in outcome and "secret-token" not in outcome
    assert [a["run_id"] for a in pending_alerts(tmp_path)] == ["run-0"]
    hook.refused = set()
    assert "1 posted" in deliver_pending(tmp_path) and pending_alerts(tmp_path) == []
    assert len(hook.posts) == 4  # nothing posted twice


def test_a_round_stuck_holding_the_lock_delays_the_next_by_a_bounded_wait_and_posts_nothing_twice(
    tmp_path, hook, monkeypatch
):
    """A process stopped inside its delivery round (SIGSTOP, a debugger) keeps the alerts lock: the next round
    waits LOCK_WAIT_S, leaves the alerts pending and says why, instead of blocking the sensor for good."""
    from kronos_assets.base.locks import file_lock
    from kronos_assets.orchestration import alerts

    alerts.record_alert(tmp_path, {"run_id": "run-0", "summary": "x"})
    monkeypatch.setattr(alerts, "LOCK_WAIT_S", 0.5)
    with file_lock(tmp_path / ".alerts.lock", 0.0, "the alerts lock"):
        t0 = time.monotonic()
        outcome = deliver_pending(tmp_path)
        assert 0.5 <= time.monotonic() - t0 < 5
    assert "0 posted, 1 pending for the next round" in outcome and "has held the alerts lock" in outcome, outcome
    assert hook.posts == []
    assert "1 posted" in deliver_pending(tmp_path) and [p["alert"]["run_id"] for p in hook.posts] == ["run-0"]


def test_cut_alert_lines_do_not_hide_the_others(tmp_path):
    from kronos_assets.orchestration.alerts import ALERTS_FILE, record_alert

    record_alert(tmp_path, {"run_id": "a"})
    with (tmp_path / ALERTS_FILE).open("a") as fh:
        fh.write('{"run_id": "b", "summ')  # a crash mid-append
    assert record_alert(tmp_path, {"run_id": "c"})
    assert [a["run_id"] for a in recorded_alerts(tmp_path)] == ["a", "c"]
    assert not record_alert(tmp_path, {"run_id": "a"}) and not record_alert(tmp_path, {"run_id": "c"})


def test_the_local_instance_monitors_runs_and_runs_sensors_in_threads(tmp_path):
    """Sensors in threads: a slow alert tick never delays the others; monitoring frees slots of ended runs."""
    settings = small_settings(tmp_path)
    instance = instance_for(settings)
    try:
        assert instance.get_settings("sensors").get("use_threads") is True
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings.get("free_slots_after_run_end_seconds")
    finally:
        instance.dispose()


def _ticks(dagster_home: Path) -> dict[str, list[tuple[float, float | None]]]:
    """Sensor name -> [(start, end)] of its ticks, read from the instance's SQLite schedule storage."""
    import sqlite3

    db = dagster_home / "schedules" / "schedules.db"
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT tick_body FROM job_ticks ORDER BY timestamp").fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return {}
    finally:
        con.close()
    out: dict[str, list[tuple[float, float | None]]] = {}
    for (body,) in rows:
        data = json.loads(body)
        data = data.get("tick_data", data)
        out.setdefault(data["job_name"], []).append((data["timestamp"], data.get("end_timestamp")))
    return out


SENSORS = ("alert_on_run_failure", "recover_dead_runs_and_deliver_alerts", "uploaded_candles")
SENSOR_INTERVAL_S = 5  # the daemon looks at its sensors every 5 s: a shorter interval would change nothing


def _ticked_since(dagster_home: Path, since: float, times: int) -> bool:
    """Every sensor of SENSORS has finished ``times`` ticks that started after ``since``."""
    ticks = _ticks(dagster_home)
    return all(
        sum(start >= since and end is not None for start, end in ticks.get(name, [])) >= times for name in SENSORS
    )


@pytest.mark.slow
def test_with_the_daemon_running_a_hanging_then_failing_webhook_delays_nothing_and_duplicates_nothing(tmp_path):
    import shutil

    from kronos_assets.configuration.settings import REPO_ROOT
    from kronos_assets_tests.operations.servers import VENV_BIN, background, kronos_env, wait_until

    hook = Webhook()
    hook.mode = "hang"
    settings = small_settings(tmp_path)
    instance_for(settings).dispose()  # writes the profile's dagster.yaml, as `kronos-assets run` does
    shutil.copy(REPO_ROOT / "workspace.yaml", tmp_path / "workspace.yaml")
    env = kronos_env(
        tmp_path,
        settings.dagster_home,
        {"KRONOS_ALERT_WEBHOOK": hook.url, "KRONOS_SENSOR_INTERVAL_S": str(SENSOR_INTERVAL_S)},
    )
    log = tmp_path / "daemon.log"
    folder = settings.profile_home
    home = settings.dagster_home
    try:
        with background([str(VENV_BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, tmp_path, log) as d:
            # The failure sensor's first tick sets its cursor: failures after it are what it reports.
            wait_until(lambda: "alert_on_run_failure" in _ticks(home), 240, "first sensor tick", proc=d, log=log)
            failed = []
            for day in (18, 19, 20):
                instance = instance_for(settings)
                try:
                    defs = build_definitions(settings, {**build_resources(settings), "market": DownMarket()})
                    result = defs.resolve_job_def(candles_job_name("1h")).execute_in_process(
                        instance=instance,
                        raise_on_error=False,
                        partition_key=day_key("BTC/USDT", datetime(2026, 11, day, tzinfo=timezone.utc)),
                    )
                    failed.append(result.run_id)
                finally:
                    instance.dispose()
            wait_until(lambda: len(recorded_alerts(folder)) == 3, 180, "three alerts recorded", proc=d, log=log)
            # Every sensor ticks twice more while the webhook hangs (the recovery sensor retrying the posts).
            hang_from = time.time()
            wait_until(
                lambda: _ticked_since(home, hang_from, 2),
                180,
                "two ticks of every sensor during the hang",
                proc=d,
                log=log,
            )
            assert hook.posts == [] and len(pending_alerts(folder)) == 3
            hook.mode = "fail"
            fail_from = time.time()
            wait_until(
                lambda: _ticked_since(home, fail_from, 1),
                180,
                "a tick of every sensor while posts fail",
                proc=d,
                log=log,
            )
            hook.mode = "ok"
            wait_until(lambda: not pending_alerts(folder), 180, "pending alerts delivered", proc=d, log=log)
            ticks = _ticks(home)
    finally:
        hook.close()
    assert sorted(a["run_id"] for a in recorded_alerts(folder)) == sorted(failed)  # once each
    assert sorted(p["alert"]["run_id"] for p in hook.posts) == sorted(failed)  # posted once each, none twice
    for start, end in ticks["alert_on_run_failure"]:
        assert end is None or end - start < 15, ticks["alert_on_run_failure"]  # 3 s per POST, 8 s per round
    # Another sensor kept its cadence while the webhook hung (sensors run in threads).
    uploads = [start for start, _ in ticks["uploaded_candles"]]
    gaps = [b - a for a, b in zip(uploads, uploads[1:])]
    assert gaps and max(gaps) < 50, gaps


def test_a_sensor_interval_that_is_not_a_whole_number_of_seconds_names_the_variable(monkeypatch):
    from kronos_assets.base import environment

    monkeypatch.delenv(environment.SENSOR_INTERVAL, raising=False)
    assert environment.sensor_interval_s(30) == 30
    monkeypatch.setenv(environment.SENSOR_INTERVAL, "5")
    assert environment.sensor_interval_s(30) == 5
    for raw in ("0", "2.5", "soon", "-1"):
        monkeypatch.setenv(environment.SENSOR_INTERVAL, raw)
        with pytest.raises(ValueError, match=rf"^KRONOS_SENSOR_INTERVAL_S: '{raw}' is not a whole number"):
            environment.sensor_interval_s(30)


def test_the_next_kronos_assets_run_retries_alerts_whose_post_failed(tmp_path, hook):
    from kronos_assets.cli.main_job import recover
    from kronos_assets.orchestration.alerts import record_alert
    from kronos_assets.publishing.store import LocalStore

    settings = small_settings(tmp_path)
    record_alert(settings.profile_home, {"run_id": "r1", "summary": "x", "cause": "c"})
    hook.mode = "fail"
    assert "1 pending" in deliver_pending(settings.profile_home)
    hook.mode = "ok"
    instance = instance_for(settings)
    messages: list[str] = []
    try:
        recover(settings, instance, LocalStore(settings.publish_dir), log=messages.append)
        recover(settings, instance, LocalStore(settings.publish_dir), log=messages.append)
    finally:
        instance.dispose()
    assert [p["alert"]["run_id"] for p in hook.posts] == ["r1"] and pending_alerts(settings.profile_home) == []
    assert messages == ["alerts: webhook at 127.0.0.1: 1 posted"], messages
