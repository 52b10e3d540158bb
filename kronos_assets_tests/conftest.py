"""Shared fixtures: the real candles in ../shared/data/candles, a temporary project home per test, and the
README's main command run once for the session."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_CANDLES = Path(os.environ.get("KRONOS_SHARED_DIR", REPO.parent / "shared")) / "data" / "candles"


def real_candles(name: str) -> pl.DataFrame:
    """Load one file of ../shared/data/candles as a candle frame, or skip the test saying why."""
    path = SHARED_CANDLES / name
    if not path.is_file():
        pytest.skip(f"real candles {path} are absent (set KRONOS_SHARED_DIR to the shared folder)")
    df = pl.read_csv(path)
    return df.with_columns(
        pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").dt.cast_time_unit("us").alias("ts")
    ).drop("timestamp")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist's ``--dist loadgroup`` (the README's test command) every module is one group, so its
    module fixtures (servers, daemons) start once; the modules using the session's README run are one group, so
    the command runs once; and the groups with slow tests go first, the short ones filling in around them."""
    if not getattr(config.option, "loadgroup", False):  # set in xdist's workers only
        return
    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    readme = {module(item) for item in items if "readme_run" in getattr(item, "fixturenames", ())}
    slow = readme | {module(item) for item in items if item.get_closest_marker("slow")}
    for item in items:
        item.add_marker(pytest.mark.xdist_group("readme_run" if module(item) in readme else module(item)))
    items.sort(key=lambda item: module(item) not in slow)  # stable: the order within a module stays


@pytest.fixture
def kronos_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("KRONOS_HOME", str(home))
    return home


def readme_main_command() -> str:
    """The last step of the README's first bash block that runs ``kronos-assets ... run``."""
    text = (REPO / "README.md").read_text()
    lines = [ln for ln in re.findall(r"```bash\n(.*?)\n```", text, re.S) if "kronos-assets" in ln and " run" in ln]
    assert lines, "README has no main command"
    # The command's last step runs the job; the steps before it install (done once for the whole suite).
    return lines[0].split("&&")[-1].strip()


@dataclass(frozen=True)
class ReadmeRun:
    command: str
    home: Path  # the fresh KRONOS_HOME it ran in
    proc: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def readme_run(tmp_path_factory: pytest.TempPathFactory) -> ReadmeRun:
    """The README's main command run once, as a user runs it, in a fresh home: its output is checked by
    foundation/test_readme_main.py and what it published by the dashboard browser tests (one run, not two)."""
    home = tmp_path_factory.mktemp("readme") / "home"
    cmd = readme_main_command()
    env = os.environ | {"KRONOS_HOME": str(home)}
    for var in ("KRONOS_PROFILE", "DAGSTER_HOME"):
        env.pop(var, None)
    proc = subprocess.run([str(Path(sys.executable).parent / "kronos-assets"), *cmd.split()[1:]], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    return ReadmeRun(cmd, home, proc)
