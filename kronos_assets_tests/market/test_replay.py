"""The replay market: real candles from the shipped files behind a replay clock. It serves exactly the files'
rows, never a bar that closes after ``now``; bad files are refused as uploads are, naming file and row, and leave
the warehouse as it was; ``--now`` bounds what every source stores and is refused in one line outside the
partitions."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from kronos_assets.market.files import CandleFileError
from kronos_assets.market.replay import ReplayFile, ReplayMarket
from kronos_assets.market.replay_data import DATA_DIR
from kronos_assets.market.store import ingest_window
from kronos_assets.warehouse import Warehouse

UTC = timezone.utc
H = timedelta(hours=1)
BTC = DATA_DIR / "binance_BTCUSDT_1h_20240101_20260620.csv.gz"
ETH = DATA_DIR / "binance_ETHUSDT_1h_20240101_20260331.csv.gz"
ETH_END = datetime(2026, 4, 1, tzinfo=UTC)  # close of ETH's last bar, 2026-03-31 23:00
BTC_END = datetime(2026, 6, 20, 10, tzinfo=UTC)


def _shipped(**kw) -> ReplayMarket:
    return ReplayMarket([ReplayFile("BTC/USDT", "1h", BTC), ReplayFile("ETH/USDT", "1h", ETH)], **kw)


def _file_rows(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, try_parse_dates=True).rename({"timestamp": "ts"})


def _write(path: Path, lines: list[str]) -> Path:
    path.write_bytes(gzip.compress(("timestamp,open,high,low,close,volume\n" + "\n".join(lines) + "\n").encode()))
    return path


def _row(t: datetime, close: float = 100.5) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%SZ},100.0,101.0,99.0,{close},5.0"


T0 = datetime(2025, 3, 1, tzinfo=UTC)


# -- the source ---------------------------------------------------------------------------------------------------
def test_the_shipped_files_are_real_binance_spot_and_end_where_the_sources_do():
    market = _shipped()
    btc = market.candles("BTC/USDT", "1h")
    assert btc["ts"][0] == datetime(2024, 1, 1, tzinfo=UTC) and market.series_end("BTC/USDT", "1h") == BTC_END
    assert set(btc["exchange"]) == {"binance"}
    # SOURCES.md's sanity figure: BTC's mean close over March-April 2024 is 66,746
    spring = btc.filter(
        (pl.col("ts") >= datetime(2024, 3, 1, tzinfo=UTC)) & (pl.col("ts") < datetime(2024, 5, 1, tzinfo=UTC))
    )
    assert round(spring["close"].mean()) == 66746
    # now defaults to the newest close common to both series: ETH ends first
    assert market.data_end() == ETH_END
    assert BTC.stat().st_size + ETH.stat().st_size < 3_000_000


def test_fetch_serves_the_files_rows_and_nothing_that_closes_after_now():
    market = _shipped()
    now = datetime(2025, 6, 3, 10, 30, tzinfo=UTC)
    got = market.fetch("ETH/USDT", "1h", datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 4, tzinfo=UTC), now)
    assert got["ts"][-1] + H <= now and got["ts"][-1] == datetime(2025, 6, 3, 9, tzinfo=UTC)
    want = _file_rows(ETH).filter((pl.col("ts") >= datetime(2025, 6, 1, tzinfo=UTC)) & (pl.col("ts") + H <= now))
    assert got.select("ts", "open", "high", "low", "close", "volume").equals(want)


def test_the_shipped_data_rebuilds_byte_for_byte(tmp_path):
    from kronos_assets.market.replay_data.build import FILES, build
    from kronos_assets_tests.conftest import SHARED_CANDLES

    for name in FILES:
        if not (SHARED_CANDLES / name).is_file():
            pytest.skip(f"real candles {SHARED_CANDLES / name} are absent (set KRONOS_SHARED_DIR to the shared folder)")
    rows = build(SHARED_CANDLES, tmp_path)
    for r in rows:
        assert (tmp_path / str(r["file"])).read_bytes() == (DATA_DIR / str(r["file"])).read_bytes()
        assert r["sha256"] in (DATA_DIR / "SOURCES.md").read_text()
        assert r["source_sha256"] in (DATA_DIR / "SOURCES.md").read_text()
    assert {r["source"] for r in rows} == set(FILES)


@pytest.mark.parametrize(
    "lines, problem, row",
    [
        ([_row(T0), _row(T0 + H), _row(T0 + H), _row(T0 + 2 * H)], "duplicate_timestamp", 3),
        ([_row(T0), _row(T0 + 2 * H), _row(T0 + H)], "unsorted", 3),
        ([_row(T0 + i * 4 * H) for i in range(5)], "timeframe_mismatch", None),
        ([_row(T0), _row(T0 + H), _row(datetime(2099, 1, 1, tzinfo=UTC))], "bar_after_now", 3),
    ],
)
def test_bad_replay_files_are_refused_naming_file_and_row(tmp_path, lines, problem, row):
    path = _write(tmp_path / "BTCUSDT_1h.csv.gz", lines)
    market = ReplayMarket([ReplayFile("BTC/USDT", "1h", path)])
    with pytest.raises(CandleFileError) as err:
        market.fetch("BTC/USDT", "1h", T0, T0 + 24 * H, T0 + 24 * H)
    assert err.value.problem == problem and "BTCUSDT_1h.csv.gz" in str(err.value)
    if row is not None:
        assert f"row {row}" in str(err.value)
    assert "\n" not in str(err.value)


def test_gaps_stay_gaps(tmp_path):
    path = _write(tmp_path / "g.csv.gz", [_row(T0 + i * H) for i in (0, 1, 2, 5, 6)])
    got = ReplayMarket([ReplayFile("BTC/USDT", "1h", path)]).fetch("BTC/USDT", "1h", T0, T0 + 7 * H, T0 + 7 * H)
    assert got["ts"].to_list() == [T0 + i * H for i in (0, 1, 2, 5, 6)]


def test_a_refused_replay_file_leaves_the_warehouse_unchanged(tmp_path):
    path = _write(tmp_path / "m.csv.gz", [_row(T0 + i * H, 100.0 + i / 100) for i in range(48)])
    market = ReplayMarket([ReplayFile("BTC/USDT", "1h", path)])
    wh = Warehouse(tmp_path / "wh.duckdb")
    ingest_window(market, wh, "BTC/USDT", "1h", T0, T0 + 48 * H, T0 + 48 * H)
    before = wh.query("SELECT * FROM raw_candles ORDER BY ts")
    assert before.height == 48
    # the same file, now with a repeated row and different prices: refused before anything is merged
    _write(path, [_row(T0 + i * H, 100.7) for i in range(30)] + [_row(T0 + 29 * H, 100.7)])
    with pytest.raises(CandleFileError, match="row 31"):
        ingest_window(market, wh, "BTC/USDT", "1h", T0, T0 + 48 * H, T0 + 48 * H)
    assert wh.query("SELECT * FROM raw_candles ORDER BY ts").equals(before)


# -- the clock ----------------------------------------------------------------------------------------------------
def test_the_clock_walks_the_last_days_at_the_wall_clocks_pace_and_stops_at_the_end(tmp_path):
    clock = tmp_path / "replay_clock.json"
    market = _shipped(clock_file=clock, lead=timedelta(days=2))
    wall = datetime(2026, 12, 1, 9, 5, tzinfo=UTC)
    assert market.clock_now(wall, start_clock=False) == ETH_END and not clock.exists()  # a look starts nothing
    assert market.clock_now(wall) == ETH_END - timedelta(days=2)  # first look anchors the clock
    assert market.clock_now(wall + 5 * H) == ETH_END - timedelta(days=2) + 5 * H
    assert market.clock_now(wall + timedelta(days=30)) == ETH_END  # never past the data
    # a second process finds the same anchor (first writer wins), read-only looks read it too
    again = _shipped(clock_file=clock, lead=timedelta(days=9))
    assert again.clock_now(wall + H) == ETH_END - timedelta(days=2) + H
    assert again.clock_now(wall + H, start_clock=False) == ETH_END - timedelta(days=2) + H
    assert json.loads(clock.read_text())["wall_anchor"].startswith("2026-12-01T09:05")
    clock.write_text("{not json")
    with pytest.raises(ValueError, match="replay_clock.json.*delete it"):
        again.clock_now(wall)


def test_a_replay_schedule_tick_works_at_the_replay_clock(tmp_path):
    import dagster as dg

    from kronos_assets.defs.automation import BAR_TAG
    from kronos_assets.defs.clock import NOW_TAG
    from kronos_assets.defs.factory import build_definitions
    from kronos_assets.defs.resources import build_resources

    settings = _replay_settings(tmp_path)
    defs = build_definitions(settings, build_resources(settings))
    schedule = defs.resolve_schedule_def("candles_1h_schedule")
    wall = datetime(2026, 12, 1, 9, 5, tzinfo=UTC)
    with dg.build_schedule_context(
        scheduled_execution_time=wall,
        repository_def=defs.get_repository_def(),
        resources={"market": build_resources(settings)["market"]},
    ) as ctx:
        reqs = list(schedule.evaluate_tick(ctx).run_requests or [])
    start = ETH_END - timedelta(days=7)  # the profile's lead_days
    assert {r.tags[NOW_TAG] for r in reqs} == {start.isoformat(timespec="seconds")}
    assert {r.tags[BAR_TAG] for r in reqs} == {(start - H).strftime("%Y-%m-%d-%H:%M")}
    assert settings.replay_clock_file.exists()


# -- the graph ----------------------------------------------------------------------------------------------------
def _replay_settings(root: Path, **profile):
    from kronos_assets_tests.helpers import small_settings

    return small_settings(
        root, market="replay", replay={"files": {"BTC/USDT": {"1h": str(BTC)}, "ETH/USDT": {"1h": str(ETH)}}}, **profile
    )


class _Spy:
    """The replay market, recording what each fetch was asked and returned."""

    def __init__(self, market: ReplayMarket):
        self.market, self.name, self.calls = market, market.name, []

    def fetch(self, symbol, timeframe, start, end, now):
        got = self.market.fetch(symbol, timeframe, start, end, now)
        self.calls.append((now, got["ts"].max()))
        return got

    def __getattr__(self, name):
        return getattr(self.market, name)


def test_a_replay_run_stores_the_files_rows_and_no_step_sees_a_bar_after_now(tmp_path):
    from kronos_assets.cli.main_job import run_main_job
    from kronos_assets.defs.resources import build_resources

    settings = _replay_settings(tmp_path, symbols=["ETH/USDT"])
    now = datetime(2026, 3, 20, 12, 40, tzinfo=UTC)
    spy = _Spy(settings.replay_market())
    run_main_job(
        settings, backfill_bars=8, now=now, resources={**build_resources(settings), "market": spy}, log=lambda _m: None
    )
    wh = Warehouse(settings.warehouse_path)
    stored = wh.query("SELECT ts, open, high, low, close, volume FROM raw_candles ORDER BY ts")
    # replay equals a backfill over the same data: the stored candles are the file's rows of the window
    first = datetime(2026, 3, 20, 11, tzinfo=UTC) - 7 * H - 64 * H  # history 64, 8 bars up to 11:00
    window = _file_rows(ETH).filter((pl.col("ts") >= first.replace(hour=0)) & (pl.col("ts") + H <= now))
    assert stored.equals(window) and stored["ts"][-1] == datetime(2026, 3, 20, 11, tzinfo=UTC)
    # the clock never leaks: every fetch worked at now and returned nothing that closes later
    assert spy.calls and all(n == now and (last is None or last + H <= now) for n, last in spy.calls)
    clean_last = wh.query("SELECT max(ts) AS t FROM clean_candles")["t"][0]
    origins = wh.query("SELECT max(origin) AS o FROM forecasts")["o"][0]
    scored = wh.query("SELECT max(ts) AS t, count(*) AS n FROM evaluations")
    assert clean_last + H <= now and origins <= now
    assert scored["n"][0] > 0 and scored["t"][0] + H <= now  # scores use only bars closed by now


def test_now_bounds_what_a_synthetic_run_stores_and_the_same_command_stores_the_same(tmp_path):
    from kronos_assets.cli.main_job import run_main_job
    from kronos_assets_tests.helpers import small_settings

    now = datetime(2025, 5, 6, 7, 30, tzinfo=UTC)  # mid-day: the day partition holds bars after now
    tables = []
    for root in (tmp_path / "a", tmp_path / "b"):
        settings = small_settings(root, symbols=["BTC/USDT"])
        run_main_job(settings, backfill_bars=2, now=now, log=lambda _m: None)
        tables.append(Warehouse(settings.warehouse_path).query("SELECT * FROM raw_candles ORDER BY ts"))
    assert tables[0]["ts"].max() == datetime(2025, 5, 6, 6, tzinfo=UTC)
    assert tables[0].equals(tables[1])


def test_now_outside_the_partitions_is_one_line_and_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    from kronos_assets.cli import main as cli
    from kronos_assets.cli.main_job import NowOutOfRange, run_main_job
    from kronos_assets_tests.helpers import small_settings

    settings = small_settings(tmp_path)  # 1h partitions from 2024-01-01
    with pytest.raises(NowOutOfRange, match="before the first 1h bar closes .*2024-01-01"):
        run_main_job(settings, now=datetime(2023, 6, 1, tzinfo=UTC), log=lambda _m: None)
    with pytest.raises(NowOutOfRange, match="in the future"):
        run_main_job(settings, now=datetime.now(UTC) + timedelta(days=2), log=lambda _m: None)
    replay = _replay_settings(tmp_path / "r")
    with pytest.raises(NowOutOfRange, match="after the replay data's end 2026-04-01 00:00 UTC"):
        run_main_job(replay, now=datetime(2026, 5, 1, tzinfo=UTC), log=lambda _m: None)
    for s in (settings, replay):
        assert not s.dagster_home.exists() and not s.warehouse_path.exists()  # no instance, no run, no table
    monkeypatch.setenv("KRONOS_CONFIG_DIR", str(settings.config_dir))
    code = cli.main(["--profile", "demo", "--home", str(tmp_path / "cli"), "run", "--now", "2023-06-01T00:00"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("main job refused: --now 2023-06-01 00:00 UTC")
    assert not (tmp_path / "cli" / "demo" / "dagster").exists()
