"""One PostgreSQL (the catalog) and one loopback S3 API server (the data path) per test module; each test gets
its own catalog database and bucket prefix, and the credentials in the environment only."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator

import pytest

from kronos_assets.warehouse import Warehouse, WarehouseConfig
from kronos_assets.warehouse.config import PG_PASSWORD_VAR, S3_KEY_ID_VAR, S3_SECRET_VAR
from kronos_assets_tests.operations.servers import Postgres, postgres_server

BUCKET = "kronos-lake"
S3_KEY_ID, S3_SECRET = "test-key-id", "test-secret-not-logged"
_n = itertools.count()


@dataclass(frozen=True)
class LakeServers:
    pg: Postgres
    s3_endpoint: str  # host:port

    def new_catalog(self) -> str:
        import psycopg2

        name = f"lake_{next(_n)}"
        con = psycopg2.connect(
            host=self.pg.host, port=self.pg.port, user=self.pg.user, password=self.pg.password, dbname=self.pg.db
        )
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        con.close()
        return name

    def config(self, **overrides) -> WarehouseConfig:
        """A fresh lake: its own catalog database and its own prefix in the bucket."""
        db = self.new_catalog()
        fields = {
            "backend": "ducklake",
            "data_path": f"s3://{BUCKET}/{db}/",
            "catalog": {"host": self.pg.host, "port": self.pg.port, "dbname": db, "user": self.pg.user},
            "s3": {"endpoint": self.s3_endpoint, "region": "us-east-1", "url_style": "path", "use_ssl": False},
        }
        fields.update(overrides)
        return WarehouseConfig.model_validate(fields)

    def env(self) -> dict[str, str]:
        return {PG_PASSWORD_VAR: self.pg.password, S3_KEY_ID_VAR: S3_KEY_ID, S3_SECRET_VAR: S3_SECRET}

    def parquet_keys(self, prefix: str) -> list[str]:
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://{self.s3_endpoint}",
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for p in pages for o in p.get("Contents", []) if o["Key"].endswith(".parquet")]


def data_files(wh: Warehouse, table: str = "raw_candles") -> int:
    """How many Parquet files DuckLake's catalog lists for ``table``."""
    return wh.query(f"SELECT count(*) AS n FROM ducklake_list_files('lake', '{table}')")["n"][0]


@pytest.fixture(scope="module")
def lake_servers() -> Iterator[LakeServers]:
    import boto3
    from moto.server import ThreadedMotoServer

    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3.start()
    try:
        host, port = s3.get_host_and_port()
        endpoint = f"{host}:{port}"
        boto3.client(
            "s3",
            endpoint_url=f"http://{endpoint}",
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        ).create_bucket(Bucket=BUCKET)
        with postgres_server(db="catalogs") as pg:
            yield LakeServers(pg, endpoint)
    finally:
        s3.stop()


@pytest.fixture
def lake(lake_servers: LakeServers, monkeypatch: pytest.MonkeyPatch) -> LakeServers:
    for k, v in lake_servers.env().items():
        monkeypatch.setenv(k, v)
    return lake_servers
