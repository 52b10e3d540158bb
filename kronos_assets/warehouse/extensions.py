"""DuckDB extensions from their PyPI packages (duckdb-extension-<name>), never downloaded at run time.

Each package holds one file built for one DuckDB version; it is INSTALLed from that file into a folder of the
project's (not the user's ~/.duckdb) and LOADed from there, with DuckDB's auto-install and auto-load turned off
so nothing ever reaches the network.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb

from kronos_assets.base.locks import file_lock

PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "postgres": "duckdb_extension_postgres",
    "httpfs": "duckdb_extension_httpfs",
}
LOCK_WAIT_S = 60.0


class ExtensionMissing(RuntimeError):
    pass


def connection_config(extension_dir: Path) -> dict[str, object]:
    """duckdb.connect config: extensions only from ``extension_dir``, nothing fetched or loaded behind our back."""
    return {
        "extension_directory": str(extension_dir),
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }


def extension_file(name: str) -> Path:
    """The packaged extension file for this DuckDB version, or a clear error naming the package to install."""
    package = PACKAGES[name]
    wanted = f"{package.replace('_', '-')}=={duckdb.__version__}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionMissing(f"DuckDB extension {name!r} is not installed: pip install {wanted}")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        found = sorted(p.name for p in (root / "extensions").glob("v*"))
        raise ExtensionMissing(
            f"{package} has no build for DuckDB {duckdb.__version__} (has {found or 'none'}): pip install {wanted}"
        )
    return path


def load(con: duckdb.DuckDBPyConnection, names: tuple[str, ...], extension_dir: Path) -> None:
    """INSTALL each extension from its package file once per folder (under a file lock: runs share the folder),
    then LOAD it."""
    missing = [n for n in names if not _installed(con, n)]
    if missing:
        extension_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(extension_dir / ".install.lock", LOCK_WAIT_S, "the lock of DuckDB extensions' install"):
            for name in missing:
                if not _installed(con, name):
                    con.execute(f"INSTALL '{extension_file(name)}'")
    for name in names:
        con.execute(f"LOAD {name}")


def _installed(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT installed, extension_version FROM duckdb_extensions() WHERE extension_name = ? "
        "OR list_contains(aliases, ?)",
        [name, name],
    ).fetchone()
    return bool(row and row[0])
