"""Which warehouse a profile writes: the embedded DuckDB file (default) or DuckLake (PostgreSQL catalog + Parquet
files in a folder or an S3-compatible bucket). Credentials are never fields: they come from the environment
variables named below, read when a connection opens."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kronos_assets.base import environment

# The catalog's password and the bucket's keys: read from the environment only, never stored or logged.
PG_PASSWORD_VAR = environment.LAKE_PG_PASSWORD
S3_KEY_ID_VAR = environment.LAKE_S3_KEY_ID
S3_SECRET_VAR = environment.LAKE_S3_SECRET

# The name of the pool every step that writes the warehouse takes (the orchestrator limits it to ``pool_limit``).
WRITE_POOL = "duckdb_write"


class CatalogConfig(BaseModel):
    """The PostgreSQL database holding DuckLake's catalog (it must exist); the password is $KRONOS_LAKE_PG_PASSWORD."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(default=5432, ge=1, le=65535)
    dbname: str = Field(min_length=1)
    user: str = Field(min_length=1)
    connect_timeout_s: int = Field(default=10, ge=1, le=300)


class S3Config(BaseModel):
    """An S3-compatible endpoint for an s3:// data path (R2, MinIO, a loopback test server); keys from the env."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = Field(min_length=1, description="host[:port], no scheme (DuckDB's ENDPOINT)")
    region: str = "auto"
    url_style: Literal["path", "vhost"] = "path"
    use_ssl: bool = True


class WarehouseConfig(BaseModel):
    """The profile's ``warehouse:`` section. Omitted: the embedded file under the profile's home."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["embedded", "ducklake"] = "embedded"
    catalog: CatalogConfig | None = None
    data_path: str | None = Field(default=None, description="a local folder or s3://bucket/prefix/")
    s3: S3Config | None = None
    # Steps writing at once (the duckdb_write pool's limit); the embedded file takes one writer whatever this says.
    write_pool_limit: int = Field(default=4, ge=1, le=64)
    # A partition write that conflicts with another commit is retried at most this often, within this time.
    conflict_retries: int = Field(default=10, ge=0, le=100)
    conflict_deadline_s: float = Field(default=120.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _complete(self) -> "WarehouseConfig":
        if self.backend == "embedded":
            extra = [k for k in ("catalog", "data_path", "s3") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)} apply only to backend: ducklake (backend is embedded)")
            return self
        if self.catalog is None:
            raise ValueError(
                f"backend ducklake needs catalog: {{host, port, dbname, user}} (password from ${PG_PASSWORD_VAR})"
            )
        if not self.data_path:
            raise ValueError("backend ducklake needs data_path: a local folder or s3://bucket/prefix/")
        if self.on_s3 and self.s3 is None:
            raise ValueError(f"data_path {self.data_path} is on S3: add s3: {{endpoint, region, url_style, use_ssl}}")
        if not self.on_s3 and self.s3 is not None:
            raise ValueError(f"s3 is set but data_path {self.data_path} is not an s3:// path")
        return self

    @property
    def on_s3(self) -> bool:
        return bool(self.data_path and self.data_path.startswith("s3://"))

    @property
    def pool_limit(self) -> int:
        """The WRITE_POOL's limit: one writer for the file, the configured count for DuckLake."""
        return 1 if self.backend == "embedded" else self.write_pool_limit

    def describe(self) -> str:
        """Where the data lives, for logs and health: never a credential."""
        if self.backend == "embedded":
            return "embedded DuckDB file"
        c = self.catalog
        assert c is not None
        return f"DuckLake: catalog postgres://{c.user}@{c.host}:{c.port}/{c.dbname}, data {self.data_path}"
