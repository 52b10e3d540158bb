"""The manifest: what is published, written last by ``site.publish_site``. Since format 3, a head and its parts:

    manifest.json      the head (no-cache): the latest names and their versioned copies (``aliases``; ``retired``:
                       the copies the previous publish replaced, deleted by the next one), the chain head (``chain``),
                       the digest of what was published (``inputs``), ``objects`` (the versioned copies, plotly.js
                       and the newest immutable entries: sha256, size, content type, cache policy) and ``index``
                       (the newest index part and its sha256, how many parts and entries they hold).
    index/<n>.json     an index part (immutable): once the head holds ``PART_OBJECTS`` entries beyond its own
                       (history, paths, chain records), they move to a new part, which names the part before it and
                       that part's sha256 (``prev``, ``prev_sha256``).

So a publish reads and writes one small file (the head) and now and then a new part, whatever the history; a reader
that wants every object (``verify``, ``backup``) follows the parts back from the head (``listed_objects``). A
manifest of format 2 (one file listing every object) is read as it is; the next publish moves its objects into a
first part: an upgrade keeps every listed object and the chain going.

A manifest that cannot be read (a write cut short by a crash or a full disk, an edit by hand) is rebuilt from the
objects the store holds: every immutable object's sha256 and size are recomputable (the local folder hashes its
files; a bucket returns the sha256 its objects carry as metadata), a latest name is aliased to the versioned copy
whose name matches its content, and the versioned copies left unaliased are retired. Nothing listed before the
damage is lost: whatever is still stored whole is listed again (in a new first part, numbered after every stored
one: old parts are never overwritten). Empty objects (what a power loss leaves of a file never synced) and
versioned copies whose content does not match their name are left out (and re-put by the publish that rebuilt the
manifest when it has them). A store that cannot list its objects fails naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from typing import Any, Iterator

from kronos_assets.publishing.keys import MANIFEST_KEY, is_immutable, is_versioned, version_of, versioned_key
from kronos_assets.publishing.store import (
    CONTENT_TYPES,
    IMMUTABLE_CACHE,
    Artifact,
    Store,
    content_type_for,
)

MANIFEST_FORMAT = 3
ENTRY_FIELDS = {"sha256": str, "bytes": int, "content_type": str, "cache_control": str}
INDEX_PREFIX = "index/"
PART_FORMAT = 1
PART_OBJECTS = 32  # entries beyond its own the head holds before they move to a part: the head stays under ~10 KB
_PART_RE = re.compile(r"^index/(\d{8})\.json$")


class ManifestError(RuntimeError):
    """The manifest is damaged and cannot be rebuilt here; the message names the file and what to do."""


class IndexDamage(ManifestError):
    """An index part is missing or is not what the part after it (or the head) says: the file, the field, what
    was expected and what was found."""

    def __init__(self, file: str, field: str, expected: Any, found: Any):
        self.file, self.field, self.expected, self.found = file, field, expected, found
        super().__init__(f"{file}: {field}: expected {expected}, found {found}")


def part_key(n: int) -> str:
    return f"{INDEX_PREFIX}{n:08d}.json"


def part_number(key: str) -> int | None:
    m = _PART_RE.match(key)
    return int(m.group(1)) if m else None


def in_head(key: str) -> bool:
    """The objects the head lists itself: the versioned copies (a bounded set: older ones are retired and deleted)
    and plotly.js (one per plotly release). Everything else immutable goes to the index parts."""
    return is_versioned(key) or key.startswith("assets/")


def encode(doc: dict[str, Any]) -> bytes:
    """Compact, key-sorted JSON: the same document gives the same bytes."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()


def empty_manifest() -> dict[str, Any]:
    return {"objects": {}, "aliases": {}, "retired": []}


def entry(art: Artifact) -> dict[str, Any]:
    return {
        "sha256": art.sha256,
        "bytes": len(art.body),
        "content_type": art.content_type,
        "cache_control": art.cache_control,
    }


def read_manifest(store: Store) -> tuple[dict[str, Any], str | None]:
    """The stored head (an empty manifest when none is stored yet), and None; or, when it cannot be read, the
    manifest rebuilt from the stored objects and why it had to be (a rebuilt one lists every object itself)."""
    raw = store.get(MANIFEST_KEY)
    if not raw:
        return empty_manifest(), None
    try:
        m = json.loads(raw)
        _check_shape(m)
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        why = f"{store.location(MANIFEST_KEY)} is damaged ({type(exc).__name__}: {exc})"
        return rebuild_manifest(store, why), why
    m.setdefault("aliases", {})
    m.setdefault("retired", [])
    if m.get("format") not in (2, MANIFEST_FORMAT):  # format 1 listed latest names as objects: not immutable
        m["objects"] = {
            k: v
            for k, v in m.get("objects", {}).items()
            if "/history/" in k or k.startswith("assets/") or "/paths/" in k
        }
    return m, None


def _check_shape(m: Any) -> None:
    if not isinstance(m, dict):
        raise TypeError(f"a JSON {type(m).__name__}, not an object")
    _check_objects(m.get("objects", {}))
    aliases = m.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise TypeError("'aliases' is not an object of names")
    retired = m.get("retired", [])
    if not isinstance(retired, list) or not all(isinstance(v, str) for v in retired):
        raise TypeError("'retired' is not a list of names")
    index = m.get("index")
    if index is not None and (
        not isinstance(index, dict)
        or part_number(str(index.get("head"))) is None
        or not isinstance(index.get("head_sha256"), str)
    ):
        raise TypeError("'index' does not name its newest part (head, head_sha256)")


def _check_objects(objects: Any) -> None:
    if not isinstance(objects, dict):
        raise TypeError("'objects' is not an object")
    for key, meta in objects.items():
        if not isinstance(meta, dict) or any(not isinstance(meta.get(f), t) for f, t in ENTRY_FIELDS.items()):
            raise TypeError(f"objects[{key!r}] lacks one of {', '.join(ENTRY_FIELDS)}")


def read_part(store: Store, key: str, sha256: str | None = None) -> tuple[dict[str, Any], bytes]:
    """An index part and its bytes; IndexDamage when it is missing, unreadable, not the part its name says, or
    (``sha256`` given) not the bytes that name."""
    body = store.get(key)
    if not body:
        raise IndexDamage(key, "file", "an index part", "missing" if body is None else "empty")
    if sha256 is not None and hashlib.sha256(body).hexdigest() != sha256:
        raise IndexDamage(key, "sha256", sha256, hashlib.sha256(body).hexdigest())
    try:
        part = json.loads(body)
        if not isinstance(part, dict):
            raise TypeError(f"a JSON {type(part).__name__}, not an object")
        _check_objects(part.get("objects"))
    except (ValueError, TypeError) as exc:
        raise IndexDamage(key, "file", "an index part", f"unreadable ({type(exc).__name__}: {exc})") from None
    if part.get("part") != part_number(key):
        raise IndexDamage(key, "part", part_number(key), part.get("part"))
    return part, body


def index_parts(store: Store, manifest: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], bytes]]:
    """The parts of a format-3 manifest, newest first, each checked against the sha256 the head or the next part
    gives for it; none for an older format."""
    index = manifest.get("index")
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(index, dict):
        return
    key, sha = index["head"], index["head_sha256"]
    while key is not None:
        part, body = read_part(store, key, sha)
        yield key, part, body
        key, sha = part.get("prev"), part.get("prev_sha256")


def listed_objects(store: Store, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every object a manifest lists, whatever its format: the head's and every index part's entries, and the
    parts themselves (so a copy of the listed objects is a whole publication). IndexDamage names a broken part."""
    objects = dict(manifest.get("objects", {}))
    for key, part, body in index_parts(store, manifest):  # newest first: a newer entry (a replacement) wins
        for k, meta in part["objects"].items():
            objects.setdefault(k, meta)
        objects[key] = {
            "sha256": hashlib.sha256(body).hexdigest(),
            "bytes": len(body),
            "content_type": content_type_for(key),
            "cache_control": IMMUTABLE_CACHE,
        }
    return objects


def next_part_number(store: Store) -> int:
    """One past the highest part the store holds (0 when it holds none or cannot list)."""
    listing = getattr(store, "keys", None)
    numbers = [n for n in (part_number(k) for k in listing()) if n is not None] if listing else []
    return max(numbers, default=-1) + 1


def rebuild_manifest(store: Store, why: str) -> dict[str, Any]:
    """The manifest re-derived from the objects ``store`` holds (see the module docstring)."""
    listing = getattr(store, "keys", None)
    if listing is None:
        raise ManifestError(
            f"{why}; {type(store).__name__} cannot list its objects to rebuild it: move the file "
            "aside and publish again (the new manifest then lists only what that publish writes)"
        )
    objects: dict[str, dict[str, Any]] = {}
    latest, damaged = [], []
    for key in sorted(listing()):
        name = posixpath.basename(key)
        if (
            key == MANIFEST_KEY
            or key.startswith(INDEX_PREFIX)
            or name.startswith(".")
            or posixpath.splitext(name)[1].lower() not in CONTENT_TYPES
        ):
            continue  # the index, a writer's temporary file, or nothing this publisher writes
        if not is_immutable(key):
            latest.append(key)
            continue
        st = store.stat(key)
        if st is None:
            continue
        if st.bytes == 0 or (is_versioned(key) and st.sha256[:16] != version_of(key)):
            damaged.append(key)
            continue
        objects[key] = {
            "sha256": st.sha256,
            "bytes": st.bytes,
            "content_type": st.content_type or content_type_for(key),
            "cache_control": st.cache_control or IMMUTABLE_CACHE,
        }
    aliases = {}
    for key in latest:
        st = store.stat(key)
        if st is not None and versioned_key(key, st.sha256) in objects:
            aliases[key] = versioned_key(key, st.sha256)
    current = set(aliases.values())
    retired = sorted(k for k in [*objects, *damaged] if is_versioned(k) and k not in current)
    for k in retired:
        objects.pop(k, None)
    return {
        "objects": objects,
        "aliases": aliases,
        "retired": retired,
        "damaged": sorted(k for k in damaged if not is_versioned(k)),
    }
