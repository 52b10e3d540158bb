"""Upgrading a home written by an older release: the dbaa304 layout moved into the profile's folder (atomically,
under a lock, refused with the exact command when both layouts hold a file), and the whole path from the homes of
dbaa304 and 58da6cc through `kronos-assets run`: every candle, forecast, evaluation and published file kept, the
dashboard showing the old record."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kronos_assets.configuration import home_layout
from kronos_assets.publishing.manifest import listed_objects
from kronos_assets.publishing.store import LocalStore
from kronos_assets_tests.conftest import REPO
from kronos_assets_tests.warehouse.old_homes import RELEASES, file_hashes, rows_lost, table_digests, unpack


def test_old_layout_moves_into_the_profile_folder_whole(tmp_path: Path):
    home = unpack("dbaa304", tmp_path)
    before = file_hashes(home)
    assert {"warehouse.duckdb", "publish", "dagster"} <= {p.name for p in home_layout.legacy_entries(home)}
    assert "the next run moves them into" in (home_layout.pending_note(home, home / "demo") or "")

    moved = home_layout.adopt(home, home / "demo")

    assert set(moved) >= {"warehouse.duckdb", "publish", "dagster"}
    assert home_layout.legacy_entries(home) == []
    after = file_hashes(home / "demo")
    assert after == {k: v for k, v in before.items()}  # every file, byte for byte, one folder down
    assert home_layout.adopt(home, home / "demo") == []  # done once


def test_a_kill_between_two_moves_is_finished_by_the_next_run(tmp_path: Path, monkeypatch):
    home = unpack("dbaa304", tmp_path)
    before = file_hashes(home)
    real_rename, calls = os.rename, []

    def rename_then_die(src, dst):  # the process dies after its first move (a kill -9 between two renames)
        if calls:
            raise KeyboardInterrupt("killed")
        calls.append(src)
        real_rename(src, dst)

    monkeypatch.setattr(home_layout.os, "rename", rename_then_die)
    with pytest.raises(KeyboardInterrupt):
        home_layout.adopt(home, home / "demo")
    monkeypatch.undo()
    halfway = file_hashes(home)  # nothing lost: each file whole in one place or the other
    assert sorted(v for v in halfway.values()) == sorted(before.values())
    assert home_layout.adopt(home, home / "demo")  # the plain re-run moves the rest
    assert file_hashes(home / "demo") == before


def test_both_layouts_holding_a_file_is_refused_with_the_command(tmp_path: Path):
    home = unpack("dbaa304", tmp_path)
    (home / "demo").mkdir()
    (home / "demo" / "warehouse.duckdb").write_bytes(b"a newer empty record")
    (home / "demo" / "dagster").mkdir()  # an empty folder (a look before any run) is no clash
    before = file_hashes(home)
    with pytest.raises(home_layout.LayoutConflict) as err:
        home_layout.adopt(home, home / "demo")
    message = str(err.value)
    assert message.startswith(
        f"warehouse.duckdb exist both in {home} (the layout before per-profile folders) and in "
        f"{home / 'demo'}; nothing was moved."
    )
    assert file_hashes(home) == before
    command = message.split("run: ", 1)[1]
    subprocess.run(command, shell=True, check=True)  # the exact command works as printed
    assert (home / "old-layout" / "warehouse.duckdb").exists()
    assert home_layout.adopt(home, home / "demo")  # and then the rest moves


def _release_configs(to: Path) -> Path:
    """The repository's configs with the sampling the fixtures were written with (1h horizon 4, 6 paths:
    make_fixture.py), as a user upgrading keeps their own configs."""
    shutil.copytree(REPO / "configs", to)
    markets, models = to / "markets.yaml", to / "models.yaml"
    markets.write_text(re.sub(r"(\n  1h: \{[^}]*horizon: )\d+", r"\g<1>4", markets.read_text()))
    models.write_text(re.sub(r"(\n  n_paths: )\d+", r"\g<1>6", models.read_text()))
    return to


@pytest.mark.slow
@pytest.mark.parametrize("commit", sorted(RELEASES))
def test_run_on_an_old_release_home_keeps_and_shows_the_old_record(commit: str, tmp_path: Path):
    home = unpack(commit, tmp_path)
    old = tmp_path / "old"  # the release's files as they were, to compare with
    old.mkdir()
    old_wh = old / "warehouse.duckdb"
    old_wh.write_bytes((home / RELEASES[commit] / "warehouse.duckdb").read_bytes())
    old_publish = home / RELEASES[commit] / "publish"
    old_files = file_hashes(old_publish)
    old_manifest = json.loads((old_publish / "manifest.json").read_text())
    old_digests = table_digests(old_wh)
    origins = sorted({Path(k).stem for k in old_manifest["objects"] if "/history/" in k})
    assert origins and old_digests["evaluations"][0] > 0

    # Both releases' demo ran the synthetic market: their record becomes the synthetic profile's (the demo now
    # replays real candles, whose price series synthetic candles would break).
    env = {
        **os.environ,
        "KRONOS_HOME": str(home),
        "KRONOS_PROFILE": "synthetic",
        "KRONOS_CONFIG_DIR": str(_release_configs(tmp_path / "configs")),
    }
    env.pop("DAGSTER_HOME", None)
    cmd = [sys.executable, "-m", "kronos_assets.cli.main", "run", "--backfill-bars", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{shlex.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    if commit == "dbaa304":
        assert f"from {home} (the layout before per-profile folders) into {home / 'synthetic'}" in proc.stdout
    else:
        assert f"moved {home / 'demo'} to {home / 'synthetic'}: its candles are the synthetic market's" in proc.stdout
    assert "warehouse schema migrated from version" in proc.stdout
    assert not (home / "demo").exists()

    new_wh = home / "synthetic" / "warehouse.duckdb"
    # every old row as it was; the candles of days the old record held in part, by key (the run fetched them again)
    assert rows_lost(old_wh, new_wh, refreshed_days=True) == {t: 0 for t in old_digests}
    publish = home / "synthetic" / "publish"
    manifest = json.loads((publish / "manifest.json").read_text())
    listed = listed_objects(LocalStore(publish), manifest)  # the head's entries and its index parts'
    now_files = file_hashes(publish)
    immutable = [k for k in old_manifest["objects"] if "/history/" in k or "/paths/" in k]
    for key in immutable:  # the old record's published files: on disk unchanged and listed in the manifest
        assert now_files.get(key) == old_files[key], key
        assert listed[key]["sha256"] == old_files[key], key
    # The dashboard and scoreboard count the old record: the track record starts at its first origin (the run's
    # own forecasts, made at the wall clock, come after it).
    board = json.loads((publish / "scoreboard.json").read_text())
    assert min(r["first_origin"] for r in board["rows"])[:13] == origins[0][:13]  # 2026-11-21T05
    assert origins[0][:10] in (publish / "index.html").read_text()
    assert not [p for p in home_layout.legacy_entries(home)]


@pytest.mark.parametrize("commit", sorted(RELEASES))
def test_an_old_synthetic_demo_record_goes_to_the_synthetic_profile_whichever_profile_runs(commit: str, tmp_path: Path):
    """Releases up to 58da6cc ran the demo on the synthetic market: a demo (replay) or live run moves that record,
    whole, to <home>/synthetic instead of mixing synthetic candles into its own record; health says so first."""
    home = unpack(commit, tmp_path)
    source = home / RELEASES[commit]
    before = file_hashes(source)
    demo_home = home / "demo"
    note = home_layout.pending_note(home, demo_home, "replay", "replay")
    assert note is not None and str(home / "synthetic") in note

    # a demo still configured on the synthetic market keeps its record where it is
    assert home_layout.relocate_synthetic(home, "synthetic") is None
    assert "holds a record of the synthetic market" not in (
        home_layout.pending_note(home, demo_home, "synthetic", "synthetic") or ""
    )
    moved = home_layout.relocate_synthetic(home, "replay")
    target = home_layout.destination(home, demo_home, "replay")
    names = home_layout.adopt(home, target)
    assert target == (home / "synthetic" if commit == "dbaa304" else demo_home)  # where top-level entries would go
    assert (moved == home / "synthetic") == (commit != "dbaa304")  # 58da6cc: <home>/demo moved whole
    assert bool(names) == (commit == "dbaa304")  # dbaa304: the top-level entries moved
    assert file_hashes(home / "synthetic") == before  # every file, byte for byte
    assert not demo_home.exists() and home_layout.pending_note(home, demo_home, "replay", "replay") is None
    assert home_layout.relocate_synthetic(home, "replay") is None  # done once


def test_a_taken_synthetic_folder_is_refused_with_the_command(tmp_path: Path):
    home = unpack("58da6cc", tmp_path)
    (home / "synthetic").mkdir()
    (home / "synthetic" / "warehouse.duckdb").write_bytes(b"x")
    with pytest.raises(home_layout.LayoutConflict) as err:
        home_layout.relocate_synthetic(home, "replay")
    assert f"mv {home / 'demo'} {home / 'demo-synthetic'}" in str(err.value)
    assert (home / "demo" / "warehouse.duckdb").exists()  # nothing moved
