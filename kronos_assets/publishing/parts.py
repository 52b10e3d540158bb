"""What a publish knows of the listed objects, and the sealing of the head's entries into an index part.

The head (manifest.json) lists the versioned copies, plotly.js and the newest entries; the index parts list the
older ones (``publishing.manifest``). A publish reads only the head: an object it plans is new when the head does
not list it and the store does not hold it (one stat), which is the case of every new forecast. Only an object the
store already holds that the head does not list (a backfill re-publishing old bars, a run cut short before its
manifest) sends it back through the parts, newest first, until the object is found: a cost the backfill pays, never
the hourly tick.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator

from kronos_assets.publishing.manifest import (
    MANIFEST_FORMAT,
    PART_FORMAT,
    PART_OBJECTS,
    IndexDamage,
    encode,
    in_head,
    index_parts,
    next_part_number,
    part_key,
    part_number,
)
from kronos_assets.publishing.public import same_document
from kronos_assets.publishing.store import IMMUTABLE_CACHE, Artifact, Store


class Listing:
    """The listed entry of a key: the head's, else (for an object the store holds) an index part's."""

    def __init__(self, store: Store, head_objects: dict[str, dict[str, Any]], index: dict[str, Any] | None):
        self.store, self.head, self.index = store, head_objects, index
        self._older: dict[str, dict[str, Any]] = {}
        self._parts: Iterator[tuple[str, dict[str, Any], bytes]] | None = None

    def entry(self, key: str) -> dict[str, Any] | None:
        if key in self.head:
            return self.head[key]
        if in_head(key) or self.index is None:
            return None  # the head lists every live versioned copy; with no parts there is nothing older
        stat = getattr(self.store, "stat", None)
        if stat is None or stat(key) is None:
            return None  # not stored: a new object
        if self._parts is None:
            self._parts = index_parts(self.store, {"format": MANIFEST_FORMAT, "index": self.index})
        while key not in self._older:
            try:
                _, part, _ = next(self._parts)
            except (StopIteration, IndexDamage):  # listed nowhere readable: published anew (verify names damage)
                self._parts = iter(())
                return None
            for k, meta in part["objects"].items():
                self._older.setdefault(k, meta)  # the newest part's entry wins
        return self._older[key]

    def same_document(self, art: Artifact, known: dict[str, Any]) -> Artifact | None:
        """The stored bytes of a JSON object listed with ``known``, when they hold the same document as ``art``
        in an older encoding (indented JSON; a forecast's step summaries to more digits, with median_close):
        re-publishing it must not count as a new version."""
        if not art.key.endswith(".json") or in_head(art.key):
            return None
        body = self.store.get(art.key)
        if not body or hashlib.sha256(body).hexdigest() != known["sha256"]:
            return None
        try:
            same = same_document(json.loads(body), json.loads(art.body))
        except ValueError:
            return None
        return Artifact(art.key, body, art.content_type, art.cache_control) if same else None


def seal(
    store: Store, objects: dict[str, dict[str, Any]], index: dict[str, Any] | None
) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None, Artifact | None]:
    """The head's objects and index after this publish: once the entries beyond the head's own fill a part (or an
    upgrade or a rebuild brings a whole history), they go to a new part, which names the one before it by sha256.
    Returns the head's objects, the index, and the part written (None: no part this time)."""
    loose = {k: v for k, v in objects.items() if not in_head(k)}
    if len(loose) < PART_OBJECTS:
        return dict(sorted(objects.items())), index, None
    n = part_number(index["head"]) + 1 if index else next_part_number(store)  # never over an existing part
    part = {
        "format": PART_FORMAT,
        "part": n,
        "prev": index["head"] if index else None,
        "prev_sha256": index["head_sha256"] if index else None,
        "objects": dict(sorted(loose.items())),
    }
    art = Artifact.of(part_key(n), encode(part), IMMUTABLE_CACHE)
    store.put(art)
    sealed = {
        "head": art.key,
        "head_sha256": art.sha256,
        "parts": (index or {}).get("parts", 0) + 1,
        "objects": (index or {}).get("objects", 0) + len(loose) + 1,
    }  # its entries and the part itself
    return dict(sorted((k, v) for k, v in objects.items() if in_head(k))), sealed, art
