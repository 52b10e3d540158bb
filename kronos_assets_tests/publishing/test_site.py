"""The site without a server: keys, content types, backend selection, honesty of the dashboard, backfills."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

from kronos_assets.configuration.settings import ConfigError
from kronos_assets.defs.publish import publish_config
from kronos_assets.defs.resources import r2_resource, r2_store
from kronos_assets.publishing.backend import open_store, resolve_backend
from kronos_assets.publishing.bars import publish_bars
from kronos_assets.publishing.keys import MANIFEST_KEY, is_versioned, series_keys, series_prefix, versioned_key
from kronos_assets.publishing.pages import dashboard_html
from kronos_assets.publishing.r2 import CHECKSUM_VARS, R2ConfigError, r2_config_from_env
from kronos_assets.publishing.snapshots import MIN_INDEPENDENT, independent_count
from kronos_assets.publishing.store import LocalStore, content_type_for
from kronos_assets_tests.helpers import published_snapshot

BTC, ETH = "BTC/USDT", "ETH/USDT"
FULL = {
    "R2_ACCOUNT_ID": "0123abcd",
    "R2_ACCESS_KEY_ID": "kid",
    "R2_SECRET_ACCESS_KEY": "s3cr3t-value",
    "R2_BUCKET": "kronos-site",
    "R2_PUBLIC_BASE": "https://pub-123.r2.dev",
}


def test_keys_content_types_and_versioned_names():
    assert series_prefix(BTC, "1h") == "series/BTC-USDT/1h"
    assert (
        versioned_key("series/BTC-USDT/1h/latest.json", "ab" * 32) == "series/BTC-USDT/1h/latest.abababababababab.json"
    )
    assert is_versioned("index.0123456789abcdef.html") and not is_versioned("history/2025-03-10T12-00-00Z.json")
    expected = {
        "a.json": "application/json",
        "a.html": "text/html; charset=utf-8",
        "a.png": "image/png",
        "a.js": "text/javascript; charset=utf-8",
        "a.parquet": "application/vnd.apache.parquet",
    }
    assert {k: content_type_for(k) for k in expected} == expected
    with pytest.raises(ValueError, match="no content type"):
        content_type_for("notes.xyz")


def test_backend_selection_from_profile_and_environment(tmp_path):
    assert resolve_backend("local", FULL) == "local"
    assert resolve_backend("auto", {}) == "local" and resolve_backend("auto", {"R2_BUCKET": " "}) == "local"
    assert resolve_backend("auto", FULL) == "r2" and resolve_backend("r2", {}) == "r2"
    opened = []  # the bucket opener sees the settings read from the variables it was given
    assert isinstance(open_store("auto", tmp_path, opened.append, {}), LocalStore) and opened == []
    open_store("auto", tmp_path, opened.append, FULL)
    assert opened == [r2_config_from_env(FULL)]
    with pytest.raises(ConfigError) as err:  # auto with some variables set: a clear error, not a silent fallback
        open_store("auto", tmp_path, opened.append, {"R2_BUCKET": "kronos-site"})
    assert all(v in str(err.value) for v in ("R2_ACCOUNT_ID", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY"))
    with pytest.raises(R2ConfigError) as err:
        open_store("r2", tmp_path, opened.append, {})
    assert len(opened) == 1
    assert "R2_BUCKET" in str(err.value) and "R2_ENDPOINT_URL" in str(err.value)
    cfg = r2_config_from_env(FULL)
    assert cfg.endpoint_url == "https://0123abcd.r2.cloudflarestorage.com" and cfg.public_base == FULL["R2_PUBLIC_BASE"]
    other = r2_config_from_env({**FULL, "R2_ACCOUNT_ID": "", "R2_ENDPOINT_URL": "http://127.0.0.1:9000/"})
    assert other.endpoint_url == "http://127.0.0.1:9000"
    with pytest.raises(R2ConfigError) as err:
        r2_config_from_env({**FULL, "R2_PUBLIC_BASE": "ftp://x", "R2_BUCKET": "Bad_Bucket"})
    assert "R2_PUBLIC_BASE" in str(err.value) and "R2_BUCKET" in str(err.value)
    assert "ftp://x" not in str(err.value) and "Bad_Bucket" not in str(err.value)  # values are never echoed


def test_r2_client_region_checksums_and_secret_handling(monkeypatch):
    for k, v in FULL.items():
        monkeypatch.setenv(k, v)
    for k in CHECKSUM_VARS:
        monkeypatch.delenv(k, raising=False)
    store = r2_store(r2_config_from_env())
    resource = r2_resource(r2_config_from_env())
    assert FULL["R2_SECRET_ACCESS_KEY"] not in repr(store) + repr(resource) + str(resource.model_dump())
    client = store.client  # built here, offline: no request is sent
    assert client.meta.region_name == "auto"
    assert client.meta.endpoint_url == "https://0123abcd.r2.cloudflarestorage.com"
    assert client.meta.config.request_checksum_calculation == "when_required"
    assert client.meta.config.response_checksum_validation == "when_required"
    assert client.meta.config.retries["mode"] == "standard" and client.meta.config.retries["total_max_attempts"] > 1
    assert not any(k in os.environ for k in CHECKSUM_VARS)  # set only while the client was built
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported")  # a user's own choice is kept
    assert r2_store(r2_config_from_env()).client.meta.config.request_checksum_calculation == "when_supported"


def test_independent_horizons():
    from datetime import datetime, timedelta, timezone

    t0, h = datetime(2025, 1, 1, tzinfo=timezone.utc), timedelta(hours=1)
    assert independent_count([t0 + i * h for i in range(24)], 24 * h) == 1
    assert independent_count([t0 + i * h for i in range(60)], 6 * h) == 10
    assert independent_count([], 6 * h) == 0


def _sections(index: str) -> dict[str, str]:
    parts = re.split(r'<section class="series"', index)[1:]
    return {re.search(r"<h2>([A-Z]+/[A-Z]+)", p).group(1): p for p in parts}


def test_dashboard_says_not_yet_scored_until_the_record_means_something(site_data):
    index = (site_data.publish_dir / "index.html").read_text()
    sections = _sections(index)
    assert set(sections) == {BTC, ETH}
    eth = json.loads((site_data.publish_dir / "series/ETH-USDT/1h/latest.json").read_text())
    btc = published_snapshot(site_data.publish_dir)
    assert not eth["track_record"]["enough"] and btc["track_record"]["enough"]
    assert btc["track_record"]["n_independent"] >= MIN_INDEPENDENT
    # ETH: too few independent horizons; every track-record card says so and shows no number, and the sentence
    # at the top says why there is no verdict.
    cards = sections[ETH].split('<div class="chart"')[0]
    assert cards.count("not yet scored") >= 2 and "the model is itself this baseline" in cards
    assert "Brier" not in cards and "p =" not in cards
    assert '<p class="verdict pending">Too few independent horizons for a verdict' in cards
    # BTC: enough; a verdict, the P(up) card shows its calibration, and the reliability and PIT charts follow the
    # fan chart (the skill card's verdict: test_verdicts).
    cards = sections[BTC].split('<div class="chart"')[0]
    assert "not yet scored" not in cards and "Brier" in cards and "±" not in cards
    # 60 hourly forecasts cover 2.5 days: the sentence says so instead of "the last 30 days"
    assert re.search(
        r'<p class="verdict">Over the \d+\.\d days of forecasts scored so far \(of a 30-day window\) '
        r"\(60 forecasts",
        cards,
    ), cards
    assert 'id="chart-0-reliability"' in sections[BTC] and 'id="chart-0-pit"' in sections[BTC]
    assert "SYNTHETIC MARKET" in index and 'id="demo-banner"' in index
    assert 'src="assets/plotly-' in index and "cdn" not in index.lower()  # plotly.js beside the page
    # The same numbers with a short record: shown as not scored, the skill value hidden.
    short_verdict = btc["verdict"] | {
        "n": 12,
        "n_independent": 2,
        "sentence": "Too few independent horizons.",
        "crps": btc["verdict"]["crps"] and btc["verdict"]["crps"] | {"n": 12, "n_independent": 2, "p_value": None},
    }
    short = btc | {
        "verdict": short_verdict,
        "track_record": btc["track_record"]
        | {
            "enough": False,
            "n": 12,
            "n_independent": 2,
            "skill": {k: v | {"enough": False, "n_independent": 2} for k, v in btc["track_record"]["skill"].items()},
        },
    }
    html_short = _sections(dashboard_html([short], [], short["origin"], True))[BTC].split('<div class="chart"')[0]
    skill = btc["track_record"]["skill"]["random_walk"]["crps_skill"]
    assert f"{100 * skill:+.1f} %" not in html_short and html_short.count("not yet scored") >= 2
    assert "12 scored ≈ 2 independent horizons; needs 10" in html_short
    # A demo banner only on the demo profile.
    assert "SYNTHETIC MARKET" not in dashboard_html([btc | {"synthetic": False}], [], btc["origin"], False)


def test_backfilling_old_bars_adds_history_but_never_rolls_latest_back(site_data, tmp_path):
    store = LocalStore(tmp_path / "site")
    bars = site_data.bars[BTC]
    publish_bars(publish_config(site_data.settings), site_data.warehouse, store, {BTC: bars[-2:]}, "1h")
    keys = series_keys(BTC, "1h")
    latest = store.get(keys["latest.json"])
    chart = store.get(keys["chart.png"])
    report = publish_bars(publish_config(site_data.settings), site_data.warehouse, store, {BTC: bars[-12:-10]}, "1h")
    assert store.get(keys["latest.json"]) == latest and store.get(keys["chart.png"]) == chart
    assert len(list((tmp_path / "site" / series_prefix(BTC, "1h") / "history").glob("*.json"))) == 4
    assert len(list((tmp_path / "site" / series_prefix(BTC, "1h") / "paths").glob("*.parquet"))) == 4
    manifest = json.loads(store.get(MANIFEST_KEY))
    assert manifest == report.manifest
    for key, meta in manifest["objects"].items():
        assert hashlib.sha256(store.get(key)).hexdigest() == meta["sha256"], key
    assert manifest["generated_at"] == json.loads(latest)["origin"]
