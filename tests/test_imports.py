"""zoo's import graph: no cycle, and every import points down the layers of DESIGN.md.

The graph is read from the source (``ast``), so it holds every import a module
can ever run, including imports inside functions: a lazy import written to
dodge a cycle is still an edge here, and still fails.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "zoo")

# Layers, low to high (DESIGN.md): an import may point to its own layer or below.
LAYERS = {
    "zoo.registry": 0, "zoo.nn": 0, "zoo.attention": 0, "zoo.distributed": 0,
    "zoo.sharding": 0, "zoo.data": 0,
    "zoo.rnn": 1, "zoo.transformer": 1, "zoo.generative": 1, "zoo.decoding": 1,
    "zoo.seq2seq": 1,
    "zoo.interop": 2,
    "zoo.train": 3,
}


def _modules() -> dict[str, str]:
    """{module name: file path} of every module of the zoo package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(name: str, modules) -> str | None:
    """The module an import of ``name`` runs: the longest prefix that is a zoo module."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imports(module: str, path: str, modules) -> set[str]:
    is_package = path.endswith("__init__.py")
    package = module if is_package else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule when there is one.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                     for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name, modules) if name.split(".")[0] == "zoo" else None
            if target is not None and target != module:
                targets.add(target)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, path, modules) for m, path in modules.items()}


def _layer(module: str) -> int:
    if module == "zoo":
        return max(LAYERS.values()) + 1  # the package's __init__ re-exports from every layer
    top = ".".join(module.split(".")[:2])
    if top not in LAYERS:
        raise AssertionError(f"{module} is in no layer; add {top!r} to LAYERS (and DESIGN.md)")
    return LAYERS[top]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
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


def test_the_package_has_no_import_cycle():
    assert _cycles(_graph()) == []


def test_imports_point_down_the_layers():
    upward = [f"{src} (layer {_layer(src)}) imports {dst} (layer {_layer(dst)})"
              for src, targets in _graph().items() for dst in sorted(targets)
              if _layer(dst) > _layer(src)]
    assert upward == []


def test_distributed_imports_only_jax():
    tree = ast.parse(open(os.path.join(PACKAGE, "distributed.py")).read())
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module}
    assert roots <= {"__future__", "collections", "logging", "os", "typing", "jax"}, roots


@pytest.mark.parametrize("graph,expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set(), "c": {"a"}}, []),
])
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert _cycles(graph) == expected


def test_the_graph_sees_imports_inside_functions(tmp_path, monkeypatch):
    """A lazy import is an edge: that is how the old cycles hid."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from zoo.train import loop\n    return loop\n")
    modules = {"zoo.train": "", "zoo.train.loop": "", "zoo.data.m": str(source)}
    assert _imports("zoo.data.m", str(source), modules) == {"zoo.train.loop"}
