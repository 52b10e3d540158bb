"""The live profile's candles job against the misbehaving loopback exchange: run outcome, metadata, the
stored-day check, and the stored rows before and after."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import dagster as dg
import polars as pl
import pytest

from kronos_assets.cli.main_job import RANGE_END, RANGE_START
from kronos_assets.configuration.settings import load_settings
from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.partitions import day_key
from kronos_assets.defs.resources import build_resources
from kronos_assets_tests.conftest import real_candles
from kronos_assets_tests.fakes.fake_exchange import FakeExchange
from kronos_assets_tests.helpers import SMALL_MARKETS, write_configs

UTC = timezone.utc
DAY = datetime(2024, 7, 1, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture(scope="module")
def eth():
    return real_candles("binance_ETHUSDT_1h_20240101_20260331.csv.gz")


class Live:
    def __init__(self, tmp_path, fake: FakeExchange):
        markets = {
            **SMALL_MARKETS,
            "symbols": ["ETH/USDT"],
            "exchanges": [{"id": "binance", "base_url": fake.url, "options": {}}],
            "fetch": {"request_deadline_s": 2, "fetch_deadline_s": 30},
        }
        cfg = write_configs(tmp_path, markets=markets, profile={"market": "ccxt", "symbols": ["ETH/USDT"]})
        self.settings = load_settings("demo", config_dir=cfg, home=tmp_path / "home", today=date(2026, 11, 21))
        self.resources = build_resources(self.settings)
        self.defs = build_definitions(self.settings, self.resources)
        self.instance = dg.DagsterInstance.ephemeral()
        self.wh = self.resources["warehouse"].get()

    def run(self, day: datetime) -> dg.ExecuteInProcessResult:
        key = str(day_key("ETH/USDT", day))
        return self.defs.resolve_job_def("candles_1h").execute_in_process(
            instance=self.instance, tags={RANGE_START: key, RANGE_END: key}, raise_on_error=False
        )

    def stored(self):
        return self.wh.query("SELECT ts, open, high, low, close, volume, amount, exchange FROM raw_candles ORDER BY ts")


def raw_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (mat,) = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey(["1h", "raw_candles"])
    ]
    return {k: v.value for k, v in mat.metadata.items()}


def check(result: dg.ExecuteInProcessResult, name: str):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def failure(result: dg.ExecuteInProcessResult) -> str:
    """The step failure's message and those of its causes: what the user reads in the run's log."""
    error, parts = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error, []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return " <- ".join(parts)


def test_live_candles_job_under_exchange_faults(tmp_path, eth):
    with FakeExchange("binance", {"ETH/USDT": {"1h": eth}}, None) as fake:
        live = Live(tmp_path, fake)
        assert live.settings.request_deadline_s == 2 and live.resources["market"].get().config.request_deadline_s == 2
        ok = live.run(DAY)
        assert ok.success and raw_metadata(ok)["missing_bars"] == 0 and check(ok, "stored_days_complete").passed
        before = live.stored()
        assert before.height == 24

        fake.add_fault(action="stuck", times=None)  # pagination that never advances: a failed run, not a green one
        stuck = live.run(DAY)
        assert not stuck.success and "pagination does not advance" in failure(stuck)
        assert live.stored().equals(before)

        fake.clear_faults()
        fake.add_fault(action="empty", times=None)  # an empty answer: green, nothing removed, the shortfall said
        empty = live.run(DAY)
        meta = raw_metadata(empty)
        assert empty.success and live.stored().equals(before)
        assert meta["rows"] == 0 and meta["missing_bars"] == 0
        assert meta["fetch_reports"][f"ETH/USDT {DAY:%Y-%m-%d}"]["missing_bars"] == 24
        assert meta["windows"][f"ETH/USDT {DAY:%Y-%m-%d}"]["stored_after"] == 24

        fake.clear_faults()
        nxt = DAY + timedelta(days=1)
        fake.add_fault(action="gap", gap=(nxt + 18 * H, nxt + 24 * H), times=None)  # a new day missing its end
        short = live.run(nxt)
        assert short.success and raw_metadata(short)["missing_bars"] == 6
        verdict = check(short, "stored_days_complete")
        assert not verdict.passed and verdict.severity == dg.AssetCheckSeverity.WARN
        assert (
            verdict.metadata["missing_bars"].value == 6
            and "| ETH/USDT | 2024-07-02 | 18 | 24 | 6 |" in verdict.metadata["days"].value
        )
        assert live.stored().height == 24 + 18


@pytest.mark.parametrize(
    "where,section,value,message",
    [
        ("markets", "fetch", {"request_deadline_s": 0}, "fetch.request_deadline_s: must be a number > 0, got 0"),
        ("markets", "fetch", {"fetch_deadline_s": "10m"}, "fetch.fetch_deadline_s: expected"),
        ("profile", "uploads", {"max_decompressed_mb": -1}, "uploads.max_decompressed_mb: must be a number > 0"),
        ("profile", "uploads", {"stable_looks": 0}, "uploads.stable_looks: must be a whole number >= 1, got 0"),
    ],
)
def test_reliability_settings_are_validated(tmp_path, where, section, value, message):
    from kronos_assets.configuration.settings import ConfigError

    markets = {**SMALL_MARKETS, section: value} if where == "markets" else None
    cfg = write_configs(tmp_path, markets=markets, profile={section: value} if where == "profile" else None)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings("demo", config_dir=cfg, home=tmp_path / "home", today=date(2026, 11, 21))


def test_reliability_settings_reach_the_readers(tmp_path):
    from kronos_assets.defs.uploads import read_limits
    from kronos_assets.market.files import ReadLimits

    cfg = write_configs(
        tmp_path,
        markets={**SMALL_MARKETS, "fetch": {"request_deadline_s": 7.5}},
        profile={"uploads": {"max_file_mb": 2, "max_decompressed_mb": 3, "stable_looks": 3}},
    )
    settings = load_settings("demo", config_dir=cfg, home=tmp_path / "home", today=date(2026, 11, 21))
    assert (settings.request_deadline_s, settings.fetch_deadline_s) == (7.5, 600.0)
    assert read_limits(settings) == ReadLimits(2 << 20, 3 << 20)
    assert settings.upload_stable_looks == 3
    assert build_resources(settings)["uploads"].get().limits.max_file_bytes == 2 << 20


def test_fresh_check_uses_the_shared_freshness_rule(tmp_path, eth):
    from kronos_assets.market.rules import freshness_windows

    with FakeExchange("binance", {"ETH/USDT": {"1h": eth}}, None) as fake:
        live = Live(tmp_path, fake)
        assert live.run(DAY).success
    newest = live.wh.query("SELECT * FROM clean_candles ORDER BY ts DESC LIMIT 1")
    job = dg.define_asset_job(
        "fresh_only",
        selection=dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(["1h", "clean_candles"]), "fresh")),
    )
    defs = dg.Definitions.merge(live.defs, dg.Definitions(jobs=[job]))
    warn, _ = freshness_windows(H)  # 2 h 15 min after the newest bar closed
    for age, fresh in ((warn - timedelta(minutes=5), True), (warn + timedelta(minutes=5), False)):
        opened = datetime.now(UTC) - age - H
        live.wh.replace(
            "clean_candles",
            newest.with_columns(ts=pl.lit(opened).cast(newest["ts"].dtype)),
            "symbol = ? AND timeframe = ?",
            ["ETH/USDT", "1h"],
        )
        verdict = check(defs.resolve_job_def("fresh_only").execute_in_process(instance=live.instance), "fresh")
        assert verdict.passed is fresh, (age, verdict.metadata)
        assert verdict.metadata["bars_behind"].value["ETH/USDT"] == pytest.approx(age / H, abs=0.05)
