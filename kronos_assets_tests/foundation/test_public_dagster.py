"""The Dagster layer uses Dagster's public API only: no module of the package imports ``dagster._*``, and no
module imports another module's private helpers."""

import ast
from pathlib import Path

import kronos_assets

PACKAGE = Path(kronos_assets.__file__).parent


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every import in a file; name is '' for ``import module``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, a.name) for a in node.names]
    return found


def _sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50, files  # the package is where we think it is
    return files


def test_no_private_dagster_imports():
    private = [f"{p.relative_to(PACKAGE)}: {m} {n}".strip() for p in _sources() for m, n in _imports(p)
               if m.split(".")[0].startswith("dagster") and (any(part.startswith("_") for part in m.split("."))
                                                            or n.startswith("_"))]
    assert private == []


def test_no_private_names_across_modules():
    private = [f"{p.relative_to(PACKAGE)}: from {m} import {n}" for p in _sources() for m, n in _imports(p)
               if m.startswith("kronos_assets") and n.startswith("_") and n != "__version__"]
    assert private == []
