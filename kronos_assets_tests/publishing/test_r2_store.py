"""The R2 back end against a real S3 API server on 127.0.0.1 (moto's server mode), driven through S3Resource."""

from __future__ import annotations

import http.client
import io
import json
import shutil
import threading
import urllib.parse
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import polars as pl
import pytest

from kronos_assets.cli.main_job import RANGE_END, RANGE_START
from kronos_assets.configuration.settings import load_settings
from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.partitions import bar_key
from kronos_assets.defs.publish import publish_config
from kronos_assets.defs.resources import build_resources
from kronos_assets.publishing.bars import publish_bars
from kronos_assets.publishing.keys import MANIFEST_KEY, PLOTLY_JS_KEY, series_prefix
from kronos_assets.publishing.r2 import S3Store
from kronos_assets.publishing.store import (
    IMMUTABLE_CACHE,
    LATEST_CACHE,
    MANIFEST_CACHE,
    Artifact,
    LocalStore,
    content_type_for,
)
from kronos_assets_tests.helpers import write_configs
from kronos_assets_tests.publishing.conftest import (
    R2_TEST_SECRET,
    InjectedFailure,
    RecordingStore,
    bucket_objects,
    env_bucket_store,
    set_r2_env,
)

BTC, ETH = "BTC/USDT", "ETH/USDT"
SHARED = ("index.", "scoreboard.", "assets/", "chain/", "manifest.json")


def publish(site_data, store, bars: dict[str, list]):
    return publish_bars(publish_config(site_data.settings), site_data.warehouse, store, bars, "1h")


def sent_puts(store: S3Store) -> list[dict[str, Any]]:
    """Every PutObject request the client sends, in order, with its headers (as they go on the wire)."""
    sent: list[dict[str, Any]] = []

    def record(request, **_):
        key = urllib.parse.unquote(urllib.parse.urlsplit(request.url).path.split("/", 2)[-1])
        sent.append({"key": key, "headers": dict(request.headers)})

    store.client.meta.events.register("before-send.s3.PutObject", record)
    return sent


def assert_manifest_valid(objs: dict[str, dict[str, Any]], manifest: dict[str, Any]) -> None:
    """Every object the manifest lists exists with the listed sha256, size, type and cache policy."""
    for key, meta in manifest["objects"].items():
        assert key in objs, f"{key} listed in the manifest but missing"
        assert objs[key]["sha256"] == meta["sha256"], key
        assert len(objs[key]["body"]) == meta["bytes"], key
        assert objs[key]["content_type"] == meta["content_type"] == content_type_for(key), key
        assert objs[key]["cache_control"] == meta["cache_control"] == IMMUTABLE_CACHE, key
    for alias, target in manifest["aliases"].items():
        assert target in manifest["objects"], alias


def test_publish_to_bucket_object_set_types_cache_headers_manifest_last_and_idempotent(site_data, s3_server, bucket):
    store = env_bucket_store()
    sent = sent_puts(store)
    origins = site_data.bars[BTC][-3:]
    report = publish(site_data, store, {BTC: origins})
    objs = bucket_objects(s3_server, bucket)
    manifest = json.loads(objs[MANIFEST_KEY]["body"])
    assert report.manifest_written and manifest == report.manifest
    # The object set: exactly what the manifest lists, the latest names, and the manifest.
    assert set(objs) == set(manifest["objects"]) | set(manifest["aliases"]) | {MANIFEST_KEY}
    prefix = series_prefix(BTC, "1h")
    for name in ("latest.json", "chart.html", "chart.png", "scoreboard.json"):
        assert f"{prefix}/{name}" in manifest["aliases"]
    assert {"index.html", "scoreboard.json"} <= set(manifest["aliases"]) and PLOTLY_JS_KEY in manifest["objects"]
    assert len([k for k in objs if "/history/" in k]) == len([k for k in objs if "/paths/" in k]) == 3
    assert_manifest_valid(objs, manifest)
    for alias, target in manifest["aliases"].items():
        assert objs[alias]["body"] == objs[target]["body"], alias
        assert objs[alias]["content_type"] == content_type_for(alias)
        assert objs[alias]["cache_control"] == LATEST_CACHE, alias
    assert objs[MANIFEST_KEY]["content_type"] == "application/json"
    assert objs[MANIFEST_KEY]["cache_control"] == MANIFEST_CACHE
    assert objs[PLOTLY_JS_KEY]["content_type"].startswith("text/javascript")
    assert objs["index.html"]["content_type"] == "text/html; charset=utf-8"
    assert objs[f"{prefix}/chart.png"]["body"].startswith(b"\x89PNG\r\n\x1a\n")
    # Upload order: each object once, every versioned copy before its latest name, the manifest last.
    order = [s["key"] for s in sent]
    assert order[-1] == MANIFEST_KEY and len(order) == len(set(order)) == len(objs)
    for alias, target in manifest["aliases"].items():
        assert order.index(target) < order.index(alias)
    assert order.index("index.html") > max(order.index(a) for a in manifest["aliases"] if a.startswith("series/"))
    # R2 rejects the aws-chunked CRC32 trailer that boto3 >= 1.36 sends by default: checksums only when required.
    for s in sent:
        headers = {k.lower(): v for k, v in s["headers"].items()}
        assert not any(h.startswith("x-amz-checksum-") for h in headers), s["key"]
        assert "aws-chunked" not in str(headers.get("content-encoding", "")), s["key"]
        assert "authorization" in headers and R2_TEST_SECRET not in str(headers)
    assert store.client.meta.region_name == "auto"
    # The sample-path matrix: every model, path and step of the origin.
    latest = json.loads(objs[f"{prefix}/latest.json"]["body"])
    paths = pl.read_parquet(io.BytesIO(objs[latest["links"]["paths"]]["body"]))
    n_paths, horizon = site_data.settings.sampling.n_paths, site_data.settings.timeframe("1h").horizon
    forecasts = json.loads(objs[latest["links"]["history"]]["body"])["forecasts"]  # the newest forecast
    assert set(paths["model"]) == set(forecasts) == {"random_walk", "random_walk_vol"}
    assert paths.height == 2 * n_paths * horizon and paths["ts"].null_count() == 0
    assert sorted(paths.filter(pl.col("model") == "random_walk_vol")["path"].unique()) == list(range(n_paths))
    assert all(link in objs for link in latest["links"].values())
    assert store.location("index.html") == f"https://{bucket}.pub.example.test/index.html"
    assert R2_TEST_SECRET not in repr(store)

    # Re-publishing the same partitions changes nothing: not one PUT reaches the server.
    sent.clear()
    again = publish(site_data, store, {BTC: origins})
    assert sent == [] and not again.manifest_written
    assert bucket_objects(s3_server, bucket) == objs  # same keys, bodies, headers, ETags and Last-Modified


def test_failure_mid_publish_leaves_the_previous_manifest_valid_and_series_stay_apart(site_data, s3_server, bucket):
    s3 = env_bucket_store()
    btc = site_data.bars[BTC]
    publish(site_data, s3, {BTC: btc[-6:-3]})
    m1_raw = bucket_objects(s3_server, bucket)[MANIFEST_KEY]["body"]
    m1 = json.loads(m1_raw)
    gen2 = {BTC: btc[-3:]}
    # Break the next publish after 1 and 9 puts, then just before the manifest.
    attempts = [RecordingStore(s3, fail_after=n) for n in (1, 9)]
    attempts.append(RecordingStore(s3, fail_on=MANIFEST_KEY))
    for broken in attempts:
        with pytest.raises(InjectedFailure):
            publish(site_data, broken, gen2)
        objs = bucket_objects(s3_server, bucket)
        assert objs[MANIFEST_KEY]["body"] == m1_raw
        assert_manifest_valid(objs, m1)
    assert len(attempts[-1].puts) > 9  # the last one failed on the manifest, after every other put
    ok = RecordingStore(s3)
    m2 = publish(site_data, ok, gen2).manifest
    assert ok.puts[-1] == MANIFEST_KEY
    objs = bucket_objects(s3_server, bucket)
    assert_manifest_valid(objs, m2)
    assert_manifest_valid(objs, m1)  # readers still holding the previous manifest find everything it lists
    assert m2["retired"] and set(m2["retired"]) <= set(m1["objects"])
    # Another series: it writes only under its own prefix and the shared files, and no byte of BTC's changes.
    btc_prefix, eth_prefix = series_prefix(BTC, "1h") + "/", series_prefix(ETH, "1h") + "/"
    live = set(m2["objects"]) | set(m2["aliases"])
    btc_before = {k: v for k, v in objs.items() if k.startswith(btc_prefix) and k in live}
    eth = RecordingStore(s3)
    m3 = publish(site_data, eth, {ETH: site_data.bars[ETH][-2:]}).manifest
    assert all(k.startswith(eth_prefix) or k.startswith(SHARED) for k in eth.puts), eth.puts
    objs = bucket_objects(s3_server, bucket)
    assert {k: v for k, v in objs.items() if k.startswith(btc_prefix) and k in live} == btc_before
    assert {f"{btc_prefix}latest.json", f"{eth_prefix}latest.json"} <= set(m3["aliases"])
    assert "BTC/USDT" in objs["index.html"]["body"].decode() and "ETH/USDT" in objs["index.html"]["body"].decode()
    # ... and the previous manifest stays valid, while what only the one before it needed is deleted.
    assert_manifest_valid(objs, m3)
    assert_manifest_valid(objs, m2)
    assert m2["retired"] and not set(m2["retired"]) & set(objs)
    assert sorted(eth.deletes) == sorted(m2["retired"])  # the only deletions: copies no manifest still lists


def test_every_series_has_its_own_prefix(site_data):
    pairs = {(s, tf.name) for s in site_data.settings.symbols for tf in site_data.settings.timeframes}
    pairs |= {(s, tf) for s in ("BTC/USDT", "BTC/USDC", "BTCUP/USDT") for tf in ("1h", "4h", "1d")}
    prefixes = [series_prefix(s, tf) for s, tf in pairs]
    assert len(set(prefixes)) == len(pairs)
    assert not any(a.startswith(b + "/") for a in prefixes for b in prefixes)


class FlakyProxy:
    """An HTTP proxy on 127.0.0.1 in front of the S3 server that answers 503 SlowDown to chosen requests."""

    def __init__(self, upstream: str, fail: set[int]):
        self.upstream = upstream.removeprefix("http://")
        self.fail = fail
        self.count = 0
        self.failed: list[str] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers botocore's "Expect: 100-continue" at once

            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.count += 1
                    n = proxy.count
                if n in proxy.fail:
                    proxy.failed.append(f"{self.command} {self.path}")
                    payload = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def test_transient_errors_are_retried(s3_server, bucket, monkeypatch):
    # Each put is a HEAD then a PUT: request 2 (the first object's PUT) and request 4 (the second object's HEAD)
    # get a 503 SlowDown, which botocore's standard retry mode retries with backoff.
    with FlakyProxy(s3_server.endpoint, fail={2, 4}) as proxy:
        set_r2_env(monkeypatch, proxy.endpoint, bucket)
        store = env_bucket_store()
        for i in range(3):
            store.put(Artifact.of(f"series/X-Y/1h/history/{i}.json", b'{"i": %d}' % i, LATEST_CACHE))
        assert len(proxy.failed) == 2
    objs = bucket_objects(s3_server, bucket)
    assert sorted(objs) == [f"series/X-Y/1h/history/{i}.json" for i in range(3)]
    assert objs["series/X-Y/1h/history/1.json"]["body"] == b'{"i": 1}'


def test_r2_variables_switch_the_job_from_the_folder_to_the_bucket(site_data, s3_server, bucket, tmp_path):
    """The same job, with publish.backend auto: R2_* set -> the bucket, and the local folder stays untouched."""
    home = tmp_path / "home"
    (home / "demo").mkdir(parents=True)
    shutil.copy(site_data.settings.warehouse_path, home / "demo" / "warehouse.duckdb")
    cfg = write_configs(tmp_path, profile={"publish": {"backend": "auto"}})
    settings = load_settings("demo", config_dir=cfg, home=home, today=date(2026, 11, 21))
    assert isinstance(build_resources(settings)["store"].get(), S3Store)
    defs = build_definitions(settings)  # the resources the code location builds, nothing injected
    instance = dg.DagsterInstance.ephemeral()
    first, last = site_data.bars[BTC][-2], site_data.bars[BTC][-1]
    result = defs.resolve_job_def("forecast_1h").execute_in_process(  # forecasts and scores are in the warehouse
        instance=instance,
        tags={RANGE_START: str(bar_key(BTC, first)), RANGE_END: str(bar_key(BTC, last))},
        asset_selection=[dg.AssetKey(["1h", "published"])],
    )
    assert result.success
    assert not settings.publish_dir.exists()
    objs = bucket_objects(s3_server, bucket)
    manifest = json.loads(objs[MANIFEST_KEY]["body"])
    assert_manifest_valid(objs, manifest)
    assert f"{series_prefix(BTC, '1h')}/latest.json" in manifest["aliases"]
    mats = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key == dg.AssetKey(["1h", "published"])
    ]
    assert mats and mats[0].metadata["dashboard"].value == f"https://{bucket}.pub.example.test/index.html"
    # The secret is in no event, log line or metadata of the run.
    logs = instance.all_logs(result.run_id)
    assert logs and not any(R2_TEST_SECRET in str(rec) for rec in logs)


def test_local_backend_ignores_r2_variables_and_r2_backend_requires_them(site_data, bucket, tmp_path, monkeypatch):
    settings = load_settings(
        "demo", config_dir=write_configs(tmp_path / "a"), home=tmp_path / "h", today=date(2026, 11, 21)
    )
    assert isinstance(build_resources(settings)["store"].get(), LocalStore)  # explicit local wins over the variables
    r2 = load_settings(
        "demo",
        config_dir=write_configs(tmp_path / "b", profile={"publish": {"backend": "r2"}}),
        home=tmp_path / "h",
        today=date(2026, 11, 21),
    )
    assert isinstance(build_resources(r2)["store"].get(), S3Store)
    monkeypatch.delenv("R2_SECRET_ACCESS_KEY")
    monkeypatch.delenv("R2_BUCKET")
    from kronos_assets.configuration.settings import ConfigError

    with pytest.raises(ConfigError, match=r"r2\.yaml|demo\.yaml") as err:
        build_resources(r2)
    assert "R2_SECRET_ACCESS_KEY" in str(err.value) and "R2_BUCKET" in str(err.value)
    assert "publish.backend" in str(err.value)
