"""A lock on a file, held by this process: a kill -9 frees it (the kernel drops a dead process's flock).

Exclusive by default; shared locks let many holders in at once and keep an exclusive one out (the warehouse's
connections and a restore)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class LockHeld(TimeoutError):
    """Another process held the lock past the wait; ``holder`` is the pid it wrote, if any."""

    def __init__(self, path: Path, what: str, wait_s: float, holder: str):
        self.path, self.holder = path, holder
        by = f" (pid {holder})" if holder else ""
        super().__init__(f"{path}: another process{by} has held {what} for {wait_s:.0f} s")


class file_lock:
    """An exclusive (or, with ``shared``, a shared) flock on ``path`` within ``wait_s`` (0: refuse at once). An
    exclusive holder writes its pid into the file so that a refusal can name it."""

    def __init__(self, path: Path, wait_s: float, what: str = "the lock", shared: bool = False):
        self.path, self.wait_s, self.what, self.shared = Path(path), wait_s, what, shared
        self.fd = -1

    def __enter__(self) -> "file_lock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(self.fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._exclusive_holder()
                    os.close(self.fd)
                    raise LockHeld(self.path, self.what, self.wait_s, holder) from None
                time.sleep(0.1)
        if not self.shared:  # shared holders leave the last exclusive holder's pid; it is only read on a refusal
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def _exclusive_holder(self) -> str:
        """The pid in the file when an exclusive holder keeps us out; "" when shared holders do (a shared lock
        is granted beside them, and the pid in the file is then a former exclusive holder's)."""
        if not self.shared:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                return ""
            except BlockingIOError:
                pass
        return os.pread(self.fd, 32, 0).decode(errors="replace").strip()

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the flock
