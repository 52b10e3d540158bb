"""The layer map over the whole package (kronos_assets/__init__.py draws it): every import, lazy ones included,
goes down a floor or stays in its own folder; no import circle between modules; the libraries and the floor under
them import neither Dagster nor the profile's settings. The checks are plain functions over an import graph, so
each is also shown failing on a graph with the fault it looks for."""

from __future__ import annotations

import ast
from pathlib import Path

import kronos_assets

ROOT = Path(kronos_assets.__file__).parent

# Bottom to top. Folders on one floor import nothing of each other.
FLOORS: list[tuple[str, ...]] = [
    ("base",),
    ("metrics",),
    ("warehouse",),
    ("market",),
    ("kronos",),
    ("forecasting",),
    ("evaluation",),
    ("publishing", "training"),
    ("configuration",),
    ("orchestration",),
    ("defs",),
    ("definitions",),
    ("cli",),
]
LIBRARIES = {"metrics", "warehouse", "market", "kronos", "forecasting", "evaluation", "publishing", "training"}
NO_DAGSTER = LIBRARIES | {"base", "configuration"}
SETTINGS = "kronos_assets.configuration.settings"

Graph = dict[str, set[str]]  # module -> the package modules (or "dagster") it imports


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = ROOT) -> Graph:
    """Every module's imports of the package (resolved to a module where ``from m import name`` names one) and of
    Dagster, at the top or inside functions."""
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: Graph = {}
    for name, path in paths.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                found |= {f"{module}.{a.name}" if f"{module}.{a.name}" in paths else module for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in paths and m != name} | (
            {"dagster"} if any(m.split(".")[0].startswith("dagster") for m in found) else set()
        )
    return graph


def folder(module: str) -> str:
    """The top-level folder (or module) a module lives in: its layer's unit."""
    return module.split(".")[1] if module.count(".") else ""


def floor_of(unit: str) -> int:
    return next(i for i, units in enumerate(FLOORS) if unit in units)


def up_arrows(graph: Graph) -> list[str]:
    """Imports that go up a floor, or across to another folder on the same floor."""
    bad = []
    for module, imports in graph.items():
        unit = folder(module)
        if not unit:
            continue  # kronos_assets/__init__.py: imports base.environment first, as every process must
        for target in imports - {"dagster"}:
            other = folder(target)
            if other and other != unit and floor_of(other) >= floor_of(unit):
                bad.append(f"{module} -> {target}")
    return sorted(bad)


def circles(graph: Graph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start] & graph.keys())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child] & graph.keys()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def forbidden(graph: Graph) -> list[str]:
    """Dagster imported below the configuration's floor's top, or the profile's settings imported by a library."""
    bad = []
    for module, imports in graph.items():
        unit = folder(module)
        if unit in NO_DAGSTER and "dagster" in imports:
            bad.append(f"{module} -> dagster")
        if unit in LIBRARIES and SETTINGS in imports:
            bad.append(f"{module} -> {SETTINGS}")
    return sorted(bad)


GRAPH = import_graph()


def test_every_folder_is_on_the_map_and_the_top_level_holds_only_folders() -> None:
    units = {folder(m) for m in GRAPH} - {""}
    assert units == {u for floor in FLOORS for u in floor}
    loose = sorted(p.name for p in ROOT.glob("*.py"))
    assert loose == ["__init__.py", "definitions.py"]  # the package's marker and the code location's entry


def test_no_import_goes_up_a_floor() -> None:
    assert up_arrows(GRAPH) == []


def test_no_import_circle() -> None:
    assert circles(GRAPH) == []


def test_libraries_import_neither_dagster_nor_the_settings() -> None:
    assert forbidden(GRAPH) == []


def test_the_checks_find_each_fault() -> None:
    """Each check, on the real graph with one fault added."""
    graph = {m: set(i) for m, i in GRAPH.items()}
    graph["kronos_assets.metrics.scores"].add("kronos_assets.publishing.site")  # a library reaching up
    graph["kronos_assets.publishing.site"].add("kronos_assets.training.card")  # across one floor
    assert up_arrows(graph) == [
        "kronos_assets.metrics.scores -> kronos_assets.publishing.site",
        "kronos_assets.publishing.site -> kronos_assets.training.card",
    ]
    a, b = "kronos_assets.warehouse.sql", "kronos_assets.warehouse.core"
    graph[a].add(b)
    graph[b].add(a)
    assert any({a, b} <= set(c) for c in circles(graph))
    graph["kronos_assets.warehouse.sql"] |= {"dagster", SETTINGS}
    assert forbidden(graph) == ["kronos_assets.warehouse.sql -> dagster", f"kronos_assets.warehouse.sql -> {SETTINGS}"]


def test_the_graph_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "kronos_assets"
    (pkg / "metrics").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "metrics" / "__init__.py").write_text("")
    (pkg / "metrics" / "a.py").write_text("def f():\n    from .b import g\n    import dagster\n")
    (pkg / "metrics" / "b.py").write_text("from kronos_assets.metrics import a\n")
    graph = import_graph(pkg)
    assert graph["kronos_assets.metrics.a"] == {"kronos_assets.metrics.b", "dagster"}
    assert graph["kronos_assets.metrics.b"] == {"kronos_assets.metrics.a"}
