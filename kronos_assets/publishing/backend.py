"""Which store a profile publishes to: ``publish.backend`` in the profile, and the R2 variables.

local  the folder <home>/publish (default)
r2     the bucket; an error naming the missing R2_* variables when they are not all set
auto   the bucket when any R2_* variable is set (and then all required ones must be), else the folder
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from kronos_assets.base import environment
from kronos_assets.publishing.r2 import R2Config, R2ConfigError, r2_config_from_env, r2_requested
from kronos_assets.publishing.store import LocalStore, Store


def resolve_backend(backend: str, environ: Mapping[str, str] | None = None) -> str:
    """``local`` or ``r2`` for a configured backend (local, r2 or auto)."""
    environ = environment.r2_variables() if environ is None else environ
    if backend == "local":
        return "local"
    if backend == "r2" or (backend == "auto" and r2_requested(environ)):
        return "r2"
    if backend == "auto":
        return "local"
    raise ValueError(f"unknown publish backend {backend!r}")


def open_store(
    backend: str,
    local_dir: str | Path,
    open_bucket: Callable[[R2Config], Store],
    environ: Mapping[str, str] | None = None,
) -> Store:
    """The folder, or the bucket that ``open_bucket`` opens for the R2 settings read from ``environ``."""
    environ = environment.r2_variables() if environ is None else environ
    if resolve_backend(backend, environ) == "local":
        return LocalStore(local_dir)
    try:
        config = r2_config_from_env(environ)
    except R2ConfigError as exc:
        raise R2ConfigError(f"publish.backend: {backend}: {exc}") from None
    return open_bucket(config)
