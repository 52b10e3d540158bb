"""Where published artifacts go. A store takes whole objects with their content type and cache policy.

The local folder writes each file atomically (temporary file + rename), so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

LATEST_CACHE = "public, max-age=60, must-revalidate"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Artifact:
    key: str  # path inside the site, '/'-separated, no leading slash
    body: bytes
    content_type: str
    cache_control: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


class Store(Protocol):
    def put(self, artifact: Artifact) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def location(self, key: str) -> str: ...


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad artifact key {key!r}")
    return key


class LocalStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, artifact: Artifact) -> None:
        path = self._path(artifact.key)
        if path.is_file() and path.read_bytes() == artifact.body:
            return  # re-publishing the same content changes nothing, not even the mtime
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(artifact.body)
            os.chmod(tmp, 0o644)  # published files are for everyone to read
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def location(self, key: str) -> str:
        return str(self._path(key))
