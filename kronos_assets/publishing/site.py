"""The published site: per-series JSON, Parquet and charts, a dashboard page, a scoreboard, and a manifest.

Where each object lives, and the versioned copy of every "latest" file: ``keys``. The manifest lists every
immutable object (history, paths, plotly.js and the versioned copies) with its sha256, size, content type and
cache policy, the older ones in index parts (``manifest``), and maps each latest name to its versioned copy
(``aliases``). Publishing puts the immutable objects first, then the latest names (each after everything it links
to), then the manifest, and only then deletes the versioned copies two publishes old. So a reader that follows
the manifest always finds every object it lists, with the listed sha256, even while the next publish runs or after
one failed half-way; a browser opening a latest name gets a page whose links already exist.

Each series writes only under its own prefix, so one coin's run can never overwrite another's files.
Re-publishing the same data changes no byte: every content (generated_at included) derives from the data. A tick
writes its new objects, the latest files (in the local folder each a hard link to its versioned copy) and the
manifest's head: the same bytes with a year of history as with a day.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import plotly
import polars as pl
import pyarrow.parquet as pq

from kronos_assets.publishing.chain import append_record, sha256
from kronos_assets.publishing.charts import fan_chart_png
from kronos_assets.publishing.contract import (
    HistoryDocument,
    Scoreboard,
    ScoreboardRow,
    SeriesScoreboard,
    SeriesSnapshot,
    Verdict,
)
from kronos_assets.publishing.figures import figures_file, templates_js, templates_key
from kronos_assets.publishing.keys import (
    MANIFEST_KEY,
    PLOTLY_JS_KEY,
    history_key,
    is_versioned,
    paths_key,
    series_keys,
    versioned_key,
)
from kronos_assets.publishing.latest import latest_document
from kronos_assets.publishing.manifest import MANIFEST_FORMAT, encode, entry, read_manifest
from kronos_assets.publishing.pages import chart_page, dashboard_assets, dashboard_html
from kronos_assets.publishing.parts import Listing, seal
from kronos_assets.publishing.public import without_local_paths
from kronos_assets.publishing.store import IMMUTABLE_CACHE, LATEST_CACHE, MANIFEST_CACHE, Artifact, Store


def _json(obj: Any) -> bytes:
    """Compact JSON (no indentation: a quarter fewer bytes), keys sorted, local paths taken out."""
    return encode(without_local_paths(obj))


@dataclass
class SeriesUpdate:
    """What one run publishes for a series: history (and paths) of its origins, and the latest state unless a
    newer one is already published (``snapshot`` None: a backfill of old bars must not roll ``latest`` back)."""

    symbol: str
    timeframe: str
    history: list[HistoryDocument]
    paths: dict[str, pl.DataFrame] = field(default_factory=dict)
    snapshot: SeriesSnapshot | None = None
    scoreboard: list[ScoreboardRow] = field(default_factory=list)


@dataclass
class SitePlan:
    immutable: list[Artifact] = field(default_factory=list)  # never change once written
    latest: list[Artifact] = field(default_factory=list)  # fixed names; each gets a versioned copy

    def add_latest(self, key: str, body: bytes) -> None:
        self.latest.append(Artifact.of(key, body, LATEST_CACHE))


def paths_parquet(frame: pl.DataFrame) -> bytes:
    """Zstandard over byte-stream-split doubles (each byte of the floats in its own stream: the model's float32
    sample paths leave half of them zero): about a tenth fewer bytes than the plain encoding, read by any reader."""
    floats = [name for name, dtype in frame.schema.items() if dtype == pl.Float64]
    buf = io.BytesIO()
    pq.write_table(
        frame.to_arrow(),
        buf,
        compression="zstd",
        compression_level=9,
        use_byte_stream_split=floats,
        use_dictionary=[n for n, t in frame.schema.items() if t == pl.String],
        write_statistics=True,
    )
    return buf.getvalue()


def series_plan(update: SeriesUpdate, plan: SitePlan) -> None:
    for h in update.history:
        if (h["symbol"], h["timeframe"]) != (update.symbol, update.timeframe):
            raise ValueError(f"history of {h['symbol']} {h['timeframe']} handed to {update.symbol} {update.timeframe}")
        plan.immutable.append(
            Artifact.of(history_key(update.symbol, update.timeframe, h["origin"]), _json(h), IMMUTABLE_CACHE)
        )
    for origin, frame in sorted(update.paths.items()):
        plan.immutable.append(
            Artifact.of(paths_key(update.symbol, update.timeframe, origin), paths_parquet(frame), IMMUTABLE_CACHE)
        )
    snap = update.snapshot
    if snap is None:
        return
    keys = series_keys(update.symbol, update.timeframe)
    plan.add_latest(keys["chart.png"], fan_chart_png(snap))
    plan.add_latest(*figures_file(snap))  # before chart.html and the dashboard, which load it
    plan.add_latest(keys["chart.html"], chart_page(snap))
    plan.add_latest(
        keys["scoreboard.json"],
        _json(
            SeriesScoreboard(
                {
                    "symbol": snap["symbol"],
                    "timeframe": snap["timeframe"],
                    "as_of": snap["origin"],
                    "synthetic": snap.get("synthetic", False),
                    "rows": update.scoreboard,
                }
            )
        ),
    )
    plan.add_latest(keys["latest.json"], _json(latest_document(snap)))


# ---------------------------------------------------------------------------------------------------- publishing


@dataclass
class PublishReport:
    manifest: dict[str, Any]  # the head (manifest.json); the older objects are in its index parts
    written: list[str]  # keys put (or found identical by the store), in order
    skipped: list[str]  # immutable keys already listed with the same sha256
    deleted: list[str]  # versioned copies two publishes old
    changed_immutable: list[str]  # immutable keys whose content differs from what was listed (recomputed)
    manifest_written: bool
    rebuilt: str | None = None  # why the previous manifest was rebuilt from the stored objects (None: it was read)

    @property
    def listed(self) -> int:
        """How many objects the manifest lists, its index parts included."""
        return len(self.manifest.get("objects", {})) + int((self.manifest.get("index") or {}).get("objects", 0))


def publish_site(
    store: Store,
    updates: Iterable[SeriesUpdate],
    all_snapshots: list[SeriesSnapshot],
    scoreboard: list[ScoreboardRow],
    synthetic: bool,
    profile: str,
    generated_at: datetime,
    verdicts: list[Verdict] = (),
    inputs: dict[str, str] | None = None,
) -> PublishReport:
    """Publish the given series' artifacts, the dashboard and the scoreboard, then the manifest, in that order.

    ``updates`` hold what each series publishes now; ``all_snapshots`` the latest snapshot of every series the
    dashboard shows; ``generated_at`` the newest origin among them (never the wall clock: re-publishing the same
    data must give the same bytes). ``inputs``: per timeframe, the digest of the stored data this publish is made
    of (incremental.publish_inputs), kept in the manifest so a later tick can tell there is nothing to publish.
    What it reads and writes besides the new objects is the head and, when the head's entries fill a part, one
    new index part (``publishing.manifest``): the same at any length of history.
    """
    generated = generated_at.isoformat(timespec="seconds")
    plan = SitePlan()
    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    plan.immutable.append(Artifact.of(PLOTLY_JS_KEY, js.read_bytes(), IMMUTABLE_CACHE))
    plan.immutable.append(Artifact.of(templates_key(), templates_js(), IMMUTABLE_CACHE))
    plan.immutable += [Artifact.of(key, body, IMMUTABLE_CACHE) for key, body in dashboard_assets().values()]
    updates = list(updates)
    for update in updates:
        series_plan(update, plan)
    plan.add_latest(
        "scoreboard.json",
        _json(
            Scoreboard(
                {"generated_at": generated, "synthetic": synthetic, "rows": scoreboard, "verdicts": list(verdicts)}
            )
        ),
    )
    plan.add_latest("index.html", dashboard_html(all_snapshots, scoreboard, generated, synthetic).encode())

    previous, rebuilt = read_manifest(store)
    previous_body = None if rebuilt else store.get(MANIFEST_KEY)  # its sha256 goes into the chain
    planned = {a.key for a in plan.latest}
    for snap in all_snapshots:  # the dashboard loads the figures of the series this publish leaves as they were:
        key, body = figures_file(snap)  # published already, unless an older release published the series
        if key not in planned and previous["aliases"].get(key) != versioned_key(key, sha256(body)):
            plan.add_latest(key, body)
    if rebuilt and previous.get("damaged"):
        rebuilt += f"; left out {len(previous['damaged'])} empty object(s), e.g. {previous['damaged'][0]}"
    index = None if rebuilt or previous.get("format") != MANIFEST_FORMAT else previous.get("index")
    listing = Listing(store, previous["objects"], index)
    objects: dict[str, dict[str, Any]] = dict(previous["objects"])
    aliases: dict[str, str] = dict(previous["aliases"])
    written, skipped, changed, replaced = [], [], [], {}
    copies = [Artifact(versioned_key(a.key, a.sha256), a.body, a.content_type, IMMUTABLE_CACHE) for a in plan.latest]
    immutable = [*plan.immutable, *copies]
    for i, art in enumerate(immutable):
        known = listing.entry(art.key)
        if known and known != entry(art):
            same = listing.same_document(art, known)  # listed in an older encoding of the same document
            if same is not None:
                art = immutable[i] = same
        if known and known == entry(art):  # listed by a valid manifest: already there
            skipped.append(art.key)
            continue
        if known:
            changed.append(art.key)
            replaced[art.key] = known["sha256"]
        store.put(art)
        written.append(art.key)
        objects[art.key] = entry(art)
    # Latest names last, each after everything it links to; the dashboard after the series it shows.
    put_same_as = getattr(store, "put_same_as", None)
    for art, copy in zip(plan.latest, copies):
        if put_same_as is not None:
            put_same_as(art, copy.key)  # the local folder: a hard link, the bytes are on disk once
        else:
            store.put(art)
        written.append(art.key)
        aliases[art.key] = copy.key
    current = set(aliases.values())
    retired = sorted(k for k in previous["aliases"].values() if k not in current)
    for k in retired:  # still valid for readers of the previous manifest; deleted by the next publish
        objects.pop(k, None)
    manifest = {
        "format": MANIFEST_FORMAT,
        "generated_at": generated,
        "profile": profile,
        "synthetic": synthetic,
        "objects": dict(sorted(objects.items())),
        "aliases": dict(sorted(aliases.items())),
        "retired": retired,
        "inputs": dict(sorted({**previous.get("inputs", {}), **(inputs or {})}.items())),
    }
    unchanged = all(
        manifest.get(k) == previous.get(k)
        for k in ("format", "generated_at", "profile", "synthetic", "objects", "aliases", "inputs")
    )
    if unchanged and not rebuilt:
        return PublishReport(previous, written, skipped, [], changed, False)
    # The chain record (publishing.chain) after the objects it lists, before the manifest that names it.
    fresh = set(written)
    docs = {history_key(u.symbol, u.timeframe, h["origin"]): h for u in updates for h in u.history}
    manifest["chain"], record = append_record(
        store,
        previous,
        previous_body,
        rebuilt,
        generated_at,
        {a.key: a.sha256 for a in immutable if a.key in fresh},
        {k: h for k, h in docs.items() if k in fresh},
        [u.snapshot for u in updates if u.snapshot],
        replaced,
    )
    written.append(record.key)
    objects[record.key] = entry(record)
    # The entries beyond the head's own go to a new index part once they fill one (written before the head).
    manifest["objects"], manifest["index"], part = seal(store, objects, index)
    if part is not None:
        written.append(part.key)
    if manifest["index"] is None:
        del manifest["index"]
    store.put(Artifact.of(MANIFEST_KEY, _json(manifest), MANIFEST_CACHE))
    deleted = []
    for k in previous["retired"]:
        if k not in objects and k not in current and is_versioned(k):
            store.delete(k)
            deleted.append(k)
    return PublishReport(manifest, written, skipped, deleted, changed, True, rebuilt)
