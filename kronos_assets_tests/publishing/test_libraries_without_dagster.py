"""The libraries know nothing of Dagster: importing every module of one, in a fresh interpreter, loads no
``dagster`` (only the Dagster layer, defs/ and the modules that run it, may)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kronos_assets.configuration.settings import REPO_ROOT

# Every library package, and warehouse (a module). All are free of Dagster today; a package that gains a Dagster
# import fails here, naming the first module that pulled it in.
LIBRARIES = ("publishing", "market", "kronos", "forecasting", "metrics", "warehouse")

PROBE = """
import importlib, json, pkgutil, sys
name = "kronos_assets." + sys.argv[1]
package = importlib.import_module(name)
modules = [name] + [m.name for m in pkgutil.walk_packages(getattr(package, "__path__", []), name + ".")]
culprit = None
for module in modules:
    importlib.import_module(module)
    if culprit is None and "dagster" in sys.modules:
        culprit = module
print(json.dumps({"modules": modules, "culprit": culprit, "dagster_modules": sorted(
    m for m in sys.modules if m == "dagster" or m.startswith(("dagster.", "dagster_")))[:5]}))
"""


@pytest.mark.parametrize("library", LIBRARIES)
def test_library_imports_no_dagster(library):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, library], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["modules"] and found["modules"][0] == f"kronos_assets.{library}"
    assert found["culprit"] is None, f"{found['culprit']} imports {found['dagster_modules']}"
    assert found["dagster_modules"] == []  # dagster_aws and friends included
