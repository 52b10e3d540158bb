"""A damaged warehouse.duckdb or Dagster runs.db: `kronos-assets run`, `health` and `check` end with one line
naming the file and what to do; `backup` then `restore` from the command line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kronos_assets.cli import main as cli
from kronos_assets.orchestration.local_instance import instance_for
from kronos_assets_tests.helpers import small_settings
from kronos_assets_tests.warehouse.test_backup import write_day

ENV_PREFIXES = ("KRONOS_", "R2_", "DAGSTER_HOME")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A small demo home with warehouse rows and a Dagster instance that has recorded nothing yet."""
    for k in [k for k in os.environ if k.startswith(ENV_PREFIXES)]:
        monkeypatch.delenv(k)
    settings = small_settings(tmp_path)
    monkeypatch.setenv("KRONOS_CONFIG_DIR", str(tmp_path / "configs"))
    monkeypatch.setenv("KRONOS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KRONOS_PROFILE", "demo")
    write_day(settings.open_warehouse(), 0, 1.0)
    instance = instance_for(settings)
    try:
        instance.get_runs_count()
    finally:
        instance.dispose()
    return settings


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def _damaged_warehouse(settings) -> Path:
    path = settings.warehouse_path
    path.write_bytes(b"\0" * 4096 + os.urandom(path.stat().st_size - 4096))
    return path


def _damaged_runs_db(settings) -> Path:
    path = settings.dagster_home / "history" / "runs.db"
    assert path.is_file()
    path.write_bytes(os.urandom(20_000))
    return path


DAMAGED = {
    "warehouse": (_damaged_warehouse, "move it aside and restore the newest `kronos-assets backup`"),
    "runs.db": (_damaged_runs_db, "move it aside (mv runs.db runs.db.damaged)"),
}


@pytest.mark.parametrize("what", list(DAMAGED))
def test_check_health_and_run_end_naming_the_damaged_file(home, capsys, what):
    damage, fix = DAMAGED[what]
    path = damage(home)

    assert cli.main(["check"]) == 1
    err = capsys.readouterr().err
    assert str(path) in _last_line(err) and "is damaged" in _last_line(err) and fix in _last_line(err), err

    assert cli.main(["health"]) == 1
    out = capsys.readouterr().out
    assert str(path) in _last_line(out) and fix in _last_line(out), out
    assert "could not check" not in out

    assert cli.main(["run", "--backfill-bars", "1"]) == 1
    err = capsys.readouterr().err
    assert str(path) in _last_line(err) and fix in _last_line(err), err
    assert _last_line(err).startswith("main job failed: ")


def test_backup_and_restore_from_the_command_line(home, capsys, tmp_path):
    assert cli.main(["backup", "--to", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    (folder,) = (tmp_path / "b").iterdir()
    assert out.startswith(f"backup: {folder}: warehouse rows") and "raw_candles 24" in out, out

    _damaged_warehouse(home)
    assert cli.main(["health"]) == 1
    capsys.readouterr()
    assert cli.main(["restore", str(folder)]) == 0
    assert f"restored {home.warehouse_path} from {folder}" in capsys.readouterr().out
    assert home.open_warehouse().query("SELECT count(*) AS n FROM raw_candles")["n"][0] == 24
    assert cli.main(["check"]) == 0
    report = capsys.readouterr().out
    assert "timeframes OK" in report

    # A backup of a damaged file fails in one line naming it; no folder is left behind.
    _damaged_warehouse(home)
    assert cli.main(["backup", "--to", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert _last_line(err).startswith("backup failed: warehouse file") and str(home.warehouse_path) in err
    assert [p.name for p in (tmp_path / "b").iterdir()] == [folder.name]
