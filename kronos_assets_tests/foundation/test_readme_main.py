"""The README's main command, run as a user runs it, in a temporary home (the session's readme_run fixture)."""

import json
from pathlib import Path


def test_readme_main_command_publishes_a_dashboard(readme_run):
    cmd, home, proc = readme_run.command, readme_run.home, readme_run.proc
    assert cmd.startswith(".venv/bin/kronos-assets") and "--profile demo" in cmd
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("dashboard: ")
    index = Path(last.removeprefix("dashboard: "))
    assert index == home / "demo" / "publish" / "index.html" and index.is_file()
    manifest = json.loads((index.parent / "manifest.json").read_text())
    assert manifest["profile"] == "demo" and manifest["synthetic"] is False
    # a replay of the shipped real candles, up to the newest close common to BTC and ETH, and it says so
    first = proc.stdout.splitlines()[0]
    assert "a replay of real Binance spot candles, as of 2026-04-01 00:00 UTC" in first, first
    assert "REPLAY of real Binance spot candles" in index.read_text() and "2026-04-01 00:00" in index.read_text()
    board = json.loads((index.parent / "scoreboard.json").read_text())["rows"]
    assert {r["symbol"] for r in board} == {"BTC/USDT", "ETH/USDT"}
    assert all(r["n_forecasts"] > 0 for r in board)
    assert (home / "demo" / "dagster").is_dir()  # runs recorded for the UI
    # A short progress view, not Dagster's event log: that goes to a file the output names.
    log = home / "demo" / "logs" / "dagster.log"
    assert f"full Dagster log: {log}" in proc.stdout and "STEP_SUCCESS" in log.read_text()
    assert len(proc.stdout.splitlines()) < 30 and proc.stderr.strip() == "", proc.stderr[-3000:]
    assert " WARNING " not in log.read_text()  # nothing a user would have to act on
