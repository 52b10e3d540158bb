"""base.locks: one exclusive file lock for the home layout's move and the study, freed with its process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from kronos_assets.base.locks import LockHeld, file_lock


def test_a_second_holder_waits_its_deadline_then_names_the_lock_and_the_holder(tmp_path):
    path = tmp_path / "x.lock"
    with file_lock(path, 0.0, "the layout lock"):
        t0 = time.monotonic()
        with pytest.raises(LockHeld) as caught:
            with file_lock(path, 0.3, "the layout lock"):
                pass
        assert time.monotonic() - t0 >= 0.3
    assert str(caught.value) == f"{path}: another run has held the layout lock for 0 s"
    assert isinstance(caught.value, TimeoutError) and caught.value.holder == str(os.getpid())
    with file_lock(path, 0.0):  # released on exit
        pass


def test_a_killed_holder_frees_the_lock(tmp_path):
    path = tmp_path / "x.lock"
    code = (
        "import sys, time; from kronos_assets.base.locks import file_lock\n"
        f"with file_lock({str(path)!r}, 5.0):\n    print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld) as caught:
            with file_lock(path, 0.0):
                pass
        assert caught.value.holder == str(proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    with file_lock(path, 30.0):  # a kill -9 frees it: no stale lock to clear by hand
        pass
