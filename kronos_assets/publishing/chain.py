"""The publication chain: one append-only record per publication, each naming the sha256 of the one before.

    chain/<seq>.json   seq, prev_record_sha256 (of chain/<seq-1>.json), prev_manifest_sha256 (of the manifest it
                       replaced), as_of (the publication's time: its newest origin, so the newest closed bar),
                       added {key: sha256} (every immutable object it wrote: forecasts, paths, versioned copies),
                       late (forecast files added after their first horizon bar had closed: backfills, labelled as
                       such), replaced {key: previous sha256} (immutable objects it re-wrote with new content,
                       e.g. a forecast recomputed for a new checkpoint: declared, never silent), closes {"SYMBOL tf":
                       [[ts, close], ...]} (the realised closes newer than the last
                       record's, so the scores can be recomputed from the record alone), closes_through.

The manifest carries the head (``chain``: seq, head, head_sha256, prev_manifest_sha256). A manifest rebuilt after
damage continues from the newest record in the store and says so (``manifest_rebuilt``); a site published before
the chain existed starts it at seq 0 (``kronos_assets.publishing.verify`` reports what predates it).
Records are written after the objects they list and before the manifest that names them.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any, Iterable

from kronos_assets.market.timeframes import timeframe_delta
from kronos_assets.publishing.contract import SeriesSnapshot
from kronos_assets.publishing.manifest import encode
from kronos_assets.publishing.store import IMMUTABLE_CACHE, Artifact, Store

CHAIN_FORMAT = 1
CHAIN_PREFIX = "chain/"
_RECORD_RE = re.compile(r"^chain/(\d{8})\.json$")


def record_key(seq: int) -> str:
    return f"{CHAIN_PREFIX}{seq:08d}.json"


def record_seq(key: str) -> int | None:
    m = _RECORD_RE.match(key)
    return int(m.group(1)) if m else None


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def is_forecast_key(key: str) -> bool:
    return "/history/" in key and key.endswith(".json")


def newest_record(store: Store) -> tuple[int, bytes] | None:
    """The highest-numbered record the store holds (for a rebuilt manifest), or None."""
    listing = getattr(store, "keys", None)
    if listing is None:
        return None
    seqs = [s for s in (record_seq(k) for k in listing()) if s is not None]
    for seq in sorted(seqs, reverse=True):
        body = store.get(record_key(seq))
        if body:
            return seq, body
    return None


def _ts(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def published_late(history: dict[str, Any], as_of: datetime) -> bool:
    """True when the forecast's first horizon bar (it opens at the origin) had closed by ``as_of``."""
    return as_of >= _ts(history["origin"]) + timeframe_delta(history["timeframe"])


def new_closes(snapshots: Iterable[SeriesSnapshot], through: dict[str, str]) -> dict[str, list[list[Any]]]:
    """The closed candles of each snapshot newer than ``through`` (per "SYMBOL tf"), oldest first."""
    out: dict[str, list[list[Any]]] = {}
    for snap in snapshots:
        series = f"{snap['symbol']} {snap['timeframe']}"
        last = _ts(through[series]) if series in through else None
        rows = sorted((_ts(c["ts"]), float(c["close"])) for c in snap.get("candles") or [])
        fresh = [[t.isoformat(), c] for t, c in rows if last is None or t > last]
        if fresh:
            out[series] = out.get(series, []) + fresh
    return out


def append_record(
    store: Store,
    previous: dict[str, Any],
    previous_manifest: bytes | None,
    rebuilt: str | None,
    as_of: datetime,
    added: dict[str, str],
    histories: dict[str, dict[str, Any]],
    snapshots: Iterable[SeriesSnapshot],
    replaced: dict[str, str] | None = None,
) -> tuple[dict[str, Any], Artifact]:
    """Writes the next record; returns the manifest's ``chain`` block for it and the record (listed as an object).

    ``previous``: the manifest read (or rebuilt) before this publish; ``previous_manifest`` its stored bytes (None
    when there was none or it was damaged); ``added``: key -> sha256 of every immutable object this publish wrote;
    ``histories``: the forecast documents among them, by key (to label the late ones); ``replaced``: key -> the
    sha256 the previous manifest listed, for the objects among them written with new content."""
    head = previous.get("chain")
    prev_sha, through, seq = None, {}, 0
    if isinstance(head, dict) and not rebuilt:
        prev_body = store.get(head["head"])
        seq, prev_sha = int(head["seq"]) + 1, head["head_sha256"]
        through = json.loads(prev_body).get("closes_through", {}) if prev_body else {}
    else:
        found = newest_record(store)  # a rebuilt manifest: continue from the chain log
        if found is not None:
            seq, prev_sha = found[0] + 1, sha256(found[1])
            through = json.loads(found[1]).get("closes_through", {})
    closes = new_closes(snapshots, through)
    through = dict(through) | {s: rows[-1][0] for s, rows in closes.items()}
    record = {
        "format": CHAIN_FORMAT,
        "seq": seq,
        "prev_record_sha256": prev_sha,
        "prev_manifest_sha256": sha256(previous_manifest) if previous_manifest and not rebuilt else None,
        "as_of": as_of.isoformat(),
        "added": dict(sorted(added.items())),
        "late": sorted(k for k, h in histories.items() if published_late(h, as_of)),
        "replaced": dict(sorted((replaced or {}).items())),
        "closes": dict(sorted(closes.items())),
        "closes_through": dict(sorted(through.items())),
    }
    if rebuilt:
        record["manifest_rebuilt"] = rebuilt
    art = Artifact.of(record_key(seq), encode(record), IMMUTABLE_CACHE)
    store.put(art)
    return {
        "seq": seq,
        "head": art.key,
        "head_sha256": art.sha256,
        "prev_manifest_sha256": record["prev_manifest_sha256"],
    }, art
