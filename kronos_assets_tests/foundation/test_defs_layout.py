"""The code location as ``dg`` sees it: ``dg list defs`` lists every asset the settings build, and a file that
``dg scaffold defs`` drops into the defs folder is loaded with them (in a copy of the project)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kronos_assets.configuration.settings import REPO_ROOT, load_settings
from kronos_assets.defs.factory import build_definitions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
DG = Path(sys.executable).parent / "dg"


def _dg(project: Path, home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRONOS_", "DAGSTER_HOME"))}
    env |= {"PYTHONPATH": str(project), "KRONOS_HOME": str(home)}  # the copy's package, not the installed one
    proc = subprocess.run([str(DG), *args], cwd=project, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    shutil.copy(REPO_ROOT / "pyproject.toml", root)
    for folder in ("kronos_assets", "configs", "dbt_free_sql"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_dg_lists_every_asset_and_loads_a_scaffolded_one(project, tmp_path):
    home = tmp_path / "home"
    expected = {
        k.to_user_string()
        for k in build_definitions(load_settings("demo", home=home)).resolve_asset_graph().get_all_asset_keys()
    }
    families = {
        "1h/raw_candles",
        "1h/clean_candles",
        "1h/forecasts",
        "1h/evaluations",
        "1h/published",
        "1h/track_record",
        "1h/raw_candles_uploads",
        "1h/forecasts_uploads",
        "model_revision_comparison",
        "adhoc_forecast",
    }
    assert families <= expected, expected

    _dg(project, home, "scaffold", "defs", "dagster.asset", "scaffolded_asset.py")
    scaffolded = project / "kronos_assets" / "defs" / "scaffolded_asset.py"
    assert "def scaffolded_asset" in scaffolded.read_text()

    listed = json.loads(_dg(project, home, "list", "defs", "--json"))
    assert {a["asset_key"] for a in listed["assets"]} == expected | {"scaffolded_asset"}
    assert {j["name"] for j in listed["jobs"]} >= {"candles_1h", "forecast_1h", "compare_model_revision"}
