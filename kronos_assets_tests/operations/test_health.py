"""``kronos-assets health`` on real homes: healthy after the main job, then stale candles, then a failed run."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from kronos_assets.cli import main as cli
from kronos_assets.cli.health import FAIL, OK, WARN, run_health
from kronos_assets.cli.main_job import instance_for, run_main_job
from kronos_assets.defs.factory import build_definitions, candles_job_name
from kronos_assets.defs.partitions import day_key
from kronos_assets.defs.resources import build_resources
from kronos_assets_tests.helpers import small_settings

ENV_PREFIXES = ("KRONOS_", "R2_", "DAGSTER_HOME")


@pytest.fixture(scope="module")
def healthy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small home after one main-job run (2 symbols x 1h, 2 bars of backfill), runs in <home>/demo/dagster."""
    root = tmp_path_factory.mktemp("healthy")
    with pytest.MonkeyPatch.context() as mp:
        for k in [k for k in os.environ if k.startswith(ENV_PREFIXES)]:
            mp.delenv(k)
        run_main_job(small_settings(root), backfill_bars=2, log=lambda _: None)
    return root


@pytest.fixture
def use_home(monkeypatch: pytest.MonkeyPatch):
    """Point the CLI's environment at a root's configs and home (demo profile), nothing else inherited."""
    for k in [k for k in os.environ if k.startswith(ENV_PREFIXES)]:
        monkeypatch.delenv(k)

    def use(root: Path):
        monkeypatch.setenv("KRONOS_CONFIG_DIR", str(root / "configs"))
        monkeypatch.setenv("KRONOS_HOME", str(root / "home"))
        monkeypatch.setenv("KRONOS_PROFILE", "demo")
        return small_settings(root)

    return use


def _copy(root: Path, dest: Path) -> Path:
    shutil.copytree(root, dest)
    return dest


def _rows(out: str) -> dict[str, str]:
    """item -> status, read from the rendered table by its header's column positions."""
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("SECTION"))
    i_item, i_status, i_detail = (lines[head].index(c) for c in ("ITEM", "STATUS", "DETAIL"))
    rows = {}
    for line in lines[head + 2 :]:
        if not line.strip():
            break
        item, status = line[i_item:i_status].strip(), line[i_status:i_detail].strip()
        if item:  # continuation lines of a wrapped detail have neither
            rows[item] = status
    return rows


def test_healthy_home_after_main_job(healthy_root, use_home, capsys):
    use_home(healthy_root)
    code = cli.main(["health"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = _rows(out)
    for item in (
        "profile",
        "symbols",
        "timeframes",
        "forecasters",
        "publish",
        "warehouse",
        "publish folder",
        "uploads folder",
        "exchanges",
        "BTC/USDT 1h",
        "ETH/USDT 1h",
        "publication",
        "runs (last 24 h)",
        "asset checks",
    ):
        assert rows.get(item) in (OK, WARN), (item, out)
    for item in ("BTC/USDT 1h", "ETH/USDT 1h", "publication", "runs (last 24 h)", "warehouse"):
        assert rows[item] == OK, (item, out)
    assert "FAIL" not in out
    assert out.strip().splitlines()[-1].startswith("HEALTHY")
    # The list may wrap between its words; a path never breaks (it must stay copyable, however long the tmp path).
    assert "BTC/USDT, ETH/USDT" in " ".join(out.split()) and str(healthy_root / "home" / "demo" / "publish") in out
    assert rows["runs in flight"] == OK and rows["pool slots"] == OK, out


def test_stale_newest_candle_fails(healthy_root, use_home, tmp_path, capsys):
    root = _copy(healthy_root, tmp_path / "stale")
    settings = use_home(root)
    # Ingestion stalled for BTC: its newest clean candles are five bars old, while ETH stays current.
    cutoff = datetime.now(timezone.utc) - timedelta(hours=5)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("DELETE FROM clean_candles WHERE symbol = 'BTC/USDT' AND ts >= ?", [cutoff])
    con.close()
    code = cli.main(["health"])
    out = capsys.readouterr().out
    assert code == 1, out
    rows = _rows(out)
    assert rows["BTC/USDT 1h"] == FAIL and rows["ETH/USDT 1h"] == OK, out
    assert out.strip().splitlines()[-1].startswith("FAILING") and "fresh/BTC/USDT 1h" in out


def test_failed_run_fails_until_repaired(healthy_root, use_home, tmp_path, capsys):
    root = _copy(healthy_root, tmp_path / "failed")
    settings = use_home(root)

    class DownMarket:
        name = "down"

        def fetch(self, *args, **kwargs):
            raise RuntimeError("exchange unreachable (simulated outage)")

    day = day_key("BTC/USDT", datetime.now(timezone.utc) - timedelta(days=1))
    instance = instance_for(settings)
    try:
        broken = build_definitions(settings, {**build_resources(settings), "market": DownMarket()})
        result = broken.resolve_job_def(candles_job_name("1h")).execute_in_process(
            instance=instance, partition_key=day, raise_on_error=False
        )
        assert not result.success
    finally:
        instance.dispose()

    code = cli.main(["health"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert _rows(out)["runs (last 24 h)"] == FAIL
    assert "candles_1h" in out and result.run_id[:8] in out and "simulated outage" in out

    # A later successful run of the same job and partition repairs it: reported, no longer failing.
    instance = instance_for(settings)
    try:
        fixed = build_definitions(settings).resolve_job_def(candles_job_name("1h"))
        assert fixed.execute_in_process(instance=instance, partition_key=day).success
    finally:
        instance.dispose()
    report = run_health(settings)
    runs = next(r for r in report.rows if r.item.startswith("runs"))
    assert runs.status == WARN and "repaired" in runs.detail, runs
    assert report.exit_code == 0, report.render()


def test_failed_asset_checks_by_severity(healthy_root, use_home, tmp_path):
    """A check whose latest evaluation failed: WARN severity warns, ERROR severity fails, each named."""
    import dagster as dg

    settings = use_home(_copy(healthy_root, tmp_path / "checks"))
    keys = sorted(build_definitions(settings).resolve_asset_graph().asset_check_keys, key=lambda k: k.to_user_string())
    warned, errored = keys[0], keys[1]

    def fail(key: dg.AssetCheckKey, severity: dg.AssetCheckSeverity) -> object:
        instance = instance_for(settings)
        try:
            instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(asset_key=key.asset_key, check_name=key.name, passed=False, severity=severity)
            )
        finally:
            instance.dispose()
        return next(r for r in run_health(settings).rows if r.item == "asset checks")

    row = fail(warned, dg.AssetCheckSeverity.WARN)
    assert row.status == WARN and "1 failed (WARN severity)" in row.detail and warned.to_user_string() in row.detail
    row = fail(errored, dg.AssetCheckSeverity.ERROR)
    assert row.status == FAIL and "1 failed (ERROR)" in row.detail and errored.to_user_string() in row.detail
    assert "1 warned" in row.detail and f"{len(keys)} checks:" in row.detail, row


def test_network_probes_only_with_network_flag(tmp_path, use_home):
    """Exchanges are contacted only with --network; then a dead exchange behind a live one is a warning."""
    from kronos_assets.configuration.settings import load_settings
    from kronos_assets.market.synthetic import SyntheticMarket
    from kronos_assets_tests.fakes.fake_exchange import FakeExchange
    from kronos_assets_tests.helpers import SMALL_MARKETS, write_configs
    from kronos_assets_tests.operations.servers import free_port

    use_home(tmp_path)
    now = datetime.now(timezone.utc)
    frame = SyntheticMarket(seed=7).fetch("BTC/USDT", "1h", now - timedelta(days=1), now, now)
    with FakeExchange("binance", {"BTC/USDT": {"1h": frame}}, now) as fake:
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        markets = {
            **SMALL_MARKETS,
            "exchanges": [
                {"id": "binance", "base_url": fake.url, "options": {}},
                {"id": "okx", "base_url": dead, "options": {}},
            ],
        }
        cfg = write_configs(tmp_path, markets=markets, profile={"market": "ccxt"})
        settings = load_settings("demo", config_dir=cfg, home=tmp_path / "home")

        offline = run_health(settings)
        row = next(r for r in offline.rows if r.item == "exchanges")
        assert row.status == "SKIP" and "--network" in row.detail
        assert fake.requests == []

        online = run_health(settings, network=True)
        rows = {r.item: r for r in online.rows}
        assert rows["exchange binance"].status == OK and "BTC/USDT 1h" in rows["exchange binance"].detail
        assert rows["exchange okx"].status == WARN and "falls back" in rows["exchange okx"].detail
        assert fake.requests


@pytest.mark.parametrize(
    "profile, model_row",
    [("demo", "kronos-demo (local folder "), ("live", "kronos-mini (NeoQuasar/Kronos-mini@f4e68697d9d5)")],
)
def test_health_works_on_every_shipped_profile(tmp_path, monkeypatch, capsys, profile, model_row):
    """The repository's own configs, a fresh home: every row renders (nothing run yet, so freshness fails)."""
    for k in [k for k in os.environ if k.startswith(ENV_PREFIXES)]:
        monkeypatch.delenv(k)
    code = cli.main(["--profile", profile, "--home", str(tmp_path), "health"])
    out = capsys.readouterr().out
    assert code == 1 and "could not check" not in out and "Traceback" not in out, out
    assert model_row in " ".join(out.split()), out
    assert f"kronos-assets health: profile {profile}" in out and str(tmp_path / profile) in out
    assert out.strip().splitlines()[-1].startswith("FAILING")


def test_model_sources_of_every_kind_are_described():
    from kronos_assets.cli.health import model_source
    from kronos_assets.forecasting.kinds.kronos import KronosSettings

    local = KronosSettings("m", None, None, None, None, 512, local_dir=Path("/models/m"))
    hub = KronosSettings("h", "org/K", "a" * 40, "org/T", "b" * 40, 512)
    unpinned = KronosSettings("u", "org/K", None, "org/T", None, 512)
    assert model_source(local) == "local folder /models/m"
    assert model_source(hub) == "org/K@aaaaaaaaaaaa"
    assert model_source(unpinned) == "org/K (no pinned revision)"


def test_health_shows_dead_runs_and_the_slots_they_hold(healthy_root, use_home, tmp_path):
    import subprocess

    from kronos_assets_tests.operations.test_recovery import _holder

    root = _copy(healthy_root, tmp_path / "dead")
    settings = use_home(root)
    gone = subprocess.Popen(["true"])
    gone.wait()
    instance = instance_for(settings)
    try:
        dead = _holder(instance, gone.pid)
        live = _holder(instance, os.getpid(), pool="publish")
    finally:
        instance.dispose()
    report = run_health(settings)
    rows = {r.item: r for r in report.rows}
    assert rows["runs in flight"].status == FAIL and dead[:8] in rows["runs in flight"].detail
    assert f"pid {gone.pid}" in rows["runs in flight"].detail and "is gone" in rows["runs in flight"].detail
    slots = rows["pool slots"]
    assert slots.status == FAIL and f"duckdb_write held by candles_1h run {dead[:8]}" in slots.detail, slots
    assert report.exit_code == 1

    instance = instance_for(settings)
    try:
        from kronos_assets.orchestration.runs import reap_dead_runs

        assert list(reap_dead_runs(instance)) == [dead]
    finally:
        instance.dispose()
    rows = {r.item: r for r in run_health(settings).rows}
    assert rows["pool slots"].status == OK and f"publish held by candles_1h run {live[:8]}" in rows["pool slots"].detail
    assert rows["runs in flight"].status == OK and "1 running" in rows["runs in flight"].detail


def test_a_check_its_run_never_evaluated_is_named_as_planned(healthy_root, use_home, tmp_path):
    """A run that ends before its checks (here its asset step fails; a kill leaves the same) leaves them only
    planned: health names them as planned but not evaluated instead of failing on the planned record."""
    settings = use_home(_copy(healthy_root, tmp_path / "planned"))

    class DownMarket:
        name = "down"

        def fetch(self, *args, **kwargs):
            raise RuntimeError("exchange unreachable (simulated outage)")

    instance = instance_for(settings)
    try:
        broken = build_definitions(settings, {**build_resources(settings), "market": DownMarket()})
        result = broken.resolve_job_def(candles_job_name("1h")).execute_in_process(
            instance=instance,
            partition_key=day_key("BTC/USDT", datetime.now(timezone.utc) - timedelta(days=1)),
            raise_on_error=False,
        )
        assert not result.success
    finally:
        instance.dispose()
    row = next(r for r in run_health(settings).rows if r.item == "asset checks")
    assert row.status == WARN and "could not check" not in row.detail, row
    assert "planned but not yet evaluated" in row.detail and result.run_id[:8] in row.detail, row
    assert "1h/raw_candles:" in row.detail, row


def test_health_warns_with_the_count_of_undelivered_alerts(healthy_root, use_home, tmp_path, monkeypatch):
    """With a webhook set, alerts it has not received are a warning with their count; delivered ones are not."""
    from kronos_assets.orchestration.alerts import deliver_pending, record_alert
    from kronos_assets_tests.operations.test_alerts import Webhook

    settings = use_home(_copy(healthy_root, tmp_path / "alerts"))
    for run_id in ("run-a", "run-b", "run-c"):
        record_alert(settings.profile_home, {"run_id": run_id, "summary": "x", "time": "2026-12-01T10:00:00+00:00"})
    row = next(r for r in run_health(settings).rows if r.item == "alerts")
    assert row.status == OK and "3 recorded" in row.detail and "no webhook" in row.detail, row

    hook = Webhook()
    try:
        monkeypatch.setenv("KRONOS_ALERT_WEBHOOK", hook.url)
        hook.refused = {"run-a", "run-b"}  # the webhook rejects two of them
        deliver_pending(settings.profile_home)
        report = run_health(settings)
        row = next(r for r in report.rows if r.item == "alerts")
        assert row.status == WARN and "2 of 3 not delivered" in row.detail and "run run-a" in row.detail, row
        assert "secret-token" not in report.render() and report.exit_code == 0
        assert report.render().splitlines()[-1].startswith("HEALTHY with") and "failing/alerts" in report.render()
        hook.refused = set()
        deliver_pending(settings.profile_home)
        row = next(r for r in run_health(settings).rows if r.item == "alerts")
        assert row.status == OK and "all delivered" in row.detail, row
    finally:
        hook.close()
