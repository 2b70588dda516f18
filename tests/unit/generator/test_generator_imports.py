"""The generator's modules import one another without a circle.

A circle works only as long as nobody reorders a module's imports, and it means two modules that
cannot be understood apart. The graph is read from the source with ``ast`` (every import, also the
ones inside functions), so the test needs nothing imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dbtls

PACKAGE_DIR = Path(dbtls.__file__).resolve().parent


def module_names() -> dict[str, Path]:
    """``dbtls.x.y`` -> file, for every module of the package (a package is its ``__init__``)."""
    names = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = ["dbtls", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports: ``from a import b`` counts as ``a.b`` when that is
    a module, else as ``a``."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {f for f in found if f in known and f != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_is_read_from_every_module():
    names = module_names()
    graph = {n: imports_of(n, p, set(names)) for n, p in names.items()}
    assert "dbtls.addon.actions" in graph and "dbtls.cli" in graph
    assert "dbtls.addon.shell" in graph["dbtls.addon.actions"]
    assert "dbtls.cli.build" in graph["dbtls.cli"]


def test_no_import_circle_in_the_generator():
    names = module_names()
    graph = {n: imports_of(n, p, set(names)) for n, p in names.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
