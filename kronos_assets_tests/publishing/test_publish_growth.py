"""A publish costs the same with a long record as with a short one (issue 25, the publish side): the bytes it writes
and reads do not grow with the publications stored, the manifest's head stays small (older entries go to index
parts), and a publish that changes nothing writes nothing."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from kronos_assets.publishing.keys import MANIFEST_KEY, history_key
from kronos_assets.publishing.manifest import PART_OBJECTS, listed_objects
from kronos_assets.publishing.site import SeriesUpdate, publish_site
from kronos_assets.publishing.store import LocalStore
from kronos_assets_tests.helpers import published_snapshot

BTC = "BTC/USDT"
START = datetime(2025, 1, 1, tzinfo=timezone.utc)
N = 30
# What the manifest's files (head and a new part) may take in one publish, whatever the history: the head's own
# entries (versioned copies, assets) and at most one part's worth of older ones, at well under 400 bytes each.
INDEX_BOUND = (PART_OBJECTS + 40) * 400


class CountingStore(LocalStore):
    """The local folder, counting the bytes a publish reads back through ``get``."""

    read = 0

    def get(self, key: str) -> bytes | None:
        body = super().get(key)
        self.read += len(body or b"")
        return body


def tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """key -> (inode, size, mtime_ns) of every file."""
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            st = p.stat()
            out[p.relative_to(root).as_posix()] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def written(before: dict, after: dict, index: bool) -> int:
    """Bytes of the files a publish created or replaced, each stored file (inode) once: the manifest's files
    (``index`` True) or all the others."""
    changed = {
        v[0]: v[1]
        for k, v in after.items()
        if before.get(k) != v and (k == MANIFEST_KEY or k.startswith("index/")) == index
    }
    return sum(changed.values())


def history(origin: datetime) -> dict:
    return {"symbol": BTC, "timeframe": "1h", "origin": origin.isoformat(), "forecasts": {}}


def paths(origin: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model": ["m"] * 6,
            "path": [0] * 6,
            "step": list(range(1, 7)),
            "close": [100.0 + origin.hour + s for s in range(6)],
        }
    )


def grow(store: LocalStore, n: int) -> None:
    """``n`` publications of one forecast each, written cheaply (no latest files for the series, an empty
    dashboard): what a long record leaves in the store."""
    for i in range(n):
        origin = START + i * timedelta(hours=1)
        publish_site(
            store,
            [SeriesUpdate(BTC, "1h", [history(origin)], {origin.isoformat(): paths(origin)})],
            [],
            [],
            True,
            "test",
            origin,
        )


def tick(store: LocalStore, snap: dict):
    """One hourly publication: a new forecast with its latest files, chart and dashboard."""
    origin = datetime.fromisoformat(snap["origin"])
    update = SeriesUpdate(BTC, "1h", [history(origin)], {origin.isoformat(): paths(origin)}, snap)
    return publish_site(store, [update], [snap], [], True, "test", origin)


@pytest.fixture(scope="module")
def latest(site_data) -> dict:
    return published_snapshot(site_data.publish_dir)


@pytest.fixture(scope="module")
def grown(latest, tmp_path_factory) -> dict[int, tuple[CountingStore, int, int, int]]:
    """For N and 3N stored publications: the store after one more tick, the bytes that tick wrote (manifest files,
    everything else) and the bytes it read."""
    out = {}
    for n in (N, 3 * N):
        store = CountingStore(tmp_path_factory.mktemp(f"grown{n}"))
        grow(store, n)
        before, store.read = tree(store.root), 0
        report = tick(store, latest)
        read, after = store.read, tree(store.root)
        assert report.manifest_written and report.listed == len(listed_objects(store, report.manifest))
        out[n] = (store, written(before, after, True), written(before, after, False), read)
    return out


def test_a_tick_writes_and_reads_the_same_bytes_after_n_and_after_3n_publications(grown):
    (_, index_n, other_n, read_n), (store, index_3n, other_3n, read_3n) = grown[N], grown[3 * N]
    assert other_n == other_3n > 0  # the new forecast, its latest files, chart and dashboard: the same bytes
    # The manifest's files: bounded, not a file that grows with every publication (format 2 rewrote ~250 bytes
    # per stored object each tick: ~70 KB here after 3N).
    assert index_n <= INDEX_BOUND and index_3n <= INDEX_BOUND
    assert read_3n <= read_n + INDEX_BOUND
    head = json.loads(store.get(MANIFEST_KEY))
    assert head["index"]["parts"] >= 2 and len(head["objects"]) < PART_OBJECTS + 40
    # Nothing stored is lost: every forecast of the record is listed, with its sha256.
    listed = listed_objects(store, head)
    for i in range(3 * N):
        assert history_key(BTC, "1h", (START + i * timedelta(hours=1)).isoformat()) in listed


def test_a_publish_that_changes_nothing_writes_nothing(grown, latest):
    store = grown[3 * N][0]
    before = tree(store.root)
    report = tick(store, latest)  # the same tick again
    assert not report.manifest_written and report.changed_immutable == []
    # An old forecast re-published as it was (listed by the oldest index part, not the head): found, not re-added.
    origin = START
    report = publish_site(
        store,
        [SeriesUpdate(BTC, "1h", [history(origin)], {origin.isoformat(): paths(origin)})],
        [latest],
        [],
        True,
        "test",
        datetime.fromisoformat(latest["origin"]),
    )
    assert history_key(BTC, "1h", origin.isoformat()) in report.skipped
    assert not report.manifest_written and report.changed_immutable == []
    assert tree(store.root) == before  # no file created, replaced or touched


def test_a_backup_copies_the_index_parts_and_every_object_they_list(grown, tmp_path):
    from kronos_assets.orchestration.backup import _copy_publication

    store = grown[3 * N][0]
    manifest, copied = _copy_publication(store.root, tmp_path / "copy", time.monotonic() + 120)
    listed = listed_objects(store, manifest)
    assert set(copied) == set(listed) | set(manifest["aliases"]) | {MANIFEST_KEY}
    assert history_key(BTC, "1h", START.isoformat()) in copied and "index/00000000.json" in copied
    copy = LocalStore(tmp_path / "copy")
    assert listed_objects(copy, json.loads(copy.get(MANIFEST_KEY))) == listed  # the copy's parts chain whole
