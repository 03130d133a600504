"""The package's structure: no import circle, and no engine code that branches on a method's key
(behaviour that belongs to a method is a property the method declares)."""
from __future__ import annotations

import ast
from pathlib import Path

from bench.training import available_methods

ROOT = Path(__file__).resolve().parents[1]


def _module_graph() -> dict[str, set[str]]:
    """Each module of bench/ and methods/ -> the project modules it imports (anywhere in it)."""
    files = {}
    for package in ("bench", "methods"):
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            files[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = path
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        named = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                named |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                named |= {base, *(f"{base}.{a.name}" for a in node.names)}
        edges = set()
        for target in named:
            while target and target not in files:  # `from bench.x import name`: the module bench.x
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_circle():
    """Function-local imports count: a circle hidden inside a function is still one."""
    assert _cycles(_module_graph()) == []


def test_the_circle_check_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_engine_code_branches_on_a_method_key():
    """``if method == "ibp"`` in bench/ would make a property of IBP's a rule of the engine; the
    method declares it instead (``native_certificate``, ``vote``, ...). Defaults that name a
    method (the CLI's, the paper's architecture map) are no comparison and pass."""
    keys = set(available_methods())
    found = []
    for path in sorted((ROOT / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                named = [n.value for n in (node.left, *node.comparators)
                         if isinstance(n, ast.Constant) and n.value in keys]
                if named:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: compares with {named}")
    assert not found, "\n".join(found)


#: The packages in the order data flows: a module may import its own layer's modules and those of
#: the layers above it in this list, never one below (docs/layout.md draws it). The first layer
#: imports nothing of ``bench``'s other layers; ``bench`` itself is the version and the old names.
LAYERS = [
    ["bench", "bench._moved", "bench.io", "bench.paths", "bench.registry", "bench.stats", "bench.paper"],
    ["bench.data"],
    ["bench.compute"],
    ["bench.models"],
    ["bench.certification"],
    ["bench.training", "methods"],
    ["bench.evaluation"],
    ["bench.runs"],
    ["bench.tables"],
    ["bench.workflow"],
    ["bench.jobs"],
    ["bench.report"],
    ["bench.api", "bench.cli", "bench.__main__"],
]


def _layer(module: str) -> int:
    best, found = -1, None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), i
    assert found is not None, f"{module} is in no layer of LAYERS: add its package there"
    return found


def _upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
                  for m, targets in graph.items() for t in targets if _layer(t) > _layer(m))


def test_no_import_runs_back_up_the_data_flow():
    """Function-local imports count too: a package imports only from the layers before it."""
    assert _upward_imports(_module_graph()) == []


def test_the_layer_check_finds_an_upward_import():
    graph = _module_graph()
    graph["bench.data.info"] = graph["bench.data.info"] | {"bench.workflow.plan"}
    assert _upward_imports(graph) == ["bench.data.info (layer 1) imports bench.workflow.plan (layer 9)"]
