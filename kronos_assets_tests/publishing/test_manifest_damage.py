"""A damaged manifest heals on the next publish (local folder and bucket), nothing published is lost, and the local
folder makes every file durable (fsync of the file, then of its folder) before the manifest's rename."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from kronos_assets.defs.publish import publish_config
from kronos_assets.publishing.bars import publish_bars
from kronos_assets.publishing.keys import MANIFEST_KEY, history_key
from kronos_assets.publishing.manifest import ManifestError, rebuild_manifest
from kronos_assets.publishing.store import LocalStore
from kronos_assets_tests.publishing.conftest import bucket_objects, env_bucket_store

BTC, ETH = "BTC/USDT", "ETH/USDT"


def publish(site_data, store, bars: dict[str, list]):
    return publish_bars(publish_config(site_data.settings), site_data.warehouse, store, bars, "1h")


def two_publishes(site_data, store) -> dict[str, Any]:
    """BTC, then ETH (the second retires the first's dashboard copies); the manifest they leave."""
    publish(site_data, store, {BTC: site_data.bars[BTC][-3:]})
    report = publish(site_data, store, {ETH: site_data.bars[ETH][-2:]})
    assert report.manifest_written
    return json.loads(store.get(MANIFEST_KEY))


def assert_lists_what_is_stored(store, manifest: dict[str, Any]) -> None:
    for key, meta in manifest["objects"].items():
        body = store.get(key)
        assert body is not None, f"{key} listed but missing"
        assert hashlib.sha256(body).hexdigest() == meta["sha256"] and len(body) == meta["bytes"], key
    for alias, target in manifest["aliases"].items():
        assert target in manifest["objects"] and store.get(alias) == store.get(target), alias


@pytest.mark.parametrize("backend", ["local", "bucket"])
def test_a_truncated_manifest_is_rebuilt_by_the_next_publish_and_nothing_is_lost(site_data, tmp_path, backend, request):
    if backend == "local":
        store = LocalStore(tmp_path / "site")
    else:
        request.getfixturevalue("bucket")
        store = env_bucket_store()
    before = two_publishes(site_data, store)
    bodies = {k: store.get(k) for k in before["objects"]}
    # What a rebuild re-derives from the stored objects is exactly what the manifest said.
    rebuilt = rebuild_manifest(store, "test")
    assert rebuilt["objects"] == before["objects"] and rebuilt["aliases"] == before["aliases"]
    assert rebuilt["retired"] == before["retired"] and rebuilt["damaged"] == []

    raw = store.get(MANIFEST_KEY)
    from kronos_assets.publishing.store import MANIFEST_CACHE, Artifact  # the damage: a write cut short

    store.put(Artifact.of(MANIFEST_KEY, raw[: len(raw) // 2], MANIFEST_CACHE))
    with pytest.raises(json.JSONDecodeError):
        json.loads(store.get(MANIFEST_KEY))
    # The same publish again (nothing new to write): it must still heal the manifest.
    report = publish(site_data, store, {BTC: site_data.bars[BTC][-3:]})
    assert report.manifest_written and report.rebuilt
    assert store.location(MANIFEST_KEY) in report.rebuilt and "JSONDecodeError" in report.rebuilt
    after = json.loads(store.get(MANIFEST_KEY))
    assert after == report.manifest
    # Nothing published before is lost: every object listed before is listed again, with the same bytes (ETH's
    # history too, which this publish did not touch), and the dashboard still shows both series.
    for key, meta in before["objects"].items():
        assert after["objects"].get(key) == meta, key
        assert store.get(key) == bodies[key], key
    assert after["aliases"] == before["aliases"]
    assert_lists_what_is_stored(store, after)
    assert BTC in store.get("index.html").decode() and ETH in store.get("index.html").decode()
    # And the publish after it reads the healed manifest as usual.
    assert publish(site_data, store, {BTC: site_data.bars[BTC][-3:]}).rebuilt is None
    if backend == "bucket":
        objs = bucket_objects(request.getfixturevalue("s3_server"), request.getfixturevalue("bucket"))
        assert set(after["objects"]) <= set(objs)


def test_empty_objects_a_power_loss_left_are_left_out_and_rewritten(site_data, tmp_path):
    store = LocalStore(tmp_path / "site")
    before = two_publishes(site_data, store)
    origin_bar = site_data.bars[BTC][-1]
    hist = history_key(BTC, "1h", (origin_bar + (site_data.bars[BTC][1] - site_data.bars[BTC][0])).isoformat())
    assert hist in before["objects"]
    good = store.get(hist)
    copy = before["aliases"]["index.html"]
    for key in (hist, copy, MANIFEST_KEY):  # what ext4 can leave of files renamed without an fsync
        (tmp_path / "site" / key).write_bytes(b"")
    (tmp_path / "site" / MANIFEST_KEY).write_bytes(b'{"format": 2, "objects": {"series/BTC')
    rebuilt = rebuild_manifest(store, "test")
    assert hist not in rebuilt["objects"] and rebuilt["damaged"] == [hist]
    assert copy not in rebuilt["objects"] and copy in rebuilt["retired"]
    report = publish(site_data, store, {BTC: site_data.bars[BTC][-3:]})
    assert report.rebuilt and hist in report.rebuilt
    assert store.get(hist) == good and hist in report.written
    assert_lists_what_is_stored(store, report.manifest)


class Unlistable:
    """A store that cannot list its objects."""

    def __init__(self, inner: LocalStore):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("keys", "stat"):
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_a_store_that_cannot_list_fails_naming_the_file_and_the_fix(site_data, tmp_path):
    store = LocalStore(tmp_path / "site")
    two_publishes(site_data, store)
    (tmp_path / "site" / MANIFEST_KEY).write_text("[1, 2")
    with pytest.raises(ManifestError) as err:
        publish(site_data, Unlistable(store), {BTC: site_data.bars[BTC][-3:]})
    message = str(err.value)
    assert str(tmp_path / "site" / MANIFEST_KEY) in message and "JSONDecodeError" in message
    assert "move the file aside and publish again" in message


def test_local_files_and_folders_are_synced_before_the_manifest_is_renamed(site_data, tmp_path, monkeypatch):
    root = tmp_path / "site"
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: Any, dst: Any, **kw: Any) -> None:
        real_replace(src, dst, **kw)
        events.append(("replace", f"{src}\0{dst}"))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    report = publish(site_data, LocalStore(root), {BTC: site_data.bars[BTC][-3:]})
    monkeypatch.undo()

    replaces = [(i, *e[1].split("\0")) for i, e in enumerate(events) if e[0] == "replace"]
    manifest_at = [i for i, _, dst in replaces if dst == str(root / MANIFEST_KEY)]
    assert len(manifest_at) == 1 and manifest_at[0] == replaces[-1][0], "the manifest is renamed last"
    m = manifest_at[0]
    synced = [(i, path) for i, (kind, path) in enumerate(events) if kind == "fsync"]
    files = {dst for _, _, dst in replaces}
    assert len(files) == len(report.written) + 1  # every object written, and the manifest
    for i, src, dst in replaces:
        # The file's bytes before its rename; its folder after the rename (and, but for the manifest's own, before
        # the manifest's rename).
        assert any(j < i and path == src for j, path in synced), f"{dst} renamed before its bytes were synced"
        limit = len(events) if i == m else m
        assert any(i < j < limit and path == str(Path(dst).parent) for j, path in synced), (
            f"{Path(dst).parent} not synced after {dst} was renamed into it"
        )
    # Every folder the publish created is recorded in its parent before the manifest's rename.
    for folder in {Path(dst).parent for dst in files}:
        for parent in [folder, *folder.parents]:
            if parent == root.parent:
                break
            assert any(j < m and path == str(parent.parent) for j, path in synced), f"{parent.parent} not synced"
    assert json.loads((root / MANIFEST_KEY).read_text()) == report.manifest
