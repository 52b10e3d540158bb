"""The README's main command, run as a user runs it, in a temporary home."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from kronos_assets.settings import REPO_ROOT


def _readme_main_command() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    lines = [ln for ln in re.findall(r"```bash\n(.*?)\n```", text, re.S) if "kronos-assets" in ln and " run" in ln]
    assert lines, "README has no main command"
    # The command's last step runs the job; the steps before it install (done once for the whole suite).
    return lines[0].split("&&")[-1].strip()


def test_readme_main_command_publishes_a_dashboard(tmp_path):
    cmd = _readme_main_command()
    assert cmd.startswith(".venv/bin/kronos-assets") and "--profile demo" in cmd
    exe = Path(sys.executable).parent / "kronos-assets"
    env = os.environ | {"KRONOS_HOME": str(tmp_path / "home")}
    env.pop("KRONOS_PROFILE", None)
    env.pop("DAGSTER_HOME", None)
    proc = subprocess.run([str(exe), *cmd.split()[1:]], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("dashboard: ")
    index = Path(last.removeprefix("dashboard: "))
    assert index == tmp_path / "home" / "demo" / "publish" / "index.html" and index.is_file()
    manifest = json.loads((index.parent / "manifest.json").read_text())
    assert manifest["profile"] == "demo" and manifest["synthetic"] is True
    board = json.loads((index.parent / "scoreboard.json").read_text())["rows"]
    assert {r["symbol"] for r in board} == {"BTC/USDT", "ETH/USDT"}
    assert all(r["n_forecasts"] > 0 for r in board)
    assert (tmp_path / "home" / "demo" / "dagster").is_dir()  # runs recorded for the UI
    # A short progress view, not Dagster's event log: that goes to a file the output names.
    log = tmp_path / "home" / "demo" / "logs" / "dagster.log"
    assert f"full Dagster log: {log}" in proc.stdout and "STEP_SUCCESS" in log.read_text()
    assert len(proc.stdout.splitlines()) < 30 and proc.stderr.strip() == "", proc.stderr[-3000:]
    assert " WARNING " not in log.read_text()  # nothing a user would have to act on
