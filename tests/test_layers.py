"""The package's layers point one way and no modules import each other in a circle (docs/DESIGN.md).

Every import statement counts, including those inside functions (a lazy import is still a dependency).
"""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "siamlab"

# Lower number = lower layer; a module may import its own top-level part and parts of lower layers only.
LAYERS = {
    "errors": 0, "text": 0, "atomic": 0, "openmp": 0, "config": 1,
    "data": 2, "models": 2, "collectives": 2,
    "losses": 3,
    "methods": 4,
    "analysis": 5, "eval": 5,
    "engine": 6,
    "report": 7,
    "experiments": 8, "interop": 8,
    "cli": 9,
    "__main__": 10,
}


def module_names() -> dict:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(mods: dict) -> dict:
    """module -> the siamlab modules it imports (``from . import x`` resolved to the module x when it is one)."""
    graph = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    deps.add(sub if sub in mods else target)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def part(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_the_resolver_sees_relative_and_lazy_imports():
    graph = imports(module_names())
    assert "siamlab.collectives" in graph["siamlab.losses.functional"]  # lazy, inside a function
    assert "siamlab.engine.loop" in graph["siamlab.engine.trainer"]  # from . import loop
    assert "siamlab.config" in graph["siamlab.engine.trainer"]  # from .. import config as config_mod


def test_every_top_level_part_has_a_layer():
    assert {part(m) for m in module_names() if m != "siamlab"} <= set(LAYERS)


def test_no_layer_imports_a_higher_or_sibling_layer():
    graph = imports(module_names())
    bad = [f"{a} imports {b}" for a, deps in graph.items() for b in deps
           if a != "siamlab" and b != "siamlab" and part(a) != part(b) and LAYERS[part(b)] >= LAYERS[part(a)]]
    assert not bad, "layering broken (see docs/DESIGN.md): " + "; ".join(sorted(bad))


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_between_modules():
    found = cycles(imports(module_names()))
    assert not found, f"import circles: {found}"


def test_no_import_circles_between_top_level_parts():
    graph = imports(module_names())
    parts = {}
    for a, deps in graph.items():
        parts.setdefault(part(a), set()).update(part(b) for b in deps if part(b) != part(a))
    assert not cycles(parts), cycles(parts)


def test_engine_files_stay_short():
    long = {p.name: n for p in (PKG / "engine").glob("*.py") if (n := len(p.read_text().splitlines())) > 350}
    assert not long, long
