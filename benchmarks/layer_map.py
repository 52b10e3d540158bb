"""The package's layer map as numbers (issue 27): per floor its folders, modules and lines; the import graph's
longest chain of folders, its circles, the imports that go up a floor, and Dagster or the settings in a library.
The rules are the layering test's (kronos_assets_tests/foundation/test_layers.py); this prints what it checks.

    .venv/bin/python benchmarks/layer_map.py
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kronos_assets_tests.foundation.test_layers import (  # noqa: E402
    FLOORS,
    GRAPH,
    ROOT,
    circles,
    floor_of,
    folder,
    forbidden,
    up_arrows,
)


def main() -> None:
    lines = {m: len(p.read_text().splitlines()) for m, p in ((m, _path(m)) for m in GRAPH)}
    print(f"{'floor':>5}  {'folders':<24} {'modules':>7} {'lines':>6}")
    for i, units in reversed(list(enumerate(FLOORS))):
        mods = [m for m in GRAPH if folder(m) in units]
        print(f"{i:>5}  {' '.join(units):<24} {len(mods):>7} {sum(lines[m] for m in mods):>6}")
    edges = {(folder(m), folder(t)) for m, ts in GRAPH.items() for t in ts - {"dagster"} if folder(m) and folder(t)}
    edges = {(a, b) for a, b in edges if a != b}

    @cache
    def depth(unit: str) -> int:
        return 1 + max((depth(b) for a, b in edges if a == unit), default=0)

    loose = sorted(p.name for p in ROOT.glob("*.py"))
    print(f"top level: {len(FLOORS)} floors, {sum(len(u) for u in FLOORS)} folders, loose modules {loose}")
    print(f"longest import chain of folders: {max(depth(u) for f in FLOORS for u in f)}")
    print(f"circles: {len(circles(GRAPH))}; imports up a floor: {len(up_arrows(GRAPH))}; Dagster or settings in a")
    print(f"library: {len(forbidden(GRAPH))}; folder-to-folder imports: {len(edges)}, each down")
    assert all(floor_of(b) < floor_of(a) for a, b in edges)


def _path(module: str) -> Path:
    parts = module.split(".")[1:]
    p = ROOT.joinpath(*parts)
    return p / "__init__.py" if p.is_dir() else p.with_suffix(".py")


if __name__ == "__main__":
    main()
