"""The manifest (``manifest.json``): what is published, written last by ``site.publish_site``.

It lists every immutable object (history, paths, plotly.js, the versioned copies) with its sha256, size, content
type and cache policy, maps each latest name to its versioned copy (``aliases``), and names the versioned copies
the previous publish replaced (``retired``: deleted by the next publish).

A manifest that cannot be read (a write cut short by a crash or a full disk, an edit by hand) is rebuilt from the
objects the store holds: every immutable object's sha256 and size are recomputable (the local folder hashes its
files; a bucket returns the sha256 its objects carry as metadata), a latest name is aliased to the versioned copy
whose name matches its content, and the versioned copies left unaliased are retired. Nothing listed before the
damage is lost: whatever is still stored whole is listed again. Empty objects (what a power loss leaves of a
file never synced) and versioned copies whose content does not match their name are left out (and re-put by the
publish that rebuilt the manifest when it has them). A store that cannot list its objects fails naming the file
and the fix.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from kronos_assets.publishing.keys import MANIFEST_KEY, is_immutable, is_versioned, version_of, versioned_key
from kronos_assets.publishing.store import CONTENT_TYPES, IMMUTABLE_CACHE, Artifact, Store, content_type_for

MANIFEST_FORMAT = 2
ENTRY_FIELDS = {"sha256": str, "bytes": int, "content_type": str, "cache_control": str}


class ManifestError(RuntimeError):
    """The manifest is damaged and cannot be rebuilt here; the message names the file and what to do."""


def empty_manifest() -> dict[str, Any]:
    return {"objects": {}, "aliases": {}, "retired": []}


def entry(art: Artifact) -> dict[str, Any]:
    return {"sha256": art.sha256, "bytes": len(art.body), "content_type": art.content_type,
            "cache_control": art.cache_control}


def read_manifest(store: Store) -> tuple[dict[str, Any], str | None]:
    """The stored manifest (an empty one when none is stored yet), and None; or, when it cannot be read, the one
    rebuilt from the stored objects and why it had to be."""
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
    if m.get("format") != MANIFEST_FORMAT:  # format 1 listed latest names as objects: they are no longer immutable
        m["objects"] = {k: v for k, v in m.get("objects", {}).items()
                        if "/history/" in k or k.startswith("assets/") or "/paths/" in k}
    return m, None


def _check_shape(m: Any) -> None:
    if not isinstance(m, dict):
        raise TypeError(f"a JSON {type(m).__name__}, not an object")
    objects = m.get("objects", {})
    if not isinstance(objects, dict):
        raise TypeError("'objects' is not an object")
    for key, meta in objects.items():
        if not isinstance(meta, dict) or any(not isinstance(meta.get(f), t) for f, t in ENTRY_FIELDS.items()):
            raise TypeError(f"objects[{key!r}] lacks one of {', '.join(ENTRY_FIELDS)}")
    aliases = m.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise TypeError("'aliases' is not an object of names")
    retired = m.get("retired", [])
    if not isinstance(retired, list) or not all(isinstance(v, str) for v in retired):
        raise TypeError("'retired' is not a list of names")


def rebuild_manifest(store: Store, why: str) -> dict[str, Any]:
    """The manifest re-derived from the objects ``store`` holds (see the module docstring)."""
    listing = getattr(store, "keys", None)
    if listing is None:
        raise ManifestError(f"{why}; {type(store).__name__} cannot list its objects to rebuild it: move the file "
                            "aside and publish again (the new manifest then lists only what that publish writes)")
    objects: dict[str, dict[str, Any]] = {}
    latest, damaged = [], []
    for key in sorted(listing()):
        name = posixpath.basename(key)
        if key == MANIFEST_KEY or name.startswith(".") or posixpath.splitext(name)[1].lower() not in CONTENT_TYPES:
            continue  # a writer's temporary file, or nothing this publisher writes
        if not is_immutable(key):
            latest.append(key)
            continue
        st = store.stat(key)
        if st is None:
            continue
        if st.bytes == 0 or (is_versioned(key) and st.sha256[:16] != version_of(key)):
            damaged.append(key)
            continue
        objects[key] = {"sha256": st.sha256, "bytes": st.bytes,
                        "content_type": st.content_type or content_type_for(key),
                        "cache_control": st.cache_control or IMMUTABLE_CACHE}
    aliases = {}
    for key in latest:
        st = store.stat(key)
        if st is not None and versioned_key(key, st.sha256) in objects:
            aliases[key] = versioned_key(key, st.sha256)
    current = set(aliases.values())
    retired = sorted(k for k in [*objects, *damaged] if is_versioned(k) and k not in current)
    for k in retired:
        objects.pop(k, None)
    return {"objects": objects, "aliases": aliases, "retired": retired,
            "damaged": sorted(k for k in damaged if not is_versioned(k))}
