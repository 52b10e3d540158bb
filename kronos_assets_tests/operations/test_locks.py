"""base.locks: a file lock, exclusive (the home layout's move, the study, a restore) or shared (the warehouse's
connections), freed with its process."""

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
    assert str(caught.value) == f"{path}: another process (pid {os.getpid()}) has held the layout lock for 0 s"
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


def test_shared_holders_share_and_keep_an_exclusive_one_out_without_naming_a_stale_pid(tmp_path):
    path = tmp_path / "x.lock"
    with file_lock(path, 0.0):  # an exclusive holder leaves its pid in the file
        pass
    with file_lock(path, 0.0, shared=True), file_lock(path, 0.0, shared=True):
        with pytest.raises(LockHeld) as caught:
            with file_lock(path, 0.2, "the restore lock"):
                pass
    assert caught.value.holder == ""  # the pid in the file is a former holder's, not one of the shared ones
    assert str(caught.value) == f"{path}: another process has held the restore lock for 0 s"
    with file_lock(path, 0.0):  # both shared holders released
        with pytest.raises(LockHeld) as caught:
            with file_lock(path, 0.2, shared=True):
                pass
    assert caught.value.holder == str(os.getpid())  # a shared holder kept out names the exclusive one
