"""The hourly chain under a real dagster-daemon: once a series' candles run (as the schedule launches it) has
stored the newest closed bar, the automation sensor launches one run that forecasts, scores and publishes that bar
for that series, and no second one."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from kronos_assets.configuration.settings import REPO_ROOT
from kronos_assets.defs.automation import BAR_TAG, SYMBOL_TAG
from kronos_assets.defs.clock import now_tag
from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.names import candles_job_name
from kronos_assets.defs.partitions import BAR_FMT, DAY_FMT, RANGE_END, RANGE_START, day_key
from kronos_assets.defs.resources import build_resources
from kronos_assets.market.timeframes import last_closed_bar_open
from kronos_assets.orchestration.local_instance import instance_for
from kronos_assets.publishing.keys import MANIFEST_KEY
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.helpers import small_settings
from kronos_assets_tests.operations.servers import VENV_BIN, background, kronos_env, wait_until

# The test's waits add up to 11 min at most (first tick, the chain run, two more ticks), plus up to 10 min of
# sleep at the end of an hour: 600 s was reached on a loaded machine (load 10, at 23:50).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1320)]

UTC = timezone.utc
SENSOR_INTERVAL_S = 5
CHAIN = {"1h/forecasts", "1h/evaluations", "1h/published"}
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _finished_ticks(instance: dg.DagsterInstance, name: str) -> int:
    """Ticks the daemon has finished for the sensor ``name`` (none before it stored the sensor's state)."""
    state = next((s for s in instance.all_instigator_state() if s.name == name), None)
    if state is None:
        return 0
    return sum(t.end_timestamp is not None for t in instance.get_ticks(state.instigator_origin_id, state.selector_id))


def _chain_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [
        r for r in instance.get_runs() if r.asset_selection and {k.to_user_string() for k in r.asset_selection} & CHAIN
    ]


def _candles(defs: dg.Definitions, instance: dg.DagsterInstance, tags: dict[str, str], **kw) -> None:
    result = defs.resolve_job_def(candles_job_name("1h")).execute_in_process(instance=instance, tags=tags, **kw)
    assert result.success


def test_the_daemon_forecasts_scores_and_publishes_the_newest_bar_once_after_its_candles(tmp_path: Path):
    now = datetime.now(UTC)
    if now.minute >= 50:  # the newest bar must not change while the test runs (1-4 min, up to 11 at load 15)
        time.sleep((60 - now.minute) * 60 - now.second + 5)
        now = datetime.now(UTC)
    bar = last_closed_bar_open(now, "1h")
    settings = small_settings(tmp_path, today=now.date())
    defs = build_definitions(settings, build_resources(settings))
    instance_for(settings).dispose()  # writes the profile's dagster.yaml, as `kronos-assets run` does
    shutil.copy(REPO_ROOT / "workspace.yaml", tmp_path / "workspace.yaml")
    env = kronos_env(tmp_path, settings.dagster_home, {"KRONOS_SENSOR_INTERVAL_S": str(SENSOR_INTERVAL_S)})
    log = tmp_path / "daemon.log"
    sensor = "forecast_1h_automation"
    symbol = "BTC-USDT"
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        # The days before the bar's: the history its forecast reads (a candles backfill, one run).
        first, last = bar - timedelta(days=3), bar - timedelta(days=1)
        _candles(
            defs,
            instance,
            {RANGE_START: f"{first:{DAY_FMT}}|{symbol}", RANGE_END: f"{last:{DAY_FMT}}|{symbol}", **now_tag(now)},
        )
        with background([str(VENV_BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, tmp_path, log) as d:
            wait_until(
                lambda: _finished_ticks(instance, sensor) >= 1,
                240,
                "the automation sensor's first tick",
                proc=d,
                log=log,
            )
            assert _chain_runs(instance) == []  # the backfill asked for nothing: its days hold no newest bar
            # The schedule's run of the bar's day (its partition and tags), as the hourly tick launches it.
            _candles(
                defs,
                instance,
                {BAR_TAG: bar.strftime(BAR_FMT), SYMBOL_TAG: symbol, **now_tag(now)},
                partition_key=day_key("BTC/USDT", bar),
            )
            ticks_before = _finished_ticks(instance, sensor)
            runs = wait_until(
                lambda: [r for r in _chain_runs(instance) if r.status in FINISHED] or None,
                300,
                "the chain run to finish",
                interval_s=1.0,
                proc=d,
                log=log,
            )
            # Two more ticks after it: nothing else is requested (once per update; ETH's candles did not change).
            wait_until(
                lambda: _finished_ticks(instance, sensor) >= ticks_before + 3, 120, "two more ticks", proc=d, log=log
            )
            runs = _chain_runs(instance)
    assert len(runs) == 1, [(r.run_id, r.tags.get("dagster/partition")) for r in runs]
    run = runs[0]
    assert run.status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-4000:]
    assert {k.to_user_string() for k in run.asset_selection} == CHAIN
    assert run.tags["dagster/partition"] == f"{bar:{BAR_FMT}}|{symbol}"
    assert run.tags["dagster/partition/symbol"] == symbol  # deploy's per-series run limit can key on it
    assert "dagster/backfill" not in run.tags  # a plain run: the backfill run limit is left to backtests
    origin = bar + timedelta(hours=1)
    stored = Warehouse(settings.warehouse_path).query(
        "SELECT DISTINCT symbol, model FROM forecasts WHERE timeframe = '1h' AND origin = ?", [origin]
    )
    assert sorted(stored.iter_rows()) == [("BTC/USDT", m) for m in sorted(settings.forecasters)]
    assert (settings.publish_dir / MANIFEST_KEY).is_file()
