"""The tamper-evident record (issue 26 item 5): each publication appends a hash-chained record, and
``kronos-assets verify`` re-checks the chain, the files and every recomputable number, naming the first mismatch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from kronos_assets.cli.main import main as cli_main
from kronos_assets.defs.publish import publish_config
from kronos_assets.publishing.bars import publish_bars
from kronos_assets.publishing.chain import record_key, sha256
from kronos_assets.publishing.keys import MANIFEST_KEY, history_key
from kronos_assets.publishing.store import LocalStore
from kronos_assets.publishing.verify import Mismatch, verify
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.publishing.conftest import HORIZON, HOUR, LAST_BAR, env_bucket_store

BTC, ETH = "BTC/USDT", "ETH/USDT"


def live_warehouse(site_data, folder: Path) -> Warehouse:
    """A copy of the test warehouse holding only the scores a live tick at the newest origin would have: the
    forecasts whose horizon has closed by then (the fixture's candles run on past it)."""
    copy = folder / "warehouse.duckdb"
    shutil.copy(site_data.settings.warehouse_path, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("DELETE FROM evaluations WHERE scored_bar > ?", [LAST_BAR])
    return Warehouse(copy)


def publish_record(site_data, store, wh: Warehouse) -> None:
    """Four publications: BTC's forecasts in three runs, oldest first, then ETH's."""
    btc = site_data.bars[BTC]
    for chunk in (btc[:30], btc[30:50], btc[50:]):
        publish_bars(publish_config(site_data.settings), wh, store, {BTC: chunk}, "1h")
    publish_bars(publish_config(site_data.settings), wh, store, {ETH: site_data.bars[ETH]}, "1h")


@pytest.fixture(scope="module")
def record(site_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verify")
    publish_record(site_data, LocalStore(root / "site"), live_warehouse(site_data, root))
    return root / "site"


@pytest.fixture
def site(record, tmp_path) -> Path:
    """A copy of the record to tamper with."""
    return Path(shutil.copytree(record, tmp_path / "site"))


def manifest(site: Path) -> dict:
    return json.loads((site / MANIFEST_KEY).read_text())


def relist(site: Path, key: str, body: bytes) -> str:
    """What a forger who rewrote ``key`` does next: re-hash its entry wherever the manifest lists it (the head or an
    index part) and every sha256 that names that file, up to the head. Returns the file that listed it."""
    m = manifest(site)
    if key in m["objects"]:
        m["objects"][key] |= {"sha256": sha256(body), "bytes": len(body)}
        (site / MANIFEST_KEY).write_text(json.dumps(m))
        return MANIFEST_KEY
    chain, part_key = [], m["index"]["head"]  # the parts, newest first
    while part_key:
        chain.append((part_key, json.loads((site / part_key).read_text())))
        part_key = chain[-1][1]["prev"]
    at = next(i for i, (_, part) in enumerate(chain) if key in part["objects"])
    chain[at][1]["objects"][key] |= {"sha256": sha256(body), "bytes": len(body)}
    for i in range(at, -1, -1):  # the part, then each newer one names the one before by its new sha256
        part_body = json.dumps(chain[i][1]).encode()
        (site / chain[i][0]).write_bytes(part_body)
        if i:
            chain[i - 1][1]["prev_sha256"] = sha256(part_body)
        else:
            m["index"]["head_sha256"] = sha256(part_body)
    (site / MANIFEST_KEY).write_text(json.dumps(m))
    return chain[at][0]


def btc_history(origin_bar) -> str:
    return history_key(BTC, "1h", (origin_bar + HOUR).isoformat())


def fails(site: Path, capsys) -> str:
    assert cli_main(["verify", str(site)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out and out[-1].startswith("verify failed: ")
    return out[-1]


def test_an_untouched_record_verifies_and_every_number_is_recomputed(record, site_data, capsys):
    summary = verify(LocalStore(record))
    assert summary.publications == 4
    assert summary.forecasts == len(site_data.bars[BTC]) + len(site_data.bars[ETH])
    # Everything but the newest run's forecasts was published after its outcome and says so.
    assert 0 < summary.late < summary.forecasts
    assert summary.scored > 0 and summary.numbers > 1000
    # Every scoreboard row, verdict and past forecast was recomputed, none passed over.
    assert summary.not_recomputable == []
    assert cli_main(["verify", str(record)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and "intact: 4 publications" in line


def test_each_record_names_the_previous_one_and_the_manifest_it_replaced(record, site_data):
    m = manifest(record)
    assert m["chain"]["seq"] == 3 and m["chain"]["head"] == record_key(3)
    bodies = [(record / record_key(i)).read_bytes() for i in range(4)]
    assert m["chain"]["head_sha256"] == sha256(bodies[3])
    for i in range(1, 4):
        rec = json.loads(bodies[i])
        assert rec["prev_record_sha256"] == sha256(bodies[i - 1]) and rec["prev_manifest_sha256"]
    first = json.loads(bodies[0])
    assert first["prev_record_sha256"] is None
    assert {k for k in first["added"] if "/history/" in k} == {btc_history(b) for b in site_data.bars[BTC][:30]}
    assert first["closes"]["BTC/USDT 1h"] and set(first["late"]) <= set(first["added"])


def test_a_changed_published_number_is_named(site, site_data, capsys):
    key = btc_history(site_data.bars[BTC][10])
    doc = json.loads((site / key).read_text())
    doc["forecasts"]["kronos-demo" if "kronos-demo" in doc["forecasts"] else sorted(doc["forecasts"])[0]]["steps"][2][
        "q90"
    ] *= 1.001
    (site / key).write_text(json.dumps(doc, indent=1, sort_keys=True))
    line = fails(site, capsys)
    assert key in line and "sha256" in line and "published by chain/00000000.json" in line


@pytest.mark.parametrize("field", ["crps", "winkler_80"])
def test_a_number_published_wrong_with_consistent_hashes_is_recomputed_and_named(
    field, site_data, tmp_path, capsys, monkeypatch
):
    """The publisher itself writes a wrong score (every hash then agrees): recomputation names the field, a
    registered metric's (the Winkler score) as much as CRPS."""
    import kronos_assets.publishing.bars as bars

    real = bars.scoreboard

    def doctored(*args, **kwargs):
        rows = real(*args, **kwargs)
        for r in rows:
            if r["symbol"] == BTC and r["model"] == "random_walk_vol":
                r[field] *= 0.9  # flatter the baseline
        return rows

    monkeypatch.setattr(bars, "scoreboard", doctored)
    publish_record(site_data, LocalStore(tmp_path / "site"), live_warehouse(site_data, tmp_path))
    line = fails(tmp_path / "site", capsys)
    assert "scoreboard.json" in line and f"(BTC/USDT 1h random_walk_vol).{field}:" in line and "expected" in line


def test_a_deleted_history_file_is_named(site, site_data, capsys):
    key = btc_history(site_data.bars[BTC][40])
    (site / key).unlink()
    line = fails(site, capsys)
    assert f"{key}: file: expected published by chain/00000001.json, found missing" in line


def test_an_old_forecast_rewritten_and_rehashed_in_the_manifest_is_named(site, site_data, capsys):
    key = btc_history(site_data.bars[BTC][5])
    doc = json.loads((site / key).read_text())
    for fc in doc["forecasts"].values():
        if fc.get("p_up") is not None:
            fc["p_up"] = 0.99
    body = json.dumps(doc, indent=1, sort_keys=True).encode()
    (site / key).write_bytes(body)
    assert relist(site, key, body) != MANIFEST_KEY  # listed by an index part: old entries leave the head
    line = fails(site, capsys)
    assert key in line and "chain/00000000.json" in line


def test_two_publications_reordered_are_named(site, capsys):
    a, b = site / record_key(1), site / record_key(2)
    body_a, body_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(body_b)
    b.write_bytes(body_a)
    line = fails(site, capsys)
    assert record_key(1) in line and "seq: expected 1, found 2" in line


def test_reordered_publications_renumbered_break_the_hashes(site, capsys):
    """Swapped and renumbered (each record's seq edited): the next record's prev_record_sha256 no longer matches."""
    recs = [json.loads((site / record_key(i)).read_bytes()) for i in (1, 2)]
    recs[0]["seq"], recs[1]["seq"] = 2, 1
    (site / record_key(1)).write_text(json.dumps(recs[1], indent=1, sort_keys=True))
    (site / record_key(2)).write_text(json.dumps(recs[0], indent=1, sort_keys=True))
    line = fails(site, capsys)
    assert record_key(1) in line and ("prev_record_sha256" in line or "as_of" in line)


def test_a_rebuilt_manifest_continues_the_chain_from_its_log(site_data, tmp_path):
    store = LocalStore(tmp_path / "site")
    wh = live_warehouse(site_data, tmp_path)
    publish_bars(publish_config(site_data.settings), wh, store, {BTC: site_data.bars[BTC][:30]}, "1h")
    (tmp_path / "site" / MANIFEST_KEY).write_text('{"objects": {"trunc')
    report = publish_bars(publish_config(site_data.settings), wh, store, {BTC: site_data.bars[BTC][30:]}, "1h")
    assert report.rebuilt
    rec = json.loads(store.get(record_key(1)))
    assert rec["manifest_rebuilt"] and rec["prev_record_sha256"] == sha256(store.get(record_key(0)))
    summary = verify(store)
    assert summary.publications == 2 and summary.rebuilt == 1


def test_a_bucket_verifies_and_a_deleted_object_is_named(site_data, tmp_path, bucket, s3_server, capsys):
    store = env_bucket_store()
    wh = live_warehouse(site_data, tmp_path)
    publish_bars(publish_config(site_data.settings), wh, store, {BTC: site_data.bars[BTC][-HORIZON * 2 :]}, "1h")
    assert cli_main(["verify", f"s3://{bucket}"]) == 0
    assert "intact: 1 publications" in capsys.readouterr().out
    key = btc_history(site_data.bars[BTC][-1])
    s3_server.client().delete_object(Bucket=bucket, Key=key)
    line = fails(f"s3://{bucket}", capsys)
    assert f"{key}: file:" in line and "missing" in line


def test_worker_processes_rescore_alike_and_pass_on_the_first_mismatch(site, site_data, monkeypatch):
    """The re-scoring a year of forecasts spreads over processes gives the same scores, and a mismatch found in a
    worker is the one named (in key order)."""
    from kronos_assets.publishing import verify as v

    monkeypatch.setattr(v, "CHUNK", 8)  # several tasks, as a year has
    store = LocalStore(site)
    m = v._json(store, MANIFEST_KEY)
    summary = v.Summary()
    records = v.walk_chain(store, m, summary)
    forecasts = v.check_files(store, m, records, summary)
    closes = v.chain_closes(records)
    heads: dict = {}
    assert v.rescore(store, forecasts, closes, v.Summary(), workers=2, heads=heads) == v.rescore(
        store, forecasts, closes, v.Summary()
    )
    assert sorted(heads) == sorted(forecasts) and all(
        btc_history(v._ts(h["origin"]) - HOUR) == k for k, h in heads.items() if h["symbol"] == BTC
    )
    key = btc_history(site_data.bars[BTC][20])
    doc = json.loads((site / key).read_text())
    fc = next(fc for fc in doc["forecasts"].values() if fc.get("steps"))
    fc["steps"][3]["q10"] += 1.0
    (site / key).write_text(json.dumps(doc))
    with pytest.raises(Mismatch, match=rf"{key}: forecasts\.\S+\.steps\[3\]\.q10: expected"):
        v.rescore(store, forecasts, closes, v.Summary(), workers=2)


def test_forecasts_scored_together_score_as_score_paths_does_each(record):
    """verify scores many forecasts' last steps in one call per metric (last_step_scores): every value is the one
    ``metrics.score_paths`` gives each forecast alone, to the bit."""
    import numpy as np

    from kronos_assets.metrics import QUANTILE_LEVELS, score_paths
    from kronos_assets.publishing import verify as v

    store = LocalStore(record)
    m = v._json(store, MANIFEST_KEY)
    records = v.walk_chain(store, m, v.Summary())
    closes = v.chain_closes(records)
    pending = []
    for key in sorted(v.check_files(store, m, records, v.Summary())):
        doc = v.read_forecast(key, store.get(key))
        pending += v.check_one((key, doc, store.get(v._paths_key(key)), v._realised(doc, closes)))[1]
    assert len(pending) > 100
    # forecasts of fewer paths among them (scored in a group of their own), interleaved with the rest
    pending = [p if i % 5 else (p[0], p[1][: 7 + i % 3], *p[2:]) for i, p in enumerate(pending)]
    together = v.last_step_scores(pending)
    for (_, close, realised, fc, _), got in zip(pending, together):
        alone = score_paths(close, realised, fc["last_close"], QUANTILE_LEVELS, *v._vol(fc))[-1]
        assert got.keys() == alone.keys()
        assert all(a == b or (a != a and b != b) for a, b in zip(got.values(), alone.values())), (got, alone)
    assert np.isfinite([r["crps"] for r in together]).all()


def test_a_forecast_re_published_with_new_content_is_declared_and_counted(site_data, tmp_path, monkeypatch, capsys):
    """A forecast recomputed (a new checkpoint) and published again is declared ``replaced`` by its record and
    counted by verify; the same rewrite without the declaration is named."""
    import kronos_assets.publishing.bars as bars

    store, wh = LocalStore(tmp_path / "site"), live_warehouse(site_data, tmp_path)
    publish_bars(publish_config(site_data.settings), wh, store, {BTC: site_data.bars[BTC][:30]}, "1h")
    real = bars.forecast_records

    def recomputed(*args, **kwargs):
        records = real(*args, **kwargs)
        for r in records:
            for fc in r["forecasts"].values():
                fc["provenance"] = dict(fc.get("provenance") or {}, note="recomputed")
        return records

    monkeypatch.setattr(bars, "forecast_records", recomputed)
    publish_bars(publish_config(site_data.settings), wh, store, {BTC: site_data.bars[BTC][25:30]}, "1h")
    rec = json.loads(store.get(record_key(1)))
    key = btc_history(site_data.bars[BTC][27])
    assert key in rec["replaced"] and rec["replaced"][key] == json.loads(store.get(record_key(0)))["added"][key]
    assert verify(store).replaced == 5
    del rec["replaced"][key]  # the same rewrite, undeclared (the manifest's head re-pointed to match)
    body = json.dumps(rec, indent=1, sort_keys=True).encode()
    (tmp_path / "site" / record_key(1)).write_bytes(body)
    relist(tmp_path / "site", record_key(1), body)
    m = manifest(tmp_path / "site")
    m["chain"]["head_sha256"] = sha256(body)
    (tmp_path / "site" / MANIFEST_KEY).write_text(json.dumps(m))
    line = fails(tmp_path / "site", capsys)
    assert f"{key}: sha256:" in line and "without declaring it replaced" in line


def test_a_series_verdict_published_wrong_is_recomputed_and_named(site_data, tmp_path, capsys, monkeypatch):
    """latest.json's verdict (as of its origin) is recomputed from the re-scored losses like scoreboard.json's."""
    import kronos_assets.publishing.bars as bars

    real = bars.series_snapshot

    def doctored(*args, **kwargs):
        snap = real(*args, **kwargs)
        if snap and snap.get("verdict"):
            snap["verdict"] = dict(snap["verdict"], sentence="It beats every reference (p < 0.001).")
        return snap

    monkeypatch.setattr(bars, "series_snapshot", doctored)
    publish_record(site_data, LocalStore(tmp_path / "site"), live_warehouse(site_data, tmp_path))
    line = fails(tmp_path / "site", capsys)
    assert "/latest.json: verdict (" in line and ".sentence: expected" in line and "It beats every" in line


def test_a_confidence_table_published_wrong_is_recomputed_and_named(site_data, tmp_path, capsys, monkeypatch):
    """latest.json's direction-by-confidence table (as of its origin) is recomputed from the re-scored forecasts."""
    import kronos_assets.publishing.bars as bars

    real = bars.series_snapshot

    def doctored(*args, **kwargs):
        snap = real(*args, **kwargs)
        for b in (snap or {}).get("track_record", {}).get("direction_by_confidence", []):
            if b["calls"]:
                b["hit_rate"] = 1.0 if b["hit_rate"] != 1.0 else 0.5
        return snap

    monkeypatch.setattr(bars, "series_snapshot", doctored)
    publish_record(site_data, LocalStore(tmp_path / "site"), live_warehouse(site_data, tmp_path))
    line = fails(tmp_path / "site", capsys)
    assert "/latest.json: track_record.direction_by_confidence (" in line and ".hit_rate: expected" in line


def test_a_record_in_the_one_file_layout_upgraded_verifies_and_names_tampering_on_both_sides(
    site_data, tmp_path, monkeypatch, capsys
):
    """A publish folder as releases before the index parts wrote it (format 2: one manifest listing every object,
    indented JSON), then publications by this release: the old entries move to an index part, a forecast of the old
    record re-published as it was is not a new version, and verify walks both layouts as one record, naming a
    tampered file on either side of the upgrade and a tampered index part."""
    import kronos_assets.publishing.chain as chain
    import kronos_assets.publishing.site as site_module

    site = tmp_path / "site"
    store, wh = LocalStore(site), live_warehouse(site_data, tmp_path)
    btc = site_data.bars[BTC]

    def indented(doc: dict) -> bytes:
        return json.dumps(doc, indent=1, sort_keys=True, default=str).encode()

    with monkeypatch.context() as old:  # the release before: no parts, indented JSON
        old.setattr(site_module, "seal", lambda store, objects, index: (dict(sorted(objects.items())), index, None))
        old.setattr(site_module, "encode", indented)
        old.setattr(chain, "encode", indented)
        publish_bars(publish_config(site_data.settings), wh, store, {BTC: btc[:30]}, "1h")
        publish_bars(publish_config(site_data.settings), wh, store, {BTC: btc[30:50]}, "1h")
    m = manifest(site)
    (site / MANIFEST_KEY).write_bytes(indented(m | {"format": 2}))
    old_key = btc_history(btc[5])
    assert old_key in m["objects"] and "index" not in m and verify(store).publications == 2

    report = publish_bars(
        publish_config(site_data.settings), wh, store, {BTC: btc[45:]}, "1h"
    )  # 45..49 were published before
    assert report.changed_immutable == [] and btc_history(btc[47]) in report.skipped
    publish_bars(publish_config(site_data.settings), wh, store, {ETH: site_data.bars[ETH]}, "1h")
    m = manifest(site)
    assert m["format"] == 3 and m["index"]["head"] == "index/00000000.json" and old_key not in m["objects"]
    summary = verify(store)
    assert summary.publications == 4 and summary.replaced == 0 and summary.not_recomputable == []
    assert summary.forecasts == len(btc) + len(site_data.bars[ETH])

    def tampered(name: str) -> Path:
        return Path(shutil.copytree(site, tmp_path / name))

    copy = tampered("old-side")  # a forecast of the old layout, rewritten and re-hashed in the part that lists it
    doc = json.loads((copy / old_key).read_text())
    doc["origin"] = doc["origin"]  # the same document, re-encoded: another sha256
    body = json.dumps(doc).encode()
    (copy / old_key).write_bytes(body)
    assert relist(copy, old_key, body) == "index/00000000.json"
    line = fails(copy, capsys)
    assert old_key in line and "published by chain/00000000.json" in line

    copy = tampered("new-side")  # a forecast of the new layout
    new_key = history_key(ETH, "1h", (site_data.bars[ETH][3] + HOUR).isoformat())
    (copy / new_key).write_bytes((copy / new_key).read_bytes().replace(b'"p_up":', b'"p_up": '))
    line = fails(copy, capsys)
    assert new_key in line and "published by chain/00000003.json" in line

    copy = tampered("part")  # the index part itself: the head's sha256 of it no longer matches
    part = json.loads((copy / "index/00000000.json").read_text())
    part["objects"][old_key]["bytes"] += 1
    (copy / "index/00000000.json").write_text(json.dumps(part))
    line = fails(copy, capsys)
    assert "index/00000000.json: sha256: expected" in line


def test_verdicts_with_no_forecast_to_re_score_are_reported_not_a_crash(site_data, tmp_path, capsys):
    """A record whose published verdicts rest on scores none of its own forecasts can re-score (here: one
    publication of the newest bar only, from a warehouse that scored older forecasts): verify says what it could not
    recompute instead of failing inside DuckDB on an empty table."""
    store = LocalStore(tmp_path / "site")
    publish_bars(
        publish_config(site_data.settings),
        Warehouse(site_data.settings.warehouse_path),
        store,
        {BTC: site_data.bars[BTC][-1:]},
        "1h",
    )
    code = cli_main(["verify", str(tmp_path / "site")])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0, out
    assert any("not recomputable" in line or "could not be recomputed" in line for line in out), out
