"""An exclusive lock on a file, held by this process: a kill -9 frees it (the kernel drops a dead process's flock)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class LockHeld(TimeoutError):
    """Another process held the lock past the wait; ``holder`` is the pid it wrote, if any."""

    def __init__(self, path: Path, what: str, wait_s: float, holder: str):
        self.path, self.holder = path, holder
        super().__init__(f"{path}: another run has held {what} for {wait_s:.0f} s")


class file_lock:
    """An exclusive flock on ``path`` within ``wait_s`` (0: refuse at once); the holder's pid is written into the
    file so that a refusal can name it."""

    def __init__(self, path: Path, wait_s: float, what: str = "the lock"):
        self.path, self.wait_s, self.what = Path(path), wait_s, what
        self.fd = -1

    def __enter__(self) -> "file_lock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
                    os.close(self.fd)
                    raise LockHeld(self.path, self.what, self.wait_s, holder) from None
                time.sleep(0.1)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the flock
