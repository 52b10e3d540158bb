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


# The modules using the session's README run (readme_run): one unit of work under xdist, so it runs once.
README_RUN_MODULES = frozenset(
    {"kronos_assets_tests/foundation/test_readme_main.py", "kronos_assets_tests/publishing/test_dashboard_browser.py"}
)


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: without xdist, never called
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``-n 2 --dist loadfile`` (the README's test command): each module runs whole in one process, so its module
    fixtures (servers, daemons) start once, and the README_RUN_MODULES count as one module; modules are handed
    out in the collection's order, which puts the slow ones first (pytest_collection_modifyitems)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module(nodeid)
            return "readme_run" if module in README_RUN_MODULES else module

    config.option.loadscopereorder = False  # keep the collection's order, not the most tests first
    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: the modules with slow tests (servers, subprocesses, the README run) first, so the
    short ones fill in around them; and README_RUN_MODULES must be the modules that use readme_run."""
    if not hasattr(config, "workerinput"):
        return
    readme = {_module(item.nodeid) for item in items if "readme_run" in getattr(item, "fixturenames", ())}
    if readme - README_RUN_MODULES:
        raise pytest.UsageError(f"add {sorted(readme - README_RUN_MODULES)} to conftest.README_RUN_MODULES")
    slow = readme | {_module(item.nodeid) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: _module(item.nodeid) not in slow)  # stable: the order within a module stays


@pytest.fixture(autouse=True)
def _sigterm_kept():
    """A test that executes a job in this process leaves SIGTERM as it found it (orchestration.runs.sigterm_kept):
    in a pytest started with SIGINT ignored (``pytest &`` from a script) Dagster would leave it ignored, and every
    later child Dagster stops with SIGTERM (the compute logs' ``tail``) would cost 30 s and stay behind."""
    from kronos_assets.orchestration.runs import sigterm_kept

    with sigterm_kept():
        yield


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
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "kronos-assets"), *cmd.split()[1:]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return ReadmeRun(cmd, home, proc)
