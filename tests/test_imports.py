"""The package's import graph: no cycle anywhere in ``firmware_app/``, function-level imports included.

Every ``import`` and ``from ... import`` in every module (top level, inside functions, under
``if TYPE_CHECKING``) is an edge; a cycle through any of them fails with the modules in it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "firmware_app"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str], name: str | None = None) -> set[str]:
    """The package modules ``path`` (the module ``name``) imports, at any depth of its code."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from pkg import mod" needs pkg.mod (pkg is initialised first anyway, as for any import);
            # "from pkg import name" needs pkg itself to have run
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            # the longest package module the target names: "firmware_app.store.Store" -> firmware_app.store
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target != PACKAGE:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    paths = sorted((ROOT / PACKAGE).rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (an iterative depth-first search)."""
    colour: dict[str, int] = {}
    for start in sorted(edges):
        if colour.get(start):
            continue
        path: list[str] = []
        stack = [(start, iter(sorted(edges[start])))]
        colour[start] = 1
        path.append(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            if colour.get(child) == 1:
                return path[path.index(child):] + [child]
            if not colour.get(child):
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(edges.get(child, ())))))
    return None


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_function_level_imports_count_as_edges(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from firmware_app.daemon import Kiosk\n    import firmware_app.store\n"
                   "    from firmware_app.ui import texts, UiServer\n")
    modules = {"firmware_app.daemon", "firmware_app.store", "firmware_app.m", "firmware_app.ui", "firmware_app.ui.texts"}
    assert imports_of(src, modules, "firmware_app.m") == {"firmware_app.daemon", "firmware_app.store",
                                                          "firmware_app.ui", "firmware_app.ui.texts"}


def test_a_module_importing_a_sibling_through_its_package_is_no_cycle(tmp_path):
    src = tmp_path / "server.py"
    src.write_text("from firmware_app.ui import texts\n")
    modules = {"firmware_app.ui", "firmware_app.ui.server", "firmware_app.ui.texts"}
    assert imports_of(src, modules, "firmware_app.ui.server") == {"firmware_app.ui.texts"}


def test_the_composition_root_is_what_run_and_simulate_share():
    edges = graph()
    assert "firmware_app.compose" in edges["firmware_app.daemon"]
    assert "firmware_app.compose" in edges["firmware_app.simulate"]
    assert "firmware_app.daemon" not in edges["firmware_app.simulate"]
