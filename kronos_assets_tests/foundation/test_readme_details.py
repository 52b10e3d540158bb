"""What the README shows a newcomer is what the commands do: the UI command, the config-typo message, the home's
layout and variables, and an offline example that leaves nothing in the clone."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_every_dagster_home_in_the_readme_is_absolute():
    """Dagster refuses a relative DAGSTER_HOME: `DAGSTER_HOME=.kronos_home/demo/dagster dg dev` died at once."""
    values = re.findall(r"DAGSTER_HOME=(\S+)", README)
    assert values, "the README shows no DAGSTER_HOME= command"
    for value in values:
        value = value.strip("`\"'")
        assert value.startswith(("/", "$PWD/", '"$PWD/')), value
    assert "kronos-assets ui" in README


def test_the_config_typo_message_is_what_the_command_prints(tmp_path):
    shown = re.search(
        r"`(configuration error: /path/to/configs/profiles/demo\.yaml: primary_modle:[^`]*)`", README, re.S
    )
    assert shown, "the README shows no config-typo message"
    cfg = tmp_path / "configs"
    shutil.copytree(REPO / "configs", cfg)
    profile = cfg / "profiles" / "demo.yaml"
    profile.write_text(profile.read_text().replace("primary_model:", "primary_modle:", 1))
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "kronos-assets"), "--profile", "demo", "check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KRONOS_CONFIG_DIR": str(cfg), "KRONOS_HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 2, proc.stderr
    printed = proc.stderr.strip().replace(str(tmp_path), "/path/to")
    assert printed == _flat(shown.group(1)), (printed, shown.group(1))


def test_home_layout_and_variables_are_documented():
    row = next(line for line in README.splitlines() if line.startswith("| where data goes |"))
    for part in (
        "`warehouse.duckdb`",
        "`publish/`",
        "`dagster/`",
        "`logs/dagster.log`",
        "`adhoc/",
        "`uploads/`",
        "`alerts.jsonl`",
    ):
        assert part in row, part
    assert "KRONOS_CONFIG_DIR" in README and "chromium" in README.lower()


def test_the_offline_forecast_example_leaves_nothing_in_the_clone():
    block = re.search(r"```bash\n(HF_HUB_OFFLINE=1 \.venv/bin/kronos-forecast [^\n]*)\n```", README)
    assert block, "the README's offline kronos-forecast example is missing"
    forecast = block.group(1)
    assert "kronos_assets/market/replay_data/" in forecast  # the shipped real candles: works on a fresh clone
    written = [shlex.split(forecast)[-1]]
    for path in written:  # outside the clone, so `git status` stays clean
        assert Path(path).is_absolute() and not Path(path).resolve().is_relative_to(REPO), path
    for path in written:
        Path(path).unlink(missing_ok=True)
    proc = subprocess.run(forecast, shell=True, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert all(Path(p).is_file() for p in written), written
