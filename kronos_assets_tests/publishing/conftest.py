"""Fixtures for the publishing tests: a warehouse with forecasts and scores (built once), an S3 API server on
127.0.0.1 (moto) with a fresh bucket per test and the R2_* variables pointing at it, and store wrappers that record
or break puts."""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest

from kronos_assets.cli.main_job import RANGE_END, RANGE_START
from kronos_assets.configuration.settings import Settings
from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.partitions import bar_key, day_key
from kronos_assets.defs.publish import publish_config
from kronos_assets.defs.resources import build_resources, r2_store
from kronos_assets.publishing.bars import publish_bars
from kronos_assets.publishing.r2 import S3Store, r2_config_from_env
from kronos_assets.publishing.store import Artifact
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.helpers import small_settings

UTC = timezone.utc
HOUR = timedelta(hours=1)
HORIZON = 6  # of the small test configuration's 1h timeframe
LAST_BAR = datetime(2025, 3, 10, 12, tzinfo=UTC)
# BTC gets a long run of scored forecasts (more than 10 non-overlapping horizons: its track record is shown as
# numbers), ETH a short one (its track record must read "not yet scored").
BARS = {"BTC/USDT": 66, "ETH/USDT": 12}
R2_TEST_SECRET = "test-secret-" + uuid.uuid4().hex  # must never show up in logs, reprs or errors


@dataclass
class SiteData:
    settings: Settings
    warehouse: Warehouse
    bars: dict[str, list[datetime]]  # bar open times that have forecasts, per symbol

    @property
    def publish_dir(self) -> Path:
        return self.settings.publish_dir


def run_job(
    defs: dg.Definitions, instance: dg.DagsterInstance, job: str, start: Any, end: Any, assets: list[str] | None = None
) -> None:
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        tags={RANGE_START: str(start), RANGE_END: str(end)},
        raise_on_error=True,
        asset_selection=[dg.AssetKey.from_user_string(a) for a in assets] if assets else None,
    )
    assert result.success


@pytest.fixture(scope="session")
def site_data(tmp_path_factory: pytest.TempPathFactory) -> SiteData:
    """Candles, forecasts and scores for BTC and ETH, built once by the Dagster jobs, and a local site with the
    newest bars of both (published directly: the jobs' publish step is what test_assets covers)."""
    root = tmp_path_factory.mktemp("site")
    settings = small_settings(root)
    resources = build_resources(settings)
    defs = build_definitions(settings, resources)
    instance = dg.DagsterInstance.ephemeral()
    bars = {}
    for symbol, n in BARS.items():
        first = LAST_BAR - (n - 1) * HOUR
        run_job(
            defs,
            instance,
            "candles_1h",
            day_key(symbol, first - timedelta(days=3)),
            day_key(symbol, LAST_BAR + (HORIZON + 1) * HOUR),
        )
        run_job(
            defs,
            instance,
            "forecast_1h",
            bar_key(symbol, first),
            bar_key(symbol, LAST_BAR),
            assets=["1h/forecasts", "1h/evaluations"],
        )
        bars[symbol] = [first + i * HOUR for i in range(n)]
    warehouse = Warehouse(settings.warehouse_path)
    for symbol, symbol_bars in bars.items():
        publish_bars(publish_config(settings), warehouse, resources["store"].get(), {symbol: symbol_bars[-3:]}, "1h")
    return SiteData(settings, warehouse, bars)


# ------------------------------------------------------------------------------------------------------ S3 server


@dataclass
class S3Server:
    endpoint: str

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="admin",
            aws_secret_access_key="admin",
        )


@pytest.fixture(scope="session")
def s3_server():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


def set_r2_env(monkeypatch: pytest.MonkeyPatch, endpoint: str, bucket: str) -> None:
    for var in (
        "R2_ACCOUNT_ID",
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REQUEST_CHECKSUM_CALCULATION",
        "AWS_RESPONSE_CHECKSUM_VALIDATION",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("R2_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("R2_ACCESS_KEY_ID", "test-key-id")
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", R2_TEST_SECRET)
    monkeypatch.setenv("R2_BUCKET", bucket)
    monkeypatch.setenv("R2_PUBLIC_BASE", f"https://{bucket}.pub.example.test")


def env_bucket_store() -> S3Store:
    """The bucket the R2_* variables name, opened as the code location opens it (S3Resource's client)."""
    return r2_store(r2_config_from_env())


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, with the R2_* variables pointing at it (R2_ENDPOINT_URL: the local server)."""
    name = f"kronos-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    set_r2_env(monkeypatch, s3_server.endpoint, name)
    return name


def bucket_objects(server: S3Server, bucket: str) -> dict[str, dict[str, Any]]:
    """Every object of the bucket: body, sha256 and headers."""
    c = server.client()
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            obj = c.get_object(Bucket=bucket, Key=item["Key"])
            body = obj["Body"].read()
            out[item["Key"]] = {
                "body": body,
                "sha256": hashlib.sha256(body).hexdigest(),
                "content_type": obj["ContentType"],
                "cache_control": obj.get("CacheControl"),
                "etag": obj["ETag"],
                "last_modified": obj["LastModified"],
            }
    return out


# ------------------------------------------------------------------------------------------------- store wrappers


class InjectedFailure(RuntimeError):
    pass


class RecordingStore:
    """Passes everything to the wrapped store and records puts and deletes; raises after ``fail_after`` puts or
    when asked to put the key ``fail_on``."""

    def __init__(self, inner: Any, fail_after: int | None = None, fail_on: str | None = None):
        self.inner = inner
        self.fail_after = fail_after
        self.fail_on = fail_on
        self.puts: list[str] = []
        self.deletes: list[str] = []

    def put(self, artifact: Artifact) -> None:
        if (self.fail_after is not None and len(self.puts) >= self.fail_after) or artifact.key == self.fail_on:
            raise InjectedFailure(f"injected failure before put #{len(self.puts) + 1} ({artifact.key})")
        self.inner.put(artifact)
        self.puts.append(artifact.key)

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)
        self.deletes.append(key)

    def location(self, key: str) -> str:
        return self.inner.location(key)

    def keys(self):
        return self.inner.keys()

    def stat(self, key: str):
        return self.inner.stat(key)
