"""Every environment variable the package reads, read here and nowhere else (one function per variable, read
when called, so a test's or a CLI flag's change is seen). A leaf module: it imports nothing of the package and no
Dagster, so every library may use it. Secret values are returned to the code that needs them and never shown:
``Secret`` hides itself in reprs.

    variable                       read by                               default
    KRONOS_PROFILE                 settings (which profile)              demo
    KRONOS_CONFIG_DIR              settings, kronos-train                <repo>/configs
    KRONOS_HOME                    settings, training (project home)     <repo>/.kronos_home
    KRONOS_UPLOADS_DIR             settings (watched uploads folder)     <home>/<profile>/uploads
    KRONOS_POOL_WAIT_S             main job, runs (pool wait limit, s)   300 (runs.DEFAULT_POOL_WAIT_S)
    KRONOS_SENSOR_INTERVAL_S       defs (least s between ticks of the    each sensor's own (30, 60)
                                     alert, recovery, uploads sensors)
    KRONOS_HF_CACHE                kronos kind, training (hub cache)     huggingface_hub's own (HF_HOME)
    KRONOS_ALERT_WEBHOOK (secret)  alerts (failure webhook URL)          none: alerts stay on disk
    DAGSTER_HOME                   CLI, health, local instance           the profile's <home>/<profile>/dagster
    R2_ACCOUNT_ID, R2_BUCKET,      publishing (bucket settings; the      none: publish.backend auto -> local
    R2_PUBLIC_BASE, R2_ENDPOINT_URL  two keys below only checked set)
    R2_ACCESS_KEY_ID,              publishing (credentials: the Dagster  none
    R2_SECRET_ACCESS_KEY (secret)    layer passes them as EnvVars)
    HTTPS_PROXY, HTTP_PROXY,       kronos.hub (skip the hub probe when   none
    ALL_PROXY (any case)             a proxy decides)
    AWS_REQUEST_CHECKSUM_CALCULATION,  set to when_required while an R2 client is built, unless set
    AWS_RESPONSE_CHECKSUM_VALIDATION
    OMP_WAIT_POLICY, GOMP_SPINCOUNT  when both unset: GOMP_SPINCOUNT=10000, before torch loads (kronos_assets/__init__)
    KRONOS_SHARED_DIR              replay data build, training (the      <repo>/../shared
                                     shared folder holding data/candles)
    KRONOS_SQL_DIR                 warehouse (the SQL folder)            <repo>/dbt_free_sql
    KRONOS_LAKE_PG_PASSWORD,       warehouse, DuckLake back end only     none: required by that back end
    KRONOS_LAKE_S3_KEY_ID,           (catalog password; bucket keys,
    KRONOS_LAKE_S3_SECRET (secret)   only for an s3:// data path)
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]  # base/ -> kronos_assets/ -> the repository

PROFILE = "KRONOS_PROFILE"
CONFIG_DIR = "KRONOS_CONFIG_DIR"
HOME = "KRONOS_HOME"
UPLOADS_DIR = "KRONOS_UPLOADS_DIR"
POOL_WAIT = "KRONOS_POOL_WAIT_S"
SENSOR_INTERVAL = "KRONOS_SENSOR_INTERVAL_S"
HF_CACHE = "KRONOS_HF_CACHE"
WEBHOOK = "KRONOS_ALERT_WEBHOOK"
DAGSTER_HOME = "DAGSTER_HOME"
R2_ACCOUNT = "R2_ACCOUNT_ID"
R2_KEY_ID = "R2_ACCESS_KEY_ID"
R2_SECRET = "R2_SECRET_ACCESS_KEY"
R2_BUCKET = "R2_BUCKET"
R2_PUBLIC_BASE = "R2_PUBLIC_BASE"
R2_ENDPOINT = "R2_ENDPOINT_URL"
SQL_DIR = "KRONOS_SQL_DIR"
SHARED_DIR = "KRONOS_SHARED_DIR"
LAKE_PG_PASSWORD = "KRONOS_LAKE_PG_PASSWORD"
LAKE_S3_KEY_ID = "KRONOS_LAKE_S3_KEY_ID"
LAKE_S3_SECRET = "KRONOS_LAKE_S3_SECRET"
R2_VARS = (R2_ACCOUNT, R2_KEY_ID, R2_SECRET, R2_BUCKET, R2_PUBLIC_BASE, R2_ENDPOINT)
SECRETS = frozenset({WEBHOOK, R2_KEY_ID, R2_SECRET, LAKE_PG_PASSWORD, LAKE_S3_KEY_ID, LAKE_S3_SECRET})
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
CHECKSUM_VARS = ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION")

_env_lock = threading.Lock()


class Secret(str):
    """A secret's value: the string it is for the code that uses it (urllib, boto3 take it as text), shown as ***
    in reprs (exception messages, %r logs, the reprs of what holds it)."""

    def __repr__(self) -> str:
        return "Secret('***')"


def _text(name: str) -> str | None:
    """The variable's value, stripped; None when unset or blank."""
    value = (os.environ.get(name) or "").strip()
    return value or None


def profile() -> str:
    return _text(PROFILE) or "demo"


def config_dir() -> Path:
    return Path(_text(CONFIG_DIR) or REPO_ROOT / "configs")


def home() -> Path:
    return Path(_text(HOME) or REPO_ROOT / ".kronos_home").expanduser().resolve()


def uploads_dir(default: Path) -> Path:
    return Path(_text(UPLOADS_DIR) or default).expanduser().resolve()


def pool_wait_s() -> float | None:
    """$KRONOS_POOL_WAIT_S in seconds, None when unset; a value that is not a number > 0 is an error naming it."""
    raw = _text(POOL_WAIT)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ValueError(f"{POOL_WAIT}: {raw!r} is not a number of seconds > 0")
    return value


def sensor_interval_s(default: int) -> int:
    """$KRONOS_SENSOR_INTERVAL_S, else ``default``: shorter ticks for tests that wait on the daemon; a value that
    is not a whole number >= 1 is an error naming it."""
    raw = _text(SENSOR_INTERVAL)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{SENSOR_INTERVAL}: {raw!r} is not a whole number of seconds >= 1")
    return int(raw)


def hf_cache() -> str | None:
    return _text(HF_CACHE)


def webhook_url() -> Secret | None:
    url = _text(WEBHOOK)
    return Secret(url) if url else None


def dagster_home() -> str | None:
    return _text(DAGSTER_HOME)


def r2_variables() -> dict[str, str]:
    """The R2 variables that are set (the two credentials as ``Secret``s)."""
    out: dict[str, str] = {}
    for name in R2_VARS:
        value = _text(name)
        if value:
            out[name] = Secret(value) if name in SECRETS else value
    return out


def shared_dir(default: Path | None = None) -> Path:
    """KRONOS_SHARED_DIR, else ``default``, else the shared folder beside the repository (real candles in
    data/candles)."""
    return Path(_text(SHARED_DIR) or default or REPO_ROOT.parent / "shared")


def sql_dir(default: Path) -> Path:
    return Path(_text(SQL_DIR) or default)


def lake_secret(name: str) -> Secret | None:
    """One of the DuckLake credentials (LAKE_PG_PASSWORD, LAKE_S3_KEY_ID, LAKE_S3_SECRET), or None when unset."""
    if name not in (LAKE_PG_PASSWORD, LAKE_S3_KEY_ID, LAKE_S3_SECRET):
        raise ValueError(f"{name} is not a DuckLake credential variable")
    value = os.environ.get(name)  # not stripped: a password may end in a space
    return Secret(value) if value else None


def proxy_configured() -> bool:
    return any(_text(v) for v in PROXY_VARS)


def export(**values: str | Path | None) -> None:
    """Sets variables for this process and the ones it starts (the CLI's --profile/--home): export(PROFILE=...)
    with the names of this module's constants."""
    for key, value in values.items():
        if value is not None:
            os.environ[globals()[key]] = str(value)


@contextmanager
def defaulted(names: tuple[str, ...], value: str) -> Iterator[None]:
    """The variables set to ``value`` where the user left them unset, restored afterwards (one thread at a time:
    the environment is the process's)."""
    with _env_lock:
        saved = {k: os.environ.get(k) for k in names}
        for k in names:
            if not saved[k]:
                os.environ[k] = value
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def bound_openmp_spinning() -> None:
    """Idle OpenMP threads (libgomp, torch's CPU runtime) spin at most 10,000 pauses (~0.2 ms here) before they
    sleep, unless the user chose a policy or a count; only before torch loads. Unbounded or libgomp's default
    spinning (300,000) collapses on a CPU shared with other processes (a spinner holds the core its partner needs:
    minutes per Kronos request); sleeping at once (PASSIVE) pays a wake-up per parallel op even on a quiet machine
    (Kronos-small 400/120 "exact" 6.5 s instead of 3.2-3.8 s)."""
    if not (os.environ.get("OMP_WAIT_POLICY") or os.environ.get("GOMP_SPINCOUNT")):
        os.environ["GOMP_SPINCOUNT"] = "10000"
