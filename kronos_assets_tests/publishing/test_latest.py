"""latest.json format 2 (publishing.latest): the newest forecast said once, in its history file; the tables compact;
read back into the very snapshot it was written from; a format 1 file (forecasts inline) still read; and a
history file of the older encoding (steps to 10 digits, with median_close) counts as the same document."""

from __future__ import annotations

import copy
import json
import logging
import shutil

import pytest

from kronos_assets.publishing.keys import series_keys
from kronos_assets.publishing.latest import CANDLE_COLUMNS, latest_document, snapshot_of, stored_snapshot
from kronos_assets.publishing.manifest import encode
from kronos_assets.publishing.public import STEP_DIGITS, same_document
from kronos_assets.publishing.store import LocalStore
from kronos_assets_tests.helpers import published_snapshot

BTC = "BTC/USDT"


def test_latest_is_read_back_into_the_snapshot_it_was_written_from(site_data):
    folder = site_data.publish_dir
    body = (folder / series_keys(BTC, "1h")["latest.json"]).read_bytes()
    doc = json.loads(body)
    assert doc["format"] == 2 and "forecasts" not in doc
    assert doc["candles"]["columns"] == list(CANDLE_COLUMNS) and len(doc["candles"]["rows"]) > 0
    history = json.loads((folder / doc["links"]["history"]).read_bytes())
    assert history["origin"] == doc["origin"]
    snap = published_snapshot(folder)
    assert snap["forecasts"] == history["forecasts"] and snap["candles"][0].keys() == set(CANDLE_COLUMNS)
    assert encode(latest_document(snap)) == body  # written again from what was read: the same bytes


def test_a_format_1_latest_with_its_forecasts_inline_is_still_read(site_data, tmp_path):
    folder = tmp_path / "site"
    shutil.copytree(site_data.publish_dir, folder)
    snap = published_snapshot(folder)
    key = series_keys(BTC, "1h")["latest.json"]
    old = snap | {"demo_banner": None, "links": {"history": "gone.json"}}  # as the releases before format 2 wrote it
    (folder / key).write_bytes(encode(old))
    assert stored_snapshot(LocalStore(folder), BTC, "1h") == json.loads(encode(snap))


@pytest.mark.parametrize(
    "damage,cause",
    [
        ("history", "no forecast file for"),
        ("format", "format 9, this release reads up to 2"),
        ("truncated", "JSONDecodeError"),
    ],
)
def test_a_latest_that_cannot_be_read_counts_as_unpublished_and_says_why(site_data, tmp_path, caplog, damage, cause):
    folder = tmp_path / "site"
    shutil.copytree(site_data.publish_dir, folder)
    path = folder / series_keys(BTC, "1h")["latest.json"]
    doc = json.loads(path.read_bytes())
    if damage == "history":
        (folder / doc["links"]["history"]).unlink()
    elif damage == "format":
        path.write_bytes(encode(doc | {"format": 9}))
    else:
        path.write_bytes(path.read_bytes()[:100])
    log = logging.getLogger("test_latest")
    with caplog.at_level(logging.WARNING, logger="test_latest"):
        assert stored_snapshot(LocalStore(folder), BTC, "1h", log) is None
    assert cause in caplog.text and "treated as not published" in caplog.text


def test_snapshot_of_refuses_a_history_file_of_another_origin(site_data):
    folder = site_data.publish_dir
    doc = json.loads((folder / series_keys(BTC, "1h")["latest.json"]).read_bytes())
    other = sorted((folder / "series/BTC-USDT/1h/history").glob("*.json"))[0]
    history = json.loads(other.read_bytes())
    assert history["origin"] != doc["origin"]
    with pytest.raises(ValueError, match="no forecast file for"):
        snapshot_of(doc, history)


def _older_encoding(doc: dict) -> dict:
    """A history document as the releases before format 2 wrote it: 10 digits, median_close beside q50."""
    old = copy.deepcopy(doc)
    for fc in old["forecasts"].values():
        for step in fc["steps"]:
            step["median_close"] = step["q50"]
            for k, v in step.items():
                if isinstance(v, float):  # the 8th-10th digits the new encoding rounds away
                    step[k] = float(f"{v * (1 + 3e-8):.10g}")
    return old


def test_a_history_file_of_the_older_encoding_is_the_same_document(site_data):
    path = sorted((site_data.publish_dir / "series/BTC-USDT/1h/history").glob("*.json"))[-1]
    new = json.loads(path.read_bytes())
    old = _older_encoding(new)
    assert old != new and same_document(old, new)
    moved = copy.deepcopy(old)
    step = next(fc for fc in moved["forecasts"].values() if fc["steps"])["steps"][0]
    step["q50"] *= 1 + 10 ** (2 - STEP_DIGITS)  # a change the rounding cannot explain
    assert not same_document(moved, new)
    model = next(iter(old["forecasts"]))
    reseeded = old["forecasts"] | {model: old["forecasts"][model] | {"seed": -1}}
    assert not same_document(old | {"forecasts": reseeded}, new)
    assert not same_document({**old, "origin": "2020-01-01T00:00:00+00:00"}, new)
    assert not same_document(old | {"forecasts": {}}, new)
