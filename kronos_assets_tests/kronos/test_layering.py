"""kronos/ is the bottom library: its modules import nothing above it but the candle rules and the environment, and training and the forecaster use only
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
# The kronos-forecast command is the application on top: it adds the forecasting layer's summaries.
LIBRARY = sorted(f"kronos_assets.kronos.{m.name}" for m in pkgutil.iter_modules(kronos_pkg.__path__) if m.name != "cli")


# The candle rules (OHLC validity, volume -> amount, freshness) have one home that every reader and the model
# input use, and the environment variables one module that reads them all (the package imports it first); both
# are leaves, so kronos/ stays a library that needs nothing else of the package.
RULES = ["kronos_assets.environment", "kronos_assets.market", "kronos_assets.market.rules"]


def _imported_outside_kronos(modules: list[str]) -> list[str]:
    code = (f"import json, sys\nfor m in {modules!r}: __import__(m)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('kronos_assets.', 'dagster')) "
            "and not m.startswith('kronos_assets.kronos'))))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_kronos_library_modules_import_nothing_above_them() -> None:
    assert "kronos_assets.kronos.predictor" in LIBRARY and "kronos_assets.kronos.inputs" in LIBRARY
    assert _imported_outside_kronos(LIBRARY) == RULES
    assert _imported_outside_kronos(RULES[-1:]) == RULES  # the rules module imports nothing of the package


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
