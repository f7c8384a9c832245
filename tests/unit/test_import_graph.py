"""The package's import graph: no circles, and serving code never imports evaluation or benchmarks."""

from __future__ import annotations

import ast
from pathlib import Path

from recsys.config import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "recsys"
SERVING = ("recsys.retrieval", "recsys.ranking", "recsys.store", "recsys.features", "recsys.data")


def _module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``, every import counted (also those inside functions)."""
    modules = {_module_name(f, root): f for f in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "recsys"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from recsys.b import x\n")
    (pkg / "b.py").write_text("def f():\n    import recsys.c\n")
    (pkg / "c.py").write_text("from recsys import a\n")
    (pkg / "d.py").write_text("import recsys.a\n")
    graph = import_graph(pkg)
    assert set(graph) == {"recsys", "recsys.a", "recsys.b", "recsys.c", "recsys.d"}
    assert cycles(graph) == [["recsys.a", "recsys.b", "recsys.c"]]  # the import inside a function counts too


def test_cycles_known_answer() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_the_package() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the walk found the package
    assert cycles(graph) == []


def test_serving_code_never_imports_evaluation_or_benchmarks() -> None:
    graph = import_graph()
    offending = {
        module: sorted(d for d in deps if d.startswith(("recsys.evaluation", "bench")))
        for module, deps in graph.items()
        if module.startswith(SERVING)
    }
    assert {m: d for m, d in offending.items() if d} == {}
