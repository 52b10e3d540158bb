"""kronos/ is the bottom library: its modules import nothing above it but the candle rules and the environment, and
training and the forecaster use only
its public names."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import kronos_assets
import kronos_assets.kronos as kronos_pkg

ROOT = Path(kronos_assets.__file__).parent
LIBRARY = sorted(f"kronos_assets.kronos.{m.name}" for m in pkgutil.iter_modules(kronos_pkg.__path__))


# The candle rules (OHLC validity, volume -> amount, freshness) have one home that every reader and the model
# input use, and the environment variables one module that reads them all (the package imports it first); both
# are leaves, so kronos/ stays a library that needs nothing else of the package.
RULES = [
    "kronos_assets.base",
    "kronos_assets.base.environment",
    "kronos_assets.market",
    "kronos_assets.market.rules",
]


def _imported_outside_kronos(modules: list[str]) -> list[str]:
    code = (
        f"import json, sys\nfor m in {modules!r}: __import__(m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('kronos_assets.', 'dagster')) "
        "and not m.startswith('kronos_assets.kronos'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_kronos_library_modules_import_nothing_above_them() -> None:
    assert "kronos_assets.kronos.predictor" in LIBRARY and "kronos_assets.kronos.inputs" in LIBRARY
    assert _imported_outside_kronos(LIBRARY) == RULES
    assert _imported_outside_kronos(RULES[-1:]) == RULES  # the rules module imports nothing of the package


def _package_imports(path: Path) -> set[str]:
    """Every kronos_assets module a file imports, at the top or inside functions (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative to kronos_assets.kronos
                base = ["kronos_assets", "kronos"][: 3 - node.level] if node.level <= 2 else []
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found |= {module} | {f"{module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("kronos_assets.")}


def test_no_kronos_module_imports_the_layers_above_even_lazily() -> None:
    """The kronos-forecast command (candle files, summaries) is cli/forecast.py: kronos/ has no cli."""
    above = {
        f"{path.name}: {m}"
        for path in (ROOT / "kronos").glob("*.py")
        for m in _package_imports(path)
        if not m.startswith("kronos_assets.kronos") and m.rsplit(".", 1)[0] not in RULES and m not in RULES
    }
    assert above == set()


def _private_uses(path: Path) -> list[str]:
    """Imports of _names from kronos_assets.kronos and attribute reads of _names on anything but self/cls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and "kronos" in (node.module or ""):
            found += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names if a.name.startswith("_")]
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value.id if isinstance(node.value, ast.Name) else ""
            if owner not in ("self", "cls"):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return found


def test_training_and_the_forecaster_use_only_public_kronos_names() -> None:
    files = sorted((ROOT / "training").glob("*.py")) + [ROOT / "forecasting" / "kronos_forecaster.py"]
    assert len(files) > 5
    assert [use for f in files for use in _private_uses(f)] == []


def test_the_package_never_imports_the_test_runner() -> None:
    """pytest is in the test extra only (pyproject.toml): an installed code location must not need it."""
    users = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            users |= {str(path.relative_to(ROOT)) for n in names if n.split(".")[0] in ("pytest", "_pytest")}
    assert users == set()


def _imports_of(path: Path) -> set[str]:
    """Every kronos_assets module a file imports, relative imports resolved against the file's own package."""
    package = ["kronos_assets", *path.parent.relative_to(ROOT).parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found |= {module} | {f"{module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("kronos_assets.")}


def test_settings_know_no_model_kind_by_module_or_by_name() -> None:
    """Kinds register themselves (forecasting/kinds): settings.py imports the registry, never a kind's module,
    and names no kind (each forecaster's options are validated by its registered kind)."""
    from kronos_assets.forecasting import kinds

    path = ROOT / "configuration" / "settings.py"
    modules = {f"kronos_assets.forecasting.kinds.{m.name}" for m in pkgutil.iter_modules(kinds.__path__)}
    assert {m for m in _imports_of(path) if m in modules} == set()
    named = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)} & set(kinds.KINDS)
    assert named == set()
