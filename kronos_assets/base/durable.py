"""Durability on a local file system: what a rename or a new file in a folder needs before it survives a power loss."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Makes the entries of ``folder`` (a rename or a new file in it) durable."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
