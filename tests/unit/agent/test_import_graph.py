"""The agent's modules import each other without circles, so the package tree reads as layers.

Every ``import`` counts, also those inside functions: a deferred import hides a circle from the
interpreter, not from a reader. The graph is built from the source with ``ast``, nothing is imported.
"""

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parents[3] / "node-scripts" / "dbtls_agent"
PACKAGE = "dbtls_agent"


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the agent package."""
    found = {}
    for path in sorted(AGENT.rglob("*.py")):
        parts = [PACKAGE] + list(path.relative_to(AGENT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _target(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[:len(parts) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """module -> agent modules it imports (``from pkg import mod`` names the module, not the package)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = _target(module, path.name == "__init__.py", node)
                for alias in node.names:
                    if base + "." + alias.name in files:
                        deps.add(base + "." + alias.name)
                    elif base in files:
                        deps.add(base)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names if alias.name in files)
        deps.discard(module)
        # A module always loads its package's __init__ first; that edge is not a design choice.
        graph[module] = {d for d in deps if not module.startswith(d + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_graph_sees_the_agent():
    graph = import_graph()
    assert "dbtls_agent.cli" in graph and len(graph) > 40
    assert "dbtls_agent.errors" in graph["dbtls_agent.fsio"]


def test_cycles_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_agent_has_no_import_circle():
    assert cycles(import_graph()) == []


def test_only_the_command_line_imports_commands():
    """commands/ parses and prints; the logic below it never reaches back up."""
    graph = import_graph()
    upward = sorted((module, dep) for module, deps in graph.items() for dep in deps
                    if dep.startswith("dbtls_agent.commands")
                    and not module.startswith("dbtls_agent.commands") and module != "dbtls_agent.cli")
    assert upward == []
