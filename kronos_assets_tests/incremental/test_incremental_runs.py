"""Incremental ticks: `run` computes only what is missing or stale, and a tick with nothing new changes no byte.

On the synthetic market with three cheap forecasters (the two random walks and a random walk with volatility
under its own name and window, standing in for any configured model), horizon 6, a window of 8 bars.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from kronos_assets.cli.main_job import MainJobResult, run_main_job
from kronos_assets.configuration.settings import REPO_ROOT, Settings, load_settings
from kronos_assets.forecasting import versions
from kronos_assets.forecasting.interface import Sampling
from kronos_assets.forecasting.kinds import ModelSpec
from kronos_assets.orchestration.local_instance import instance_for
from kronos_assets.publishing.keys import MANIFEST_KEY
from kronos_assets.publishing.manifest import listed_objects
from kronos_assets.publishing.store import LocalStore
from kronos_assets_tests.helpers import write_configs

# Main-job runs in subprocesses or Dagster instances: handed out first (conftest), so the suite's tail is short.
pytestmark = pytest.mark.slow

NOW = datetime(2026, 11, 20, 10, 5, tzinfo=timezone.utc)
BARS = 8  # --backfill-bars
MODELS = ["random_walk", "random_walk_vol", "rw_vol_wide"]
SYMBOLS = ["BTC/USDT", "ETH/USDT"]


def _settings(root: Path, wide_window: int = 48, n_paths: int = 30) -> Settings:
    cfg = write_configs(root, profile={"forecasters": MODELS})
    models = yaml.safe_load((cfg / "models.yaml").read_text())
    models["models"]["rw_vol_wide"] = {"kind": "random_walk_vol", "vol_window": wide_window}
    models["sampling"]["n_paths"] = n_paths
    (cfg / "models.yaml").write_text(yaml.safe_dump(models))
    return load_settings("demo", config_dir=cfg, home=root / "home")


def _run(settings: Settings, now: datetime = NOW) -> MainJobResult:
    instance = instance_for(settings)
    try:
        return run_main_job(settings, backfill_bars=BARS, now=now, instance=instance, log=lambda _m: None)
    finally:
        instance.dispose()


def _bytes(settings: Settings) -> dict[str, str]:
    """sha256 of the warehouse file and of every published file."""
    files = [settings.warehouse_path, *(p for p in settings.publish_dir.rglob("*") if p.is_file())]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _forecasts(settings: Settings) -> dict[tuple, tuple]:
    """(symbol, origin, model) -> (version key, p_up) of every stored forecast."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        rows = con.execute("SELECT symbol, origin, model, provenance, p_up FROM forecasts").fetchall()
    finally:
        con.close()
    return {(s, o, m): (json.loads(p)[versions.VERSION_FIELD], up) for s, o, m, p, up in rows}


def _scored(settings: Settings) -> set[tuple]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return set(con.execute("SELECT DISTINCT symbol, origin, model, scored_bar FROM evaluations").fetchall())
    finally:
        con.close()


def _run_count(settings: Settings) -> int:
    instance = instance_for(settings)
    try:
        return len(instance.get_runs())
    finally:
        instance.dispose()


@dataclass(frozen=True)
class FirstRun:
    root: Path  # where it ran (test_a_second_run runs again there)
    result: MainJobResult
    home_copy: Path  # its home as the run left it, copied before any test touched it
    track_record_calls: int  # how often the run computed the track record


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """The main job run once for the module: the tests that start from a first run start from a copy of it."""
    from kronos_assets.defs import evaluate

    root = tmp_path_factory.mktemp("incremental")
    calls = []
    real = evaluate.track_record
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluate, "track_record", lambda *a, **k: calls.append(a) or real(*a, **k))
        result = _run(_settings(root))
    copy = tmp_path_factory.mktemp("incremental-first-home") / "home"
    shutil.copytree(root / "home", copy)
    return FirstRun(root, result, copy, len(calls))


@pytest.fixture
def ran(first: FirstRun, tmp_path: Path) -> Settings:
    """Settings on a fresh copy of the first run's home: what ``_run(_settings(tmp_path))`` leaves, without
    running the main job again in every test that starts from it."""
    shutil.copytree(first.home_copy, tmp_path / "home")
    return _settings(tmp_path)


def test_the_first_run_computes_the_window(first):
    result = first.result
    assert result.forecasts_computed == BARS * len(SYMBOLS) * len(MODELS)
    assert result.forecasts_scored == (BARS - 6) * len(SYMBOLS) * len(MODELS)  # origins in the window, closed
    assert result.published and result.track_records == 1


def test_a_second_run_with_the_same_now_computes_nothing_and_changes_no_byte(first, tmp_path):
    settings = _settings(first.root)
    before, runs = _bytes(settings), _run_count(settings)
    again = _run(settings)
    assert (again.runs, again.forecasts_computed, again.forecasts_scored) == (0, 0, 0)
    assert not again.published and again.track_records == 0
    assert _run_count(settings) == runs  # no Dagster run at all
    assert _bytes(settings) == before


def test_one_more_bar_computes_exactly_its_origin_per_model_and_series_and_the_newly_closed_scores(ran):
    settings = ran
    stored, scored = _forecasts(settings), _scored(settings)
    later = _run(settings, NOW + timedelta(hours=1))
    new_origin = datetime(2026, 11, 20, 11, tzinfo=timezone.utc)  # the bar 10:00 closed at 11:00
    added = set(_forecasts(settings)) - set(stored)
    assert added == {(s, new_origin, m) for s in SYMBOLS for m in MODELS}
    assert later.forecasts_computed == len(added)
    assert {k: v for k, v in _forecasts(settings).items() if k in stored} == stored  # the others untouched
    newly_scored = _scored(settings) - scored
    # the bar 10:00 closes the 6-bar horizon of the forecasts made at 05:00
    assert newly_scored == {
        (s, new_origin - timedelta(hours=6), m, new_origin - timedelta(hours=1)) for s in SYMBOLS for m in MODELS
    }
    assert later.forecasts_scored == len(newly_scored)
    assert later.published and later.track_records == 1 and later.runs == 3


def _recomputed(before: dict, after: dict) -> set[str]:
    assert set(before) == set(after)
    changed = {k for k in before if before[k][0] != after[k][0]}
    return {m for _s, _o, m in changed} if changed else set()


@pytest.mark.parametrize(
    "cause, expected",
    [
        ("model option", {"rw_vol_wide"}),
        ("sampling", set(MODELS)),
        ("code version of one kind", {"random_walk"}),
        ("code version of the forecasting code", set(MODELS)),
        ("nothing", set()),
    ],
)
def test_a_stale_forecast_is_recomputed_for_exactly_the_cause(ran, tmp_path, monkeypatch, cause, expected):
    settings = ran
    before, scored = _forecasts(settings), _scored(settings)
    if cause == "model option":
        settings = _settings(tmp_path, wide_window=96)
    elif cause == "sampling":
        settings = _settings(tmp_path, n_paths=20)
    elif cause == "code version of one kind":
        monkeypatch.setitem(versions.KIND_CODE_VERSIONS, "random_walk", "2")
    elif cause == "code version of the forecasting code":
        monkeypatch.setattr(versions, "CODE_VERSION", "2")
    again = _run(settings)
    after = _forecasts(settings)
    assert _recomputed(before, after) == expected
    per_model = BARS * len(SYMBOLS)
    assert again.forecasts_computed == per_model * len(expected)
    # their scores were made again from the new forecasts; the others' were left alone
    assert again.forecasts_scored == (BARS - 6) * len(SYMBOLS) * len(expected)  # exactly theirs
    assert _scored(settings) == scored
    assert again.published == bool(expected)
    # the track record again only where scores changed (a new code version alone gives the same numbers)
    assert again.track_records == (1 if cause in ("model option", "sampling") else 0)
    third = _run(settings)  # and once current, nothing more
    assert (third.runs, third.forecasts_computed) == (0, 0)


def test_a_new_checkpoint_sha256_is_a_new_version_key(tmp_path):
    """A local checkpoint folder retrained in place: same path and options, new file content, new key; its
    hub pinning (revision) is part of the key for hub checkpoints."""
    from kronos_assets.forecasting.kinds.kronos import KronosSettings

    folder = tmp_path / "ckpt"
    shutil.copytree(REPO_ROOT / "kronos_assets" / "checkpoints" / "demo", folder)
    spec = ModelSpec(
        "kronos-demo", "kronos", KronosSettings("kronos-demo", None, None, None, None, 504, local_dir=folder)
    )
    sampling = Sampling(horizon=24)
    key = versions.forecast_version(spec, sampling, 480)
    moved = tmp_path / "elsewhere"
    shutil.copytree(folder, moved)
    spec_moved = ModelSpec(
        "kronos-demo",
        "kronos",
        KronosSettings("kronos-demo", None, None, None, None, 504, local_dir=moved, device="cpu"),
    )
    assert versions.forecast_version(spec_moved, sampling, 480) == key  # where it lives and the device: no change
    weights = folder / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert versions.forecast_version(spec, sampling, 480) != key
    hub = KronosSettings("k", "NeoQuasar/Kronos-mini", "a" * 40, "NeoQuasar/Kronos-Tokenizer-2k", "b" * 40, 512)
    hub_key = versions.forecast_version(ModelSpec("k", "kronos", hub), sampling, 480)
    repinned = KronosSettings("k", "NeoQuasar/Kronos-mini", "c" * 40, "NeoQuasar/Kronos-Tokenizer-2k", "b" * 40, 512)
    assert versions.forecast_version(ModelSpec("k", "kronos", repinned), sampling, 480) != hub_key
    assert versions.forecast_version(ModelSpec("k", "kronos", hub), sampling, 240) != hub_key  # history seen


def test_a_publish_cut_short_is_redone_with_nothing_recomputed(ran):
    settings = ran
    published = _bytes(settings)
    manifest = settings.publish_dir / MANIFEST_KEY
    doc = json.loads(manifest.read_text())
    assert set(doc["inputs"]) == {"1h"}
    doc["inputs"] = {}  # the manifest of a publish before the last one finished
    manifest.write_text(json.dumps(doc))
    again = _run(settings)
    assert again.published and again.forecasts_computed == 0 and again.forecasts_scored == 0
    assert json.loads(manifest.read_text())["inputs"].keys() == {"1h"}
    # every published object as before; only the manifest (and any record of the publish) is written anew
    kept = {p: h for p, h in _bytes(settings).items() if not p.endswith(MANIFEST_KEY) and "/chain/" not in p}
    assert kept == {p: h for p, h in published.items() if not p.endswith(MANIFEST_KEY) and "/chain/" not in p}
    assert (_run(settings).runs, _run(settings).published) == (0, False)


def test_the_track_record_check_reads_the_record_its_asset_computed(first, ran):
    assert first.track_record_calls == 1  # one tick, one track record, its check included
    instance = instance_for(ran)
    try:
        key = dg.AssetCheckKey(dg.AssetKey(["1h", "track_record"]), "primary_model_not_worse_than_baseline_30d")
        record = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
        assert record and record[0].status.value == "SUCCEEDED"
    finally:
        instance.dispose()


def test_a_failed_publish_is_made_up_by_the_next_tick(ran, monkeypatch):
    """A tick whose publish failed (or was killed) leaves its bar stored but not published; the next tick, one bar
    later, publishes both bars, not only its own."""
    from kronos_assets.cli.main_job import MainJobFailed
    from kronos_assets.defs import publish as publish_defs
    from kronos_assets.publishing.keys import history_key

    settings = ran

    def broken(*_args, **_kwargs):
        raise OSError("the publish folder's disk went away")

    monkeypatch.setattr(publish_defs, "publish_bars", broken)
    with pytest.raises(MainJobFailed, match="disk went away"):
        _run(settings, NOW + timedelta(hours=1))
    monkeypatch.undo()
    later = _run(settings, NOW + timedelta(hours=2))
    assert later.forecasts_computed == len(SYMBOLS) * len(MODELS)  # only the newest bar's
    manifest = json.loads((settings.publish_dir / MANIFEST_KEY).read_text())
    objects = listed_objects(LocalStore(settings.publish_dir), manifest)  # the head's and its index parts
    for hour in (11, 12):  # the failed tick's origin and the new one
        origin = datetime(2026, 11, 20, hour, tzinfo=timezone.utc).isoformat()
        assert all(history_key(s, "1h", origin) in objects for s in SYMBOLS), origin


def test_a_day_stored_whole_between_two_days_to_fetch_is_not_fetched_again(ran):
    """Candle days to fetch go in one run per block of consecutive days: a day stored whole between two blocks keeps
    its bars, even where the source would now answer otherwise (a correction, another exchange, another generator)."""
    one = timedelta(days=1)
    day = datetime(NOW.year, NOW.month, NOW.day, tzinfo=timezone.utc) - one  # the day before NOW's
    in_day = "date_trunc('day', ts) = ?"
    con = duckdb.connect(str(ran.warehouse_path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        for table in ("raw_candles", "clean_candles"):
            con.execute(f"DELETE FROM {table} WHERE {in_day} OR {in_day}", [day - one, day + one])
        con.execute(f"UPDATE raw_candles SET volume = volume + 1 WHERE {in_day}", [day])  # what no source says
        marked = con.execute(
            f"SELECT symbol, ts, volume FROM raw_candles WHERE {in_day} ORDER BY ALL", [day]
        ).fetchall()
    finally:
        con.close()
    lines: list[str] = []
    instance = instance_for(ran)
    try:
        run_main_job(ran, backfill_bars=BARS, now=NOW, instance=instance, log=lines.append)
    finally:
        instance.dispose()
    assert [line.split(": ", 1)[1] for line in lines if " candles " in line] == [
        f"candles {day - one:%Y-%m-%d}..{day - one:%Y-%m-%d} (2 symbol-days not stored whole)",
        f"candles {day + one:%Y-%m-%d}..{day + one:%Y-%m-%d} (2 symbol-days not stored whole)",
    ]
    con = duckdb.connect(str(ran.warehouse_path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        kept = con.execute(f"SELECT symbol, ts, volume FROM raw_candles WHERE {in_day} ORDER BY ALL", [day]).fetchall()
        refetched = con.execute(
            f"SELECT count(*) FROM clean_candles WHERE {in_day} OR {in_day}", [day - one, day + one]
        ).fetchone()[0]
    finally:
        con.close()
    assert len(marked) == 2 * 24 and kept == marked
    assert refetched == 2 * (24 + NOW.hour)  # the day before, whole, and NOW's day up to its last closed bar
