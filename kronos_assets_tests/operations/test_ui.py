"""``kronos-assets ui``: the README's UI command on a fresh home, the exact command printed, and a stop that takes
effect (the UI process and every process it started gone) however the UI was started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from kronos_assets.cli import ui
from kronos_assets_tests.operations.servers import free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STOP_BOUND_S = 30.0  # the design's 10 s, with margin for a machine at load 15 on 2 cores


def _children() -> dict[int, int]:
    """pid -> parent pid of every process (from /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                out[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return out


def _descendants(pid: int) -> set[int]:
    parents = _children()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _kill(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _ignoring_sigint() -> None:
    """A child started as `cmd &` from a script: SIGINT (and so, for dg dev, SIGTERM) inherited ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ui_command_is_exact_and_absolute(tmp_path, monkeypatch):
    monkeypatch.delenv("KRONOS_HOME", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    default = (REPO / ".kronos_home").resolve()
    assert ui.ui_command("demo", default).endswith("kronos-assets --profile demo ui")
    assert ui.ui_command("live", tmp_path / "h").endswith(f"kronos-assets --profile live --home {tmp_path / 'h'} ui")
    # A relative DAGSTER_HOME (which Dagster refuses) is made absolute; unset, the profile's folder is used.
    monkeypatch.setenv("DAGSTER_HOME", ".kronos_home/demo/dagster")
    assert ui.dagster_home_for(tmp_path) == (Path.cwd() / ".kronos_home/demo/dagster").resolve()
    monkeypatch.delenv("DAGSTER_HOME")
    assert ui.dagster_home_for(tmp_path) == tmp_path


def test_supervisor_stops_a_group_that_ignores_sigterm(tmp_path):
    """A child that ignores SIGTERM and has a grandchild that does too: both are gone within the deadline."""
    child = tmp_path / "deaf.py"
    child.write_text(
        textwrap.dedent("""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen([sys.executable, "-c",
                          "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        print("ready", flush=True)
        time.sleep(600)
    """)
    )
    runner = tmp_path / "run.py"
    runner.write_text(
        textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from kronos_assets.cli import ui
        sys.exit(ui.supervise([sys.executable, {str(child)!r}], dict(__import__('os').environ),
        Path({str(tmp_path)!r})))
    """)
    )
    proc = subprocess.Popen([sys.executable, str(runner)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    seen: set[int] = set()
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:
            seen = _descendants(proc.pid)
            time.sleep(0.1)
        assert len(seen) == 2, seen
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_BOUND_S) == 128 + signal.SIGTERM
        while _alive(seen) and time.monotonic() - t0 < STOP_BOUND_S:
            time.sleep(0.1)
        assert not _alive(seen), f"still running after {time.monotonic() - t0:.1f} s: {_alive(seen)}"
    finally:
        proc.kill()
        _kill(seen)


@pytest.mark.slow
@pytest.mark.parametrize("inherited", ["defaults", "sigint_ignored"])
def test_ui_serves_the_profile_and_stops_on_sigterm(tmp_path, inherited):
    """The README's UI command on a fresh home: it serves on the port asked for, on the profile's instance (an
    absolute DAGSTER_HOME with our dagster.yaml), and SIGTERM ends it and every process it started, also when it
    was started with SIGINT ignored (a background job of a script), which made dg dev ignore SIGTERM forever."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "KRONOS_PROFILE")}
    env.update(KRONOS_HOME=str(tmp_path / "home"), KRONOS_SENSOR_INTERVAL_S="5")
    log = (tmp_path / "ui.log").open("w")
    proc = subprocess.Popen(
        [str(VENV_BIN / "kronos-assets"), "--profile", "demo", "ui", "--port", str(port), "--host", "127.0.0.1"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_ignoring_sigint if inherited == "sigint_ignored" else None,
    )
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 300  # the code location loads in 10-40 s on a busy machine
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"the UI did not answer within 300 s: {(tmp_path / 'ui.log').read_text()[-3000:]}")
        instance = tmp_path / "home" / "demo" / "dagster"
        assert (instance / "dagster.yaml").read_text().startswith("# Written by kronos-assets")
        seen = _descendants(proc.pid)
        assert len(seen) >= 4, seen  # dg dev, its code server, the webserver, the daemon
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_BOUND_S) == 128 + signal.SIGTERM
        exited = time.monotonic() - t0
        while _alive(seen) and time.monotonic() - t0 < STOP_BOUND_S:
            time.sleep(0.1)
        took = time.monotonic() - t0
        assert not _alive(seen), f"still running {took:.1f} s after SIGTERM: {_alive(seen)}"
        print(f"UI stopped {took:.1f} s after SIGTERM, the command exited after {exited:.1f} s ({inherited})")
        assert str(instance) in (tmp_path / "ui.log").read_text()
    finally:
        proc.kill()
        _kill(_alive(seen | _descendants(proc.pid)))
        log.close()


def test_health_prints_the_exact_ui_command(tmp_path):
    from kronos_assets.cli.health import configured
    from kronos_assets_tests.helpers import small_settings

    settings = small_settings(tmp_path)
    rows = [r for r in configured(settings) if r.item == "ui"]
    assert len(rows) == 1 and rows[0].status == "OK", rows
    assert rows[0].detail == ui.ui_command("demo", tmp_path / "home")
    assert rows[0].detail.endswith(f"kronos-assets --profile demo --home {tmp_path / 'home'} ui")
