"""Where published artifacts go. A store takes whole objects with their content type and cache policy.

Two back ends share one interface (``Store``): the local folder (``LocalStore``) and an S3 bucket such as
Cloudflare R2 (``S3Store``, in ``kronos_assets.publishing.r2``). Both are idempotent: putting an object whose
bytes, content type and cache policy are already stored changes nothing (no write, not even an mtime).

The local folder writes each file atomically (temporary file + rename), so a reader never sees half a file, and
durably: the file's bytes are fsynced before the rename and its folder after it (new folders' parents too), so a
put that returned survives a power loss. The manifest is put last, so it never points at an empty file. A latest
name is a hard link to its versioned copy (``put_same_as``): its bytes are on disk once.

Both stores list their keys and describe a stored object (``stat``: sha256, size, and the headers a bucket keeps),
which is what rebuilding a damaged manifest needs (``kronos_assets.publishing.site``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator, Protocol

from kronos_assets.base.durable import fsync_dir

# Cache lifetimes. Latest files (fixed names that change at every publish) are revalidated after a minute;
# history and versioned copies never change once written; the manifest is always revalidated.
LATEST_CACHE = "public, max-age=60, must-revalidate"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
MANIFEST_CACHE = "no-cache"

CONTENT_TYPES = {
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".parquet": "application/vnd.apache.parquet",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


def content_type_for(key: str) -> str:
    """The Content-Type of a key, from its extension; unknown extensions are an error, never a guess."""
    ext = os.path.splitext(key)[1].lower()
    try:
        return CONTENT_TYPES[ext]
    except KeyError:
        raise ValueError(f"no content type known for {key!r}; add its extension to CONTENT_TYPES") from None


@dataclass(frozen=True)
class Artifact:
    key: str  # path inside the site, '/'-separated, no leading slash
    body: bytes
    content_type: str
    cache_control: str

    @classmethod
    def of(cls, key: str, body: bytes, cache_control: str) -> "Artifact":
        return cls(check_key(key), body, content_type_for(key), cache_control)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True)
class Stat:
    """What a store knows of one stored object; ``content_type`` and ``cache_control`` are None where the store
    keeps no headers (the local folder)."""

    sha256: str
    bytes: int
    content_type: str | None = None
    cache_control: str | None = None


class Store(Protocol):
    def put(self, artifact: Artifact) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def delete(self, key: str) -> None: ...

    def location(self, key: str) -> str: ...

    def keys(self) -> Iterator[str]: ...

    def stat(self, key: str) -> Stat | None: ...


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad artifact key {key!r}")
    return key


class LocalStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, artifact: Artifact) -> None:
        path = self._path(artifact.key)
        if path.is_file() and path.read_bytes() == artifact.body:
            return  # re-publishing the same content changes nothing, not even the mtime
        _make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(artifact.body)
                fh.flush()
                os.fchmod(fh.fileno(), 0o644)  # published files are for everyone to read
                os.fsync(fh.fileno())  # the bytes are on disk before the name points at them
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)  # and the new name is on disk before put returns

    def put_same_as(self, artifact: Artifact, source_key: str) -> None:
        """Puts ``artifact``, whose body is already stored under ``source_key`` (a latest name beside its versioned
        copy), as a hard link to that file: a directory entry, no second copy of the bytes. A plain put where the
        source differs or the file system has no hard links."""
        path, src = self._path(artifact.key), self._path(source_key)
        if path.is_file() and path.read_bytes() == artifact.body:
            return  # nothing changes, not even the mtime
        try:
            if src.read_bytes() != artifact.body:
                return self.put(artifact)
            tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
            os.link(src, tmp)
        except OSError:
            return self.put(artifact)
        try:
            fd = os.open(tmp, os.O_RDONLY)  # the source's bytes were synced when it was put: this is cheap
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)

    def keys(self) -> Iterator[str]:
        """Every stored key (temporary files of a writer excluded), in no particular order."""
        if not self.root.is_dir():
            return
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                yield path.relative_to(self.root).as_posix()

    def stat(self, key: str) -> Stat | None:
        body = self.get(key)
        return None if body is None else Stat(hashlib.sha256(body).hexdigest(), len(body))

    def remove_stray_temporaries(self) -> list[Path]:
        """Deletes the ``.tmp-*`` files a killed writer left behind. Call it only while nothing publishes (the
        caller holds, or has checked, the publish pool): a live writer's temporary file looks the same."""
        if not self.root.is_dir():
            return []
        stray = [p for p in self.root.rglob(".tmp-*") if p.is_file()]
        for path in stray:
            path.unlink(missing_ok=True)
        return stray

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def location(self, key: str) -> str:
        return str(self._path(key))


def _make_dirs(folder: Path) -> None:
    """``mkdir -p``, with each new folder's entry made durable in its parent."""
    if folder.is_dir():
        return
    _make_dirs(folder.parent)
    try:
        folder.mkdir()
    except FileExistsError:  # a concurrent writer made it: its entry must be durable all the same
        if not folder.is_dir():
            raise
    fsync_dir(folder.parent)
