"""The bucket back end: Cloudflare R2 (or any S3-compatible store) through a boto3 S3 client.

Configuration comes from environment variables only, the ones users of the predecessor system already set:

    R2_ACCOUNT_ID         Cloudflare account id; the endpoint is https://<id>.r2.cloudflarestorage.com
    R2_ACCESS_KEY_ID      R2 API token's access key id
    R2_SECRET_ACCESS_KEY  R2 API token's secret
    R2_BUCKET             bucket name
    R2_PUBLIC_BASE        public URL of the bucket (r2.dev or custom domain), for links; optional
    R2_ENDPOINT_URL       optional: another S3-compatible endpoint (MinIO, a local test server); replaces
                          R2_ACCOUNT_ID

The store does not build its client: the caller hands it a factory (the Dagster layer builds the client through
dagster-aws's ``S3Resource`` with the credentials as ``EnvVar``s: ``kronos_assets.defs.resources.r2_store``),
called when the first object is written, so credentials are resolved at run time and appear in no configuration,
repr or log. The client should use region ``auto`` and retry transient errors (5xx, throttling, dropped
connections) with botocore's standard mode, ``MAX_ATTEMPTS`` attempts. R2 wants, with boto3 >= 1.36, checksums
only where an operation requires them (AWS_REQUEST_CHECKSUM_CALCULATION / AWS_RESPONSE_CHECKSUM_VALIDATION =
when_required: S3Resource exposes no botocore Config, so these variables are the knob); the store sets them,
unless the user set them, only while the factory runs.
"""

from __future__ import annotations

import hashlib
import re
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from botocore.exceptions import ClientError

from kronos_assets.base import environment
from kronos_assets.base.config_files import ConfigError
from kronos_assets.publishing.store import Artifact, Stat, check_key

ACCOUNT_VAR, KEY_ID_VAR, SECRET_VAR = environment.R2_ACCOUNT, environment.R2_KEY_ID, environment.R2_SECRET
BUCKET_VAR, PUBLIC_BASE_VAR, ENDPOINT_VAR = environment.R2_BUCKET, environment.R2_PUBLIC_BASE, environment.R2_ENDPOINT
R2_VARS = environment.R2_VARS
CHECKSUM_VARS = environment.CHECKSUM_VARS
SHA256_META = "sha256"  # x-amz-meta-sha256: lets a re-publish skip objects already stored
MAX_ATTEMPTS = 5  # per request, in botocore's standard retry mode: for whoever builds the client

_URL_RE = re.compile(r"^https?://[^\s/]+(/\S*)?$")


class R2ConfigError(ConfigError):
    """The R2 variables are incomplete or malformed; the message names the variables, never their values."""


@dataclass(frozen=True)
class R2Config:
    endpoint_url: str
    bucket: str
    public_base: str | None

    @property
    def location(self) -> str:
        return self.public_base or f"{self.endpoint_url}/{self.bucket}"


def _value(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(name) or "").strip()


def r2_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether any R2 variable is set (backend ``auto`` then means R2, and a missing one is an error)."""
    environ = environment.r2_variables() if environ is None else environ
    return any(_value(environ, v) for v in R2_VARS)


def r2_config_from_env(environ: Mapping[str, str] | None = None) -> R2Config:
    """The bucket settings from the environment, or an error naming every missing or malformed variable."""
    environ = environment.r2_variables() if environ is None else environ
    required = [KEY_ID_VAR, SECRET_VAR, BUCKET_VAR]
    if not _value(environ, ENDPOINT_VAR):
        required.insert(0, ACCOUNT_VAR)
    missing = [v for v in required if not _value(environ, v)]
    if missing:
        raise R2ConfigError(
            "R2 publishing needs the environment variable(s) "
            + ", ".join(missing)
            + f" (set {ACCOUNT_VAR} or {ENDPOINT_VAR}, {KEY_ID_VAR}, {SECRET_VAR}, {BUCKET_VAR}; "
            f"{PUBLIC_BASE_VAR} is optional)"
        )
    problems = []
    endpoint = _value(environ, ENDPOINT_VAR)
    if endpoint and not _URL_RE.match(endpoint):
        problems.append(f"{ENDPOINT_VAR} must be an http(s) URL")
    account = _value(environ, ACCOUNT_VAR)
    if not endpoint and not re.fullmatch(r"[A-Za-z0-9-]+", account):
        problems.append(f"{ACCOUNT_VAR} must be the account id (letters, digits, dashes)")
    bucket = _value(environ, BUCKET_VAR)
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        problems.append(f"{BUCKET_VAR} is not a valid bucket name")
    public = _value(environ, PUBLIC_BASE_VAR)
    if public and not _URL_RE.match(public):
        problems.append(f"{PUBLIC_BASE_VAR} must be an http(s) URL")
    if problems:
        raise R2ConfigError("; ".join(problems))
    return R2Config(
        endpoint_url=(endpoint or f"https://{account}.r2.cloudflarestorage.com").rstrip("/"),
        bucket=bucket,
        public_base=public.rstrip("/") or None,
    )


def r2_checksum_env() -> AbstractContextManager[None]:
    """Checksums only where required (what R2 accepts), unless the user chose otherwise; restored afterwards."""
    return environment.defaulted(CHECKSUM_VARS, "when_required")


def _is_missing(exc: ClientError) -> bool:
    err = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return err.get("Code") in ("NoSuchKey", "404", "NotFound") or status == 404


class S3Store:
    """A bucket as a publishing store. Objects carry Content-Type, Cache-Control and their sha256 as metadata.

    ``connect`` builds the boto3 S3 client; it is called once, at first use, under ``r2_checksum_env``."""

    def __init__(
        self, connect: Callable[[], Any], bucket: str, public_base: str | None = None, endpoint_url: str | None = None
    ):
        self._connect = connect
        self.bucket = bucket
        self.public_base = public_base.rstrip("/") if public_base else None
        self.endpoint_url = endpoint_url  # for repr and messages only: the client has its own
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the client or its factory: they hold the secret
        return f"S3Store(endpoint={self.endpoint_url!r}, bucket={self.bucket!r})"

    @property
    def client(self) -> Any:
        """The boto3 client, built at first use (credentials are resolved at run time, not at load time)."""
        with self._lock:
            if self._client is None:
                with r2_checksum_env():
                    self._client = self._connect()
            return self._client

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise

    def put(self, artifact: Artifact) -> None:
        key = check_key(artifact.key)
        head = self._head(key)
        if (
            head is not None
            and head.get("Metadata", {}).get(SHA256_META) == artifact.sha256
            and head.get("ContentLength") == len(artifact.body)
            and head.get("ContentType") == artifact.content_type
            and head.get("CacheControl") == artifact.cache_control
        ):
            return  # already there, byte for byte and header for header: re-publishing changes nothing
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=artifact.body,
            ContentType=artifact.content_type,
            CacheControl=artifact.cache_control,
            Metadata={SHA256_META: artifact.sha256},
        )

    def get(self, key: str) -> bytes | None:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        return obj["Body"].read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def keys(self) -> Iterator[str]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                yield item["Key"]

    def stat(self, key: str) -> Stat | None:
        """From the object's headers (the sha256 this store wrote as metadata: an S3 put is atomic, so it is the
        body's); an object without that metadata is read and hashed."""
        head = self._head(check_key(key))
        if head is None:
            return None
        sha = head.get("Metadata", {}).get(SHA256_META)
        size = head.get("ContentLength")
        if not sha:
            body = self.get(key)
            if body is None:
                return None
            sha, size = hashlib.sha256(body).hexdigest(), len(body)
        return Stat(sha, int(size), head.get("ContentType"), head.get("CacheControl"))

    def location(self, key: str) -> str:
        if self.public_base:
            return f"{self.public_base}/{key}"
        return f"s3://{self.bucket}/{key}"
