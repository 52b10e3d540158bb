"""``kronos-assets ui``: the Dagster UI (``dg dev``) on the profile's own instance, and a stop that takes effect.

Why a wrapper rather than ``DAGSTER_HOME=... dg dev``:
* Dagster refuses a relative DAGSTER_HOME, and the instance folder only exists (with our dagster.yaml) once
  something wrote it; here it is made absolute and written first.
* ``dg dev`` maps SIGTERM onto Python's SIGINT handler. Started from a script in the background (``dg dev &``),
  SIGINT is inherited ignored, Python keeps it ignored, and SIGTERM is then ignored too: the process never
  stops (measured: alive 5 minutes after SIGTERM). The child here starts with both at their defaults.
* On a stop ``dg dev`` waits up to 60 s for each of the webserver and the daemon, its code server stays until
  every run it launched has finished (Dagster's gRPC server shuts down "once executions finish"), and a code
  server left behind notices a dead parent only at its 45 s heartbeat. Here the whole process group
  (webserver, daemon, code servers, the runs they launched) is asked to stop, then terminated, then killed,
  within ``STOP_DEADLINE_S`` (measured 7-9 s at load 15 on 2 cores; dg dev's own shutdown alone 3-6 s). A run
  killed that way is failed and its slots freed by the next ``kronos-assets run`` or the recovery sensor.

No Dagster import: it runs ``dg`` as a program.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from kronos_assets.base import environment

if TYPE_CHECKING:
    from kronos_assets.configuration.settings import Settings

ORDERLY_S = 5.0  # dg dev's own shutdown (webserver, daemon, code servers told to stop)
TERM_S = 2.0  # then SIGTERM to every process of the group
STOP_DEADLINE_S = 10.0  # then SIGKILL; everything is gone by here
_PR_SET_PDEATHSIG = 1


def script(name: str) -> str:
    """The path of one of this environment's programs as a user would type it (relative to the current folder
    when inside it, e.g. .venv/bin/kronos-assets), or the bare name when it is not installed beside Python."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        return name
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path.absolute())


def ui_command(profile: str, home: Path) -> str:
    """The exact command that opens the UI on this profile's runs (the home only when it is not the default)."""
    parts = [script("kronos-assets"), "--profile", profile]
    if home != (environment.REPO_ROOT / ".kronos_home").resolve():
        parts += ["--home", str(home)]
    return shlex.join([*parts, "ui"])


def dagster_home_for(profile_dagster_home: Path) -> Path:
    """$DAGSTER_HOME made absolute (Dagster refuses a relative one), else the profile's instance folder."""
    own = environment.dagster_home()
    return Path(own).expanduser().resolve() if own else profile_dagster_home


def _child_setup() -> None:
    """In the child, before exec: SIGINT and SIGTERM at their defaults (an inherited 'ignore' would make dg dev
    deaf to both), and SIGTERM when this parent dies, so a killed wrapper leaves no UI behind (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(
    proc: subprocess.Popen[bytes],
    orderly_s: float = ORDERLY_S,
    term_s: float = TERM_S,
    deadline_s: float = STOP_DEADLINE_S,
) -> None:
    """Stops ``proc`` (a session leader) and every process of its group within ``deadline_s``: SIGTERM to the
    leader (its own orderly shutdown), then SIGTERM to the group, then SIGKILL to the group."""
    t0 = time.monotonic()
    pgid = proc.pid
    steps = (
        (0.0, lambda: proc.poll() is None and proc.send_signal(signal.SIGTERM)),
        (orderly_s, lambda: _signal_group(pgid, signal.SIGTERM)),
        (orderly_s + term_s, lambda: _signal_group(pgid, signal.SIGKILL)),
    )
    for at, act in steps:
        while time.monotonic() - t0 < at:
            proc.poll()  # reap the leader as soon as it ends
            if not _group_alive(pgid):
                return
            time.sleep(0.1)
        act()
    while time.monotonic() - t0 < deadline_s:
        proc.poll()
        if not _group_alive(pgid):
            return
        time.sleep(0.05)


def supervise(
    cmd: Sequence[str],
    env: dict[str, str] | None,
    cwd: Path,
    stop_signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP),
) -> int:
    """Runs ``cmd`` in a session of its own until it ends or this process is asked to stop; either way no
    process of that session outlives the return. Exit status: the child's, or 128 + the stop signal."""
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in stop_signals}
    try:
        proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, start_new_session=True, preexec_fn=_child_setup)
        while proc.poll() is None and not stop.wait(0.5):
            pass
        stop_group(proc, orderly_s=ORDERLY_S if received else 0.5)  # after a crash only stragglers are left
        proc.wait(timeout=1)
        return 128 + received[0] if received else (proc.returncode or 0)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def serve(settings: Settings, dg_args: Sequence[str] = ()) -> int:
    """``dg dev`` from the repository root on the profile's instance (DAGSTER_HOME absolute), supervised."""
    dagster_home = dagster_home_for(settings.dagster_home)
    if not environment.dagster_home():  # our dagster.yaml (pools, run monitoring, log file) before the UI reads it
        from kronos_assets.orchestration.local_instance import instance_for

        instance_for(settings).dispose()
    dagster_home.mkdir(parents=True, exist_ok=True)
    environment.export(DAGSTER_HOME=dagster_home, PROFILE=settings.profile, HOME=settings.home)  # dg dev inherits
    dg = Path(sys.executable).parent / "dg"
    print(
        f"Dagster UI for profile {settings.profile} on the instance {dagster_home}; Ctrl-C or SIGTERM stops it "
        f"within {STOP_DEADLINE_S:.0f} s",
        flush=True,
    )
    return supervise([str(dg) if dg.exists() else "dg", "dev", *dg_args], None, environment.REPO_ROOT)
